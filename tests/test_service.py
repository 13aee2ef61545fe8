"""The service's scheduling and bookkeeping: no overlapping sweeps, overruns reported, maintenance windows."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from monitor.lab.demo import inventory_yaml
from monitor.runtime.service import Monitor, maintenance_codes
from tests.conftest import FakePing, ScriptedSweeper, small_inventory, write_config

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def make(tmp_path: Path, sweeper: Any, extra: str = "") -> Monitor:
    inv = small_inventory()
    path = tmp_path / "inv.yaml"
    path.write_text(inventory_yaml(inv.nodes), encoding="utf-8")
    cfg = write_config(tmp_path, path, extra)
    return Monitor(cfg, inv, sweeper, inventory_path=path)


class SlowSweeper(ScriptedSweeper):
    """Each sweep waits until the test releases it; records how many ran at once."""

    def __init__(self) -> None:
        super().__init__()
        self.running = 0
        self.most = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def sweep(self, addresses: Sequence[str], **kw: Any) -> dict[str, FakePing]:  # type: ignore[override]
        self.running += 1
        self.most = max(self.most, self.running)
        self.started.set()
        try:
            await self.release.wait()
            return await super().sweep(addresses, **kw)
        finally:
            self.running -= 1


async def test_sweeps_never_overlap_and_an_overrun_is_reported(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    sweeper = SlowSweeper()
    mon = make(tmp_path, sweeper)
    # The shortest interval config allows (1 s), to see several scheduled starts quickly.
    mon.cfg = mon.cfg.model_copy(update={"icmp": mon.cfg.icmp.model_copy(update={"interval_s": 1.0,
                                                                                    "timeout_s": 0.1})})
    stop = asyncio.Event()
    urls: list[str] = []
    task = asyncio.create_task(mon.run("127.0.0.1:0", ready=urls.append, stop=stop))
    try:
        await asyncio.wait_for(sweeper.started.wait(), 10)
        # Hold the first sweep past two more scheduled starts: the scheduler must skip, not stack.
        loop = asyncio.get_running_loop()
        t_end = loop.time() + 2.5
        while loop.time() < t_end:
            await asyncio.sleep(0.1)
            assert sweeper.running <= 1
        with caplog.at_level(logging.WARNING, logger="tslcd.service"):
            sweeper.release.set()
            for _ in range(100):  # bounded wait for the first sweep to finish
                if mon.snapshot.sweeps >= 1:
                    break
                await asyncio.sleep(0.05)
        assert mon.snapshot.sweeps >= 1
        assert mon.snapshot.sweep.overrun and mon.snapshot.sweep.duration_s > 1.0
        assert any(r.getMessage() == "sweep overran its interval" for r in caplog.records)
        assert sweeper.most == 1
        assert mon.self_metrics.sweep_duration.labels("icmp")._value.get() > 1.0
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def test_maintenance_windows_use_the_province_timezone(tmp_path: Path) -> None:
    extra = ("maintenance:\n  - start: 2026-12-01T22:00:00\n    end: 2026-12-02T02:00:00\n"
             "    areas: [B]\n    codes: ['24133']\n")
    mon = make(tmp_path, ScriptedSweeper(), extra)
    nodes = mon.inventory.nodes
    inside = datetime(2026, 12, 1, 23, 0, tzinfo=TZ).timestamp()
    before = datetime(2026, 12, 1, 21, 59, tzinfo=TZ).timestamp()
    assert maintenance_codes(mon.cfg, nodes, inside) == {"24133", "22015", "22045"}
    assert maintenance_codes(mon.cfg, nodes, before) == frozenset()
    # 22:30 in Hanoi is 15:30 UTC: a naive time is the province's, not UTC.
    assert maintenance_codes(mon.cfg, nodes, datetime(2026, 12, 1, 22, 30, tzinfo=ZoneInfo("UTC")).timestamp()) \
        == frozenset()


async def test_a_node_in_maintenance_is_in_state_maintenance_and_so_are_the_nodes_behind_it(tmp_path: Path) -> None:
    """Issue 17, part 3: planned works on an aggregation node keep its communes out of availability too (they were
    unreachable, so counted against availability, before)."""
    now = datetime(2026, 12, 1, 23, 0, tzinfo=TZ).timestamp()
    extra = ("maintenance:\n  - start: 2026-12-01T22:00:00\n    end: 2026-12-02T02:00:00\n"
             "    codes: [AGG]\n")
    sweeper = ScriptedSweeper(down={"127.0.0.2", "127.0.0.3"})
    mon = make(tmp_path, sweeper, extra)
    mon.clock = lambda: now
    for _ in range(2):
        snap = await mon.sweep_once()
    by = {ns.node.code: ns for ns in snap.nodes}
    assert by["AGG"].state == "maintenance"
    assert {c: by[c].state for c in ("24133", "24121", "24154")} == {c: "maintenance" for c in ("24133", "24121",
                                                                                                  "24154")}
    assert by["22015"].state == "up"  # not behind AGG


class BrokenRecorder:
    """A history store that fails every write (a full disk, PostgreSQL down)."""

    maintenance = ()  # no window declared at run time

    def __init__(self) -> None:
        self.calls = 0

    async def on_sweep(self, *args: Any, **kwargs: Any) -> None:
        self.calls += 1
        raise OSError("disk full")

    def recent(self) -> None:
        return None


async def test_a_failing_store_does_not_stop_states_being_published(tmp_path: Path) -> None:
    sweeper = ScriptedSweeper()
    mon = make(tmp_path, sweeper)
    rec = BrokenRecorder()
    mon.recorder = rec  # type: ignore[assignment]
    mon._snmp_pending = {"24133": (100, 50, 0)}
    snap = await mon.sweep_once()
    sweeper.down = {"127.0.0.6"}
    for _ in range(2):
        snap = await mon.sweep_once()
    assert rec.calls == 3
    assert {ns.node.code: ns.state for ns in snap.nodes}["22015"] == "down"
    assert mon.snapshot is snap and snap.sweeps == 3
    assert mon._snmp_pending == {"24133": (100, 50, 0)}  # kept for the next successful write


class RateSweeper(ScriptedSweeper):
    """Remembers the packet-rate cap each sweep was given."""

    def __init__(self) -> None:
        super().__init__()
        self.caps: list[int] = []

    async def sweep(self, addresses: Sequence[str], **kw: Any) -> dict[str, FakePing]:  # type: ignore[override]
        self.caps.append(kw["pps"])
        return await super().sweep(addresses, **kw)


def test_the_packet_rate_cap_follows_the_inventory_when_unset() -> None:
    """Issue 13: at 40,000 nodes a fixed 5,000/s cap spent 24 s of a 30 s sweep sending; unset, it follows."""
    from monitor.config import Icmp
    auto = Icmp()
    assert auto.pps is None
    assert auto.pps_for(20) == 5000  # never under the old fixed default
    assert auto.pps_for(20_000) == 5000  # 2 x 20,000 x 3 / 30 = 4,000
    assert auto.pps_for(40_000) == 8000  # 2 x 40,000 x 3 / 30: the echoes in half the interval
    assert auto.sending_s(40_000) == pytest.approx(15.0)
    assert Icmp(pps=7000).pps_for(40_000) == 7000  # a configured cap is a cap
    assert Icmp(interval_s=60, count=2).pps_for(300_000) == 20_000


async def test_a_configured_cap_too_low_for_the_inventory_is_said_once_and_the_sweep_still_runs(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sweeper = RateSweeper()
    mon = make(tmp_path, sweeper)
    with caplog.at_level(logging.WARNING, logger="tslcd.service"):
        await mon.sweep_once()
        assert sweeper.caps == [5000]  # unset: the floor, for a handful of nodes
        assert not [r for r in caplog.records if r.getMessage().startswith("icmp.pps")]
        targets = len({n.address for n in mon.inventory.nodes if n.address})
        # 5 s interval (write_config); 10 echoes a node at 10 a second (the least pps allows): 1 s a node, past
        # 4 s (80 % of the interval) for the 6 addresses. The scripted sweeper answers at once all the same.
        mon.cfg = mon.cfg.model_copy(update={"icmp": mon.cfg.icmp.model_copy(update={"pps": 10, "count": 10})})
        assert mon.cfg.icmp.sending_s(targets) > 4.0
        await mon.sweep_once()
        await mon.sweep_once()
    assert sweeper.caps[1:] == [10, 10]
    said = [r for r in caplog.records if r.getMessage().startswith("icmp.pps is too low")]
    assert len(said) == 1 and said[0].pps == 10 and said[0].addresses == targets  # type: ignore[attr-defined]
    assert mon.snapshot.sweeps == 3
