"""The layout keeps one direction: import-linter's contracts in pyproject.toml hold (docs/design.md)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("monitor", "exporters", "inventory")


def test_import_contracts_hold() -> None:
    """Layers (a lower layer never imports a higher one), exporters never probe, the core is pure."""
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    r = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def test_no_product_module_imports_lab_code() -> None:
    """Only the command line, the benchmarks and the tests use the demo's namespaces and agents."""
    offenders = []
    for pkg in PRODUCT:
        for path in (ROOT / pkg).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(("monitor/lab/", "monitor/cli/")):
                continue
            if any(m == "monitor.lab" or m.startswith("monitor.lab.") for m in _imports(path)):
                offenders.append(rel)
    assert offenders == []


def test_nothing_in_the_repository_points_outside_it() -> None:
    """The design contract is docs/design.md: no file refers to the team's workspace beside the checkout."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, timeout=60).stdout.split()
    if not tracked:  # not a git checkout (e.g. an unpacked sdist): every file below the root
        tracked = [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*") if p.is_file() and ".venv" not in p.parts]
    needle = "../" + "shared/"
    found = [f for f in tracked if (ROOT / f).is_file() and needle in (ROOT / f).read_text("utf-8", "ignore")]
    assert found == []


def test_no_import_cycle_among_modules() -> None:
    """No module reaches itself through imports (type-only imports count: they are dependencies too)."""
    import grimp

    graph = grimp.build_graph(*PRODUCT, cache_dir=None)
    mods = sorted(m for m in graph.modules if ".migrations" not in m)
    edges = {m: {d for d in graph.find_modules_directly_imported_by(m) if d in mods
                 and not m.startswith(d + ".")} for m in mods}  # a package re-exporting is not its child's parent
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for m in mods:
        if m not in index:
            visit(m)
    assert cycles == []
