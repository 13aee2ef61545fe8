"""The `tslcd` command end to end, as a user runs it: real processes, real sockets, real HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import stop, wait_for_url

ROOT = Path(__file__).parent.parent
TSLCD = [sys.executable, "-m", "monitor.cli"]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="raw ICMP sockets need root (CI runs as root)")


def tslcd(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TSLCD, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


class Running:
    """A `tslcd` process whose status page URL was read from its start-up line."""

    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc, self.url = proc, url

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=5) as r:
            return r.read().decode()

    def metric(self, name: str, **labels: str) -> float | None:
        for fam in text_string_to_metric_families(self.get("metrics")):
            for s in fam.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return s.value
        return None

    def poll(self, name: str, expected: float, deadline_s: float = 30, **labels: str) -> float | None:
        """Poll /metrics until the sample equals ``expected`` or the deadline passes."""
        end = time.monotonic() + deadline_s
        got = None
        while time.monotonic() < end:
            got = self.metric(name, **labels)
            if got == expected:
                return got
            time.sleep(0.2)  # polling an HTTP endpoint with a deadline, not synchronising on time
        return got


def start(*args: str) -> Iterator[Running]:
    proc = subprocess.Popen([*TSLCD, *args], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        url = wait_for_url(proc, 30)
        yield Running(proc, url)
    finally:
        stop(proc, grace_s=15)


def test_help_teaches_each_command() -> None:
    out = tslcd("--help").stdout
    for cmd in ("run", "demo", "check", "inventory"):
        assert cmd in out
    assert "examples:" in out
    run_help = tslcd("run", "--help").stdout
    assert "--inventory" in run_help and "--listen" in run_help and "SIGHUP" in run_help
    assert "--province" in tslcd("inventory", "import", "--help").stdout


def test_check_passes_on_the_shipped_config() -> None:
    r = tslcd("check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "102 communes" in r.stdout and "99 with a circuit" in r.stdout


def test_check_lists_every_problem_of_a_broken_inventory(tmp_path: Path) -> None:
    inv = tmp_path / "broken.yaml"
    inv.write_text(
        "province: Đắk Lắk\nnodes:\n"
        "  - code: '24133'\n    name: Phường Buôn Ma Thuột\n    address: 127.0.0.300\n"
        "  - code: '24133'\n    name: Trùng mã\n    address: 127.0.0.2\n"
        "  - code: '24121'\n    name: Phường Tân An\n    address: 127.0.0.2\n    parent: NOPE\n",
        encoding="utf-8")
    r = tslcd("check", "--inventory", str(inv))
    assert r.returncode == 1
    lines = [ln.strip() for ln in r.stdout.splitlines()]
    assert lines[0] == "4 problem(s):"
    assert any(ln.startswith(f"{inv}:5: nodes[0].address") and "127.0.0.300" in ln for ln in lines), r.stdout
    assert any(ln.startswith(f"{inv}:6: nodes[1].code") and "24133" in ln for ln in lines), r.stdout
    assert any(ln.startswith(f"{inv}:11: nodes[2].address") and "127.0.0.2" in ln for ln in lines), r.stdout
    assert any(ln.startswith(f"{inv}:12: nodes[2].parent") and "NOPE" in ln for ln in lines), r.stdout


def test_run_rejects_a_bad_config_naming_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("province: X\ninventory: i.yaml\nicmp:\n  count: 0\n")
    r = tslcd("run", "--config", str(cfg))
    assert r.returncode == 1
    assert f"{cfg}:4: icmp.count: Input should be greater than or equal to 1, got 0" in r.stderr


@needs_root
def test_run_on_the_shipped_config_exports_the_rate_of_dak_lak() -> None:
    for running in start("run", "--listen", "127.0.0.1:0"):
        rate = running.poll("tslcd_connection_rate_ratio", 99 / 102, province="Đắk Lắk", area="")
        assert rate == 99 / 102
        assert running.metric("tslcd_communes", province="Đắk Lắk", area="") == 102
        assert running.metric("tslcd_node_up", code="24133") == 1
        page = running.get("")
        assert "97.1%" in page
        running.proc.send_signal(signal.SIGTERM)
        assert running.proc.wait(15) == 0


def test_inventory_import_writes_a_skeleton_that_checks(tmp_path: Path) -> None:
    out = tmp_path / "dl.yaml"
    r = tslcd("inventory", "import", "--province", "dak lak", "--out", str(out))
    assert r.returncode == 0, r.stderr
    text = out.read_text(encoding="utf-8")
    assert "24133" in text and "Phường Buôn Ma Thuột" in text
    r = tslcd("inventory", "import", "--province", "dak lak", "--out", str(out))
    assert r.returncode == 1 and "--force" in r.stderr
    r = tslcd("check", "--inventory", str(out))
    assert r.returncode == 0, r.stdout
    assert "102 communes, 0 with a circuit" in r.stdout


@needs_root
def test_inventory_reloads_on_file_change_and_sighup_keeping_the_last_good(tmp_path: Path) -> None:
    from monitor.lab.demo import demo_nodes, inventory_yaml

    nodes = demo_nodes(netns=False)
    inv = tmp_path / "inv.yaml"
    inv.write_text(inventory_yaml(nodes), encoding="utf-8")
    for running in start("run", "--inventory", str(inv), "--listen", "127.0.0.1:0"):
        assert running.poll("tslcd_inventory_nodes", len(nodes)) == len(nodes)
        inv.write_text(inventory_yaml(nodes[:50]), encoding="utf-8")  # the watcher sees the change
        assert running.poll("tslcd_inventory_nodes", 50) == 50
        inv.write_text("province: X\nnodes:\n  - code: '1'\n    address: nope\n", encoding="utf-8")
        running.proc.send_signal(signal.SIGHUP)
        assert running.poll("tslcd_inventory_last_reload_success", 0) == 0
        assert running.metric("tslcd_inventory_nodes") == 50  # the last good inventory is kept
        inv.write_text(inventory_yaml(nodes[:60]), encoding="utf-8")
        running.proc.send_signal(signal.SIGHUP)
        assert running.poll("tslcd_inventory_nodes", 60) == 60
        assert running.metric("tslcd_inventory_last_reload_success") == 1


@needs_root
def test_a_taken_port_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        cfg = tmp_path / "c.yaml"
        cfg.write_text(f"province: Đắk Lắk\ninventory: {ROOT / 'inventory' / 'dak_lak_demo.yaml'}\n"
                       f"store:\n  path: {tmp_path / 'h.sqlite'}\n", encoding="utf-8")
        r = tslcd("run", "--config", str(cfg), "--listen", f"127.0.0.1:{port}")
    assert r.returncode == 1
    assert f"tslcd: cannot listen on 127.0.0.1:{port}: address already in use" in r.stderr
    assert "Traceback" not in r.stderr


@needs_root
def test_a_second_monitor_on_the_same_store_is_refused_clearly(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"province: Đắk Lắk\ninventory: {ROOT / 'inventory' / 'dak_lak_demo.yaml'}\n"
                   f"store:\n  path: {tmp_path / 'h.sqlite'}\n", encoding="utf-8")
    for _running in start("run", "--config", str(cfg), "--listen", "127.0.0.1:0"):
        r = tslcd("run", "--config", str(cfg), "--listen", "127.0.0.1:0")
        assert r.returncode == 1, r.stderr
        assert "Traceback" not in r.stderr
        said = [ln for ln in r.stderr.splitlines() if ln.startswith("tslcd: ")]
        assert len(said) == 1 and "h.sqlite" in said[0] and "another" in said[0]
