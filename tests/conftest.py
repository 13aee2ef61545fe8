"""Shared fixtures: configs in tmp_path, a scripted ICMP sweeper for pure-logic tests, a running web server."""

from __future__ import annotations

import asyncio
import itertools
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from inventory.model import Inventory, Node
from monitor.config import Config, load_config


@dataclass(frozen=True)
class FakePing:
    """Stands in for monitor.probes.icmp.PingResult where the test scripts reachability."""

    reachable: bool
    loss_ratio: float = 0.0
    rtt_min: float | None = 0.001
    rtt_avg: float | None = 0.002
    rtt_max: float | None = 0.003
    jitter: float | None = 0.0005


@dataclass
class ScriptedSweeper:
    """An ICMP sweeper whose answers the test sets: addresses in ``down`` do not answer."""

    down: set[str] = field(default_factory=set)
    sweeps: int = 0

    async def sweep(self, addresses: Sequence[str], *, count: int, timeout_s: float, pps: int,
                    interval_s: float) -> dict[str, FakePing]:
        self.sweeps += 1
        return {a: (FakePing(False, 1.0, None, None, None, None) if a in self.down else FakePing(True))
                for a in addresses}

    def close(self) -> None:
        pass


def write_config(tmp_path: Path, inventory: Path, extra: str = "") -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(f"province: Đắk Lắk\ninventory: {inventory}\nweb:\n  listen: 127.0.0.1:0\n"
                    f"icmp:\n  interval_s: 5\n  timeout_s: 0.5\n  echo_interval_s: 0.05\n{extra}",
                    encoding="utf-8")
    return load_config(path)


def small_inventory() -> Inventory:
    """core -> agg -> 3 communes, one more commune direct, one commune without a circuit."""
    p = "Đắk Lắk"
    return Inventory.of([
        Node("CORE", "Lõi", "core", p, address="127.0.0.1"),
        Node("AGG", "Tập trung", "aggregation", p, area="A", address="127.0.0.2", parent="CORE"),
        Node("24133", "Phường Buôn Ma Thuột", "commune", p, area="A", address="127.0.0.3", parent="AGG"),
        Node("24121", "Phường Tân An", "commune", p, area="A", address="127.0.0.4", parent="AGG"),
        Node("24154", "Xã Hòa Phú", "commune", p, area="A", address="127.0.0.5", parent="AGG"),
        Node("22015", "Phường <b>Tuy Hòa</b>", "commune", p, area="B", address="127.0.0.6", parent="CORE"),
        Node("22045", "Phường Bình Kiến", "commune", p, area="B", parent="CORE"),
    ])


CHROMIUM = "/usr/bin/chromium"  # Debian's; scripts/test.sh installs it (Playwright's own download cannot work here)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Debian Chromium driven by Playwright, with no background networking."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A PostgreSQL server of the test session's own (Debian's binaries, loopback and a socket only): its URL."""
    from monitor.lab.postgres import binaries, server

    if binaries() is None:
        pytest.skip("PostgreSQL is not installed (scripts/test.sh installs it as root)")
    with server() as url:
        yield url


_DATABASES = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty history store on each backend: a SQLite file, and a database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/var/tslcd.sqlite"
    from monitor.lab.postgres import database

    return database(request.getfixturevalue("postgres"), f"t{os.getpid()}_{next(_DATABASES)}")


def stop(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, grace_s: float = 30) -> int | None:
    """Stop a process the test started, by its PID: ``sig``, then SIGKILL after ``grace_s``; its exit status
    (None when it had to be killed)."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(sig)
    try:
        return proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        return None


_URL = re.compile(r"status page (http://\S+/)")


def wait_for_url(proc: subprocess.Popen[str], deadline_s: float = 60) -> str:
    """Read a `tslcd run`/`demo` process's stderr until its status page URL, within a deadline.

    A thread keeps draining stderr afterwards, so a full pipe never blocks the process.
    """
    assert proc.stderr is not None
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    end = time.monotonic() + deadline_s
    while (left := end - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if m := _URL.search(line):
            return m.group(1)
    raise AssertionError("no status page URL on stderr:\n" + "".join(seen[-20:]))


@pytest.fixture(autouse=True)
def _restore_environ() -> object:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
async def served() -> AsyncIterator[object]:
    """Start a Monitor's HTTP server on a free port; the test fills in `monitor` via the factory."""
    from monitor.runtime.service import Monitor  # noqa: F401

    runners: list[object] = []

    async def start(monitor: object) -> str:
        from exporters.web import start_server

        runner, url = await start_server(monitor, "127.0.0.1:0")  # type: ignore[arg-type]
        runners.append(runner)
        return url

    yield start
    for r in runners:
        await r.cleanup()  # type: ignore[attr-defined]
    await asyncio.sleep(0)
