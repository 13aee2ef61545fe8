"""The service unprivileged (issue 12, part 2): the systemd unit, and `tslcd run` as a user that holds only
CAP_NET_RAW, or that ping_group_range allows datagram ICMP sockets, sweeping for real both ways."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "systemd" / "tslcd.service"
ANALYZE = shutil.which("systemd-analyze")
SETPRIV = shutil.which("setpriv")
SYSTEM_PYTHON = Path("/usr/bin/python3")  # world-readable; this test's own interpreter may sit under /root
NOBODY = 65534
_PID = os.getpid()

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing users and namespaces needs root (CI is root)")


def _unit_for_here(tmp: Path) -> Path:
    # systemd-analyze verify checks that ExecStart exists: point it at this checkout's tslcd.
    exe = shutil.which("tslcd") or str(Path(sys.executable).parent / "tslcd")
    copy = tmp / "tslcd.service"
    copy.write_text(UNIT.read_text(encoding="utf-8").replace("/opt/tslcd/bin/tslcd", exe), encoding="utf-8")
    return copy


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze missing (scripts/test.sh installs systemd as root)")
def test_the_unit_verifies_and_rates_ok_or_better(tmp_path: Path) -> None:
    unit = _unit_for_here(tmp_path)
    assert ANALYZE
    r = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr
    r = subprocess.run([ANALYZE, "security", "--offline=true", "--no-pager", str(unit)], capture_output=True,
                       text=True, timeout=120)
    m = re.search(r"Overall exposure level for tslcd\.service: (\d+\.\d) (\w+)", r.stdout)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) < 5.0 and m.group(2) in ("SAFE", "OK"), m.group(0)  # docs/install.md states it
    text = UNIT.read_text(encoding="utf-8")
    assert "AmbientCapabilities=CAP_NET_RAW\n" in text and "CapabilityBoundingSet=CAP_NET_RAW\n" in text
    for key in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                "StateDirectory=tslcd", "ConfigurationDirectory=tslcd", "RestrictAddressFamilies=",
                "SystemCallFilter=@system-service", "ExecReload=/bin/kill -HUP $MAINPID", "User=tslcd"):
        assert key in text, key


def _distributions() -> list[md.Distribution]:
    """tslcd-monitor's runtime dependencies, all the way down (not its extras)."""
    seen: dict[str, md.Distribution] = {}

    def visit(name: str) -> None:
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            return
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in seen:
            return
        seen[key] = dist
        for req in dist.requires or []:
            if "extra ==" not in req:
                visit(re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0])

    visit("tslcd-monitor")
    return [d for k, d in seen.items() if k != "tslcd-monitor"]


def _open_dir(prefix: str) -> Path:
    """A new folder under the system's temporary folder that other users may enter (pytest's are private)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    parent = path
    while parent != parent.parent:  # every folder above must let others through
        parent = parent.parent
        if not parent.stat().st_mode & 0o001:
            shutil.rmtree(path)
            pytest.skip(f"{parent} does not let other users through")
    return path


@pytest.fixture(scope="module")
def runtime() -> Iterator[Path]:
    """A world-readable copy of tslcd and its runtime dependencies, for an interpreter any user may run."""
    if not SYSTEM_PYTHON.exists():
        pytest.skip("no /usr/bin/python3 to run as another user")
    site = _open_dir("tslcd-site-")
    for dist in _distributions():
        for f in dist.files or []:
            src = Path(str(dist.locate_file(f)))
            if src.is_file() and "__pycache__" not in src.parts:
                dst = site / f
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
    for pkg in ("monitor", "exporters", "inventory"):
        shutil.copytree(ROOT / pkg, site / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    for path in [site, *site.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    try:
        yield site
    finally:
        shutil.rmtree(site, ignore_errors=True)


@pytest.fixture
def work() -> Iterator[Path]:
    """The service's folder (config, inventory, store), writable by nobody."""
    path = _open_dir("tslcd-work-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _service_dir(tmp: Path, addresses: list[str]) -> Path:
    """A config (its own store, a free port) and an inventory of ``addresses``, in a folder nobody may write."""
    nodes = "".join(f"  - {{code: N{i}, name: Nút {i}, kind: core, address: {a}}}\n" for i, a in enumerate(addresses))
    (tmp / "inv.yaml").write_text(f"province: Đắk Lắk\nnodes:\n{nodes}", encoding="utf-8")
    (tmp / "config.yaml").write_text(
        "province: Đắk Lắk\ninventory: inv.yaml\nweb:\n  listen: 127.0.0.1:0\n"
        "icmp:\n  interval_s: 2\n  count: 1\n  timeout_s: 0.5\n  echo_interval_s: 0\n"
        "states:\n  down_after: 1\n  up_after: 1\nstore:\n  path: history.sqlite\n", encoding="utf-8")
    tmp.chmod(0o777)
    for f in tmp.iterdir():
        f.chmod(0o644)
    return tmp


def _run_until_first_states(argv: list[str], env: dict[str, str], log: Path, nodes: int) -> dict[str, object]:
    """Start ``argv`` (tslcd run), wait (bounded) for its "first states" log line, stop it by PID."""
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("{") and '"first states"' in line:
                    return dict(json.loads(line))
            assert proc.poll() is None, log.read_text(encoding="utf-8", errors="replace")
            time.sleep(0.2)
        raise AssertionError(f"no first sweep within 60 s:\n{log.read_text(encoding='utf-8', errors='replace')}")
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _env(site: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "HOME": "/nonexistent", "PYTHONDONTWRITEBYTECODE": "1"}


@needs_root
@pytest.mark.skipif(SETPRIV is None, reason="setpriv missing (util-linux)")
def test_tslcd_run_as_nobody_with_only_cap_net_raw_sweeps(work: Path, runtime: Path) -> None:
    """uid and gid nobody, every capability dropped but CAP_NET_RAW (as the unit grants it), no new privileges:
    the raw-socket engine sweeps loopback and every node is up."""
    _service_dir(work, [f"127.0.9.{i}" for i in range(1, 6)])
    assert SETPRIV
    argv = [SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--no-new-privs",
            "--inh-caps=-all,+net_raw", "--ambient-caps=-all,+net_raw", "--bounding-set=-all,+net_raw",
            str(SYSTEM_PYTHON), "-m", "monitor.cli", "run", "--config", str(work / "config.yaml")]
    first = _run_until_first_states(argv, _env(runtime), work / "run.log", 5)
    assert first["nodes"] == 5 and first["up"] == 5, first
    # The same without CAP_NET_RAW: on this loopback inventory it runs in a namespace of its own (tested below,
    # with the refusal of an inventory that a namespace cannot stand in for).


@needs_root
@pytest.mark.skipif(SETPRIV is None or shutil.which("ip") is None, reason="setpriv or ip missing")
def test_tslcd_run_as_nobody_allowed_by_ping_group_range_sweeps(work: Path, runtime: Path) -> None:
    """No capability at all, in a namespace of the test's own whose ping_group_range admits nobody's group:
    the datagram-socket engine sweeps its loopback and every node is up."""
    ns = f"tslcd-unpriv-{_PID}"
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=30)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True, timeout=30)
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w",
                        f"net.ipv4.ping_group_range={NOBODY} {NOBODY}"], check=True, timeout=30)
        _service_dir(work, [f"127.0.0.{i}" for i in range(1, 6)])
        assert SETPRIV
        argv = ["ip", "netns", "exec", ns, SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                "--no-new-privs", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all",
                str(SYSTEM_PYTHON), "-m", "monitor.cli", "run", "--config", str(work / "config.yaml")]
        first = _run_until_first_states(argv, _env(runtime), work / "run.log", 5)
        assert first["nodes"] == 5 and first["up"] == 5, first
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False, timeout=30)


# --- a newcomer without root (issue 12, part 4) ----------------------------------------------------------------

def _nobody_bare(argv_tail: list[str]) -> list[str]:
    """nobody with no capability at all, as an ordinary user on a default Debian (ping_group_range "1 0")."""
    assert SETPRIV
    return [SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--inh-caps=-all",
            "--ambient-caps=-all", str(SYSTEM_PYTHON), "-m", "monitor.cli", *argv_tail]


def _userns_for_nobody() -> str | None:
    """Why nobody may not make a user namespace here, or None when it may."""
    r = subprocess.run([SETPRIV or "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                        "unshare", "--user", "--map-root-user", "--net", "--mount", "true"],
                       capture_output=True, text=True, timeout=60)
    return None if r.returncode == 0 else r.stderr.strip() or f"exit {r.returncode}"


def _default_debian() -> bool:
    return Path("/proc/sys/net/ipv4/ping_group_range").read_text().split() == ["1", "0"]


needs_userns = pytest.mark.skipif(SETPRIV is None or shutil.which("unshare") is None or shutil.which("ip") is None,
                                  reason="setpriv, unshare or ip missing (util-linux, iproute2)")


@needs_root
@needs_userns
def test_demo_as_an_ordinary_user_shows_outages_and_recoveries(work: Path, runtime: Path) -> None:
    """An ordinary user (nobody, no capability, ping sockets refused) runs `tslcd demo`: it re-runs itself in a
    user and network namespace of its own, builds its test namespaces there (none appear here), serves the
    status page here, and communes go down, become unreachable behind the failed aggregation node and come
    back. Stopped with Ctrl-C it exits 0."""
    from tests.conftest import stop, wait_for_url

    if not _default_debian():
        pytest.skip("ping_group_range is not Debian's default here")
    if (why := _userns_for_nobody()) is not None:
        pytest.skip(f"unprivileged user namespaces refused here: {why}")
    _service_dir(work, ["127.0.0.1"])
    proc = subprocess.Popen(_nobody_bare(["demo", "--config", str(work / "config.yaml"), "--no-snmp",
                                          "--listen", "127.0.0.1:0", "--interval", "2", "--flap-every", "7",
                                          "--duration", "150"]),
                            stderr=subprocess.PIPE, text=True, cwd=work,
                            env={**_env(runtime), "PYTHONUNBUFFERED": "1"})
    try:
        url = wait_for_url(proc, 90)
        seen: set[str] = set()
        came_back = False
        deadline = time.monotonic() + 100
        while time.monotonic() < deadline and not came_back:
            with urllib.request.urlopen(url, timeout=5) as r:  # from this namespace: the page is served here
                page = r.read().decode()
            states = set(re.findall(r'data-state="(\w+)"', page))
            rate = re.search(r'id="connection-rate">([\d.]+)%', page)
            assert rate is not None
            seen |= states
            came_back = {"down", "unreachable"} <= seen and not states and rate.group(1) == "97.1"
            time.sleep(0.5)  # polling a page with a deadline
        assert {"down", "unreachable"} <= seen, seen
        assert came_back
        # Its namespaces live in its own network namespace and its own /run: none here.
        here = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
        assert not [n for n in here.split() if n.startswith("tslcdemo-") and f"-{proc.pid}-" in n], here
    finally:
        status = stop(proc, signal.SIGINT)
    assert status == 0


@needs_root
@needs_userns
def test_run_as_an_ordinary_user_on_a_loopback_inventory_sweeps_in_its_own_namespace(work: Path,
                                                                                       runtime: Path) -> None:
    """The README's run command as an ordinary user: no ICMP permission, every node on loopback, so `tslcd run`
    sweeps from a namespace of its own and serves the page here; a reload bringing a node off loopback is
    refused there (the last good inventory kept)."""
    from tests.conftest import stop, wait_for_url

    if not _default_debian():
        pytest.skip("ping_group_range is not Debian's default here")
    if (why := _userns_for_nobody()) is not None:
        pytest.skip(f"unprivileged user namespaces refused here: {why}")
    _service_dir(work, [f"127.0.9.{i}" for i in range(1, 6)])
    proc = subprocess.Popen(_nobody_bare(["run", "--config", str(work / "config.yaml")]), stderr=subprocess.PIPE,
                            text=True, cwd=work, env={**_env(runtime), "PYTHONUNBUFFERED": "1"})
    try:
        url = wait_for_url(proc, 90)
        metrics = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(re.findall(r"^tslcd_node_up\{.*\} 1\.0$", metrics, re.M)) < 5:
            with urllib.request.urlopen(url + "metrics", timeout=5) as r:  # from here: the page is served here
                metrics = r.read().decode()
            time.sleep(0.3)  # polling with a deadline
        assert len(re.findall(r"^tslcd_node_up\{.*\} 1\.0$", metrics, re.M)) == 5, metrics[:3000]
        # A reload that brings a node off loopback: refused inside, reported, the five nodes kept.
        (work / "inv.yaml").write_text((work / "inv.yaml").read_text(encoding="utf-8").replace(
            "127.0.9.5", "198.18.0.5"), encoding="utf-8")
        os.kill(proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 30
        metrics = ""
        while time.monotonic() < deadline and "tslcd_inventory_last_reload_success 0" not in metrics:
            with urllib.request.urlopen(url + "metrics", timeout=5) as r:
                metrics = r.read().decode()
            time.sleep(0.3)  # polling with a deadline
        assert "tslcd_inventory_last_reload_success 0" in metrics
    finally:
        status = stop(proc, signal.SIGINT)
    assert status == 0


@needs_root
@needs_userns
def test_run_as_an_ordinary_user_that_cannot_use_a_namespace_says_which_setting(work: Path, runtime: Path) -> None:
    """No ICMP permission and an inventory that a namespace of its own cannot stand in for (a node polled over
    SNMP): a clear refusal naming the three ways (root, CAP_NET_RAW, ping_group_range), exit 2, no traceback."""
    if not _default_debian():
        pytest.skip("ping_group_range is not Debian's default here")
    _service_dir(work, ["127.0.9.1"])
    inv = work / "inv.yaml"
    inv.write_text(inv.read_text(encoding="utf-8").replace("address: 127.0.9.1", "address: 127.0.9.1, snmp: r"),
                   encoding="utf-8")
    cfg = work / "config.yaml"
    cfg.write_text(cfg.read_text(encoding="utf-8")
                   + "snmp_profiles:\n  r:\n    version: '2c'\n    community: ${TSLCD_TEST_COMMUNITY}\n",
                   encoding="utf-8")
    r = subprocess.run(_nobody_bare(["run", "--config", str(cfg)]), capture_output=True, text=True, timeout=120,
                       cwd=work, env={**_env(runtime), "TSLCD_TEST_COMMUNITY": "c0mmunity-secret"})
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    for way in ("run as root", "CAP_NET_RAW", "net.ipv4.ping_group_range"):
        assert way in r.stderr, r.stderr
    assert "c0mmunity-secret" not in r.stderr


@pytest.mark.parametrize(("sysctls", "setting"), [
    ({"kernel.unprivileged_userns_clone": "0"}, "sysctl -w kernel.unprivileged_userns_clone=1"),
    ({"kernel.apparmor_restrict_unprivileged_userns": "1"},
     "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"),
    ({"user.max_user_namespaces": "0"}, "sysctl -w user.max_user_namespaces=15000"),
    ({"user.max_user_namespaces": "15000"}, "a container needs to allow `unshare --user`"),
])
def test_a_refused_user_namespace_names_the_setting_that_allows_it(sysctls: dict[str, str | None],
                                                                   setting: str) -> None:
    from monitor.runtime.sandbox import explain

    text = explain("unshare: unshare failed: Operation not permitted", sysctls)
    assert setting in text and "Operation not permitted" in text, text
