"""Pollers sharing one history (issue 14, part 2): each watches its shard, the figures from the shared store equal
what one poller watching everything reports, a killed poller's nodes become unknown (never up or down) while the
other's go on, and a poller whose shard overlaps a live one's is refused with a clear message."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from monitor.core.history import day_span
from monitor.errors import StoreError
from tests.conftest import ScriptedSweeper, small_inventory

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
D1 = date(2026, 11, 1)
T0 = day_span(D1, HCM)[0]
STEP = 300.0


def _poller(tmp: Path, name: str, url: str, clock: list[float], sweeper: ScriptedSweeper, shard: str = "") -> Any:
    from monitor.config import load_config
    from monitor.lab.demo import inventory_yaml
    from monitor.runtime.recorder import Recorder
    from monitor.runtime.service import Monitor
    from monitor.store import SqlStore

    inv = small_inventory()
    (tmp / "inv.yaml").write_text(inventory_yaml(inv.nodes), encoding="utf-8")
    (tmp / f"{name}.yaml").write_text(
        f"province: Đắk Lắk\ninventory: inv.yaml\nicmp:\n  interval_s: {STEP:g}\n"
        f"states:\n  down_after: 1\n  up_after: 1\n{shard}", encoding="utf-8")
    cfg = load_config(tmp / f"{name}.yaml")
    rec = Recorder(SqlStore(url), cfg, clock=lambda: clock[0])
    return Monitor(cfg, inv, sweeper, clock=lambda: clock[0], recorder=rec)  # type: ignore[arg-type]


def _down_at(t: float) -> set[str]:
    """AGG down 02:00-05:00 with 24133 and 24121 behind it (unreachable; 24154 answers on another path), and
    22015 (area B) down 13:00-16:00: three hours of 24 each, under the 90 % a day must reach."""
    h = (t - T0) / 3600
    agg = {"127.0.0.2", "127.0.0.3", "127.0.0.4"} if 2 <= h < 5 else set()
    return agg | ({"127.0.0.6"} if 13 <= h < 16 else set())


async def test_two_pollers_report_what_one_reports_and_a_killed_one_leaves_its_nodes_unknown(
        tmp_path: Path, store_url: str, postgres: str) -> None:
    from exporters.audit import build_report
    from monitor.lab.postgres import database
    from monitor.store import SqlStore

    clock = [T0]
    one_url = database(postgres, f"one_{abs(hash(store_url)) % 10**8}") if "postgresql" in store_url else \
        f"sqlite:///{tmp_path}/one.sqlite"
    sweepers = [ScriptedSweeper() for _ in range(3)]
    one = _poller(tmp_path, "one", one_url, clock, sweepers[0])
    west = _poller(tmp_path, "west", store_url, clock, sweepers[1], "shard:\n  areas: ['A', '']\n")
    east = _poller(tmp_path, "east", store_url, clock, sweepers[2], "shard:\n  areas: ['B']\n")
    for mon in (one, west, east):
        await mon.recorder.on_start(mon.inventory)
    # A third poller watching area B too is refused while east is alive, and says why.
    with pytest.raises(StoreError, match=r"another monitor .*shard areas:B;provinces:.* nodes this one would watch"):
        SqlStore(store_url).start_run(T0 + 1, max_gap_s=900, shard=east.cfg.shard_spec)

    for k in range(int(1.25 * 86_400 / STEP)):  # a day and six hours, everybody sweeping
        clock[0] = T0 + STEP * (k + 1)
        for s in sweepers:
            s.down = _down_at(clock[0])
        for mon in (one, west, east):
            await mon.sweep_once()
    assert {ns.node.code for ns in west.snapshot.nodes} == {"CORE", "AGG", "24133", "24121", "24154"}
    assert {ns.node.code for ns in east.snapshot.nodes} == {"22015", "22045"}

    killed_at = clock[0]  # east is killed -9: no more heartbeats, no stop; west and one go on for two hours
    for k in range(int(2 * 3600 / STEP)):
        clock[0] = killed_at + STEP * (k + 1)
        for mon in (one, west):
            await mon.sweep_once()
    for mon in (one, west):
        await mon.recorder.on_stop()

    shared, single = west.recorder.store, one.recorder.store
    now = clock[0]
    a = build_report(single, one.cfg, D1, D1, now=now)
    b = build_report(shared, west.cfg, D1, D1, now=now)
    assert (a.summary, a.daily[0].rate, a.communes, [o for o, _ in a.outages]) == \
        (b.summary, b.daily[0].rate, b.communes, [o for o, _ in b.outages])
    assert (a.daily[0].rate.communes, a.daily[0].rate.connected) == (5, 1)  # 24154 only; 22045: no circuit
    assert {(t.code, round(o.down_s), round(o.unreachable_s)) for o, t in b.outages} == {
        ("24133", 0, 3 * 3600), ("24121", 0, 3 * 3600), ("22015", 3 * 3600, 0)}  # behind AGG: unreachable
    # The day after: east's communes unknown since east's last heartbeat; west's observed to the end.
    (h,) = shared.history(date(2026, 11, 2), date(2026, 11, 2), HCM)
    units = {n.code: n.unit for n in shared.inventory_nodes(h.inventory_version or 1)}
    start = day_span(date(2026, 11, 2), HCM)[0]
    east_row, west_row = h.rows[units["22015"]], h.rows[units["24133"]]
    assert east_row.seconds.up == pytest.approx(killed_at - start, abs=STEP + 1)
    assert east_row.seconds.down == 0 and east_row.seconds.unreachable == 0
    assert west_row.seconds.up == pytest.approx(now - start, abs=STEP + 1)


def test_pollers_sealing_at_once_seal_each_day_once(store_url: str) -> None:
    """Two pollers reaching midnight together: each day sealed exactly once, no error for the slower one, one
    chain that verifies (issue 14: sealing done once across pollers)."""
    import threading

    from monitor.store import ChangeRow, SqlStore, SweepBatch

    setup = SqlStore(store_url)
    inv = small_inventory()
    ids = {code: u for (code, _), u in setup.record_inventory(inv, T0 - 10).units.items()}
    run = setup.start_run(T0, max_gap_s=900)
    setup.write_sweep(SweepBatch(run, T0, [ChangeRow(ids["24133"], T0, "unknown", "up")]))
    for k in range(1, 3 * 288):
        setup.write_sweep(SweepBatch(run, T0 + 300 * k))
    stores = [SqlStore(store_url) for _ in range(4)]
    results: list[list[date] | BaseException] = []
    go = threading.Barrier(len(stores))

    def seal(s: SqlStore) -> None:
        go.wait(timeout=30)
        try:
            results.append(s.seal_due(T0 + 3 * 86_400 + 1000, HCM, 900))
        except BaseException as e:  # noqa: BLE001  (the test reports it)
            results.append(e)

    threads = [threading.Thread(target=seal, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not [r for r in results if isinstance(r, BaseException)], results
        sealed = sorted(d for r in results if isinstance(r, list) for d in r)
        assert sealed == [D1, date(2026, 11, 2), date(2026, 11, 3)]  # each day by exactly one of them
        assert setup.verify().ok and [x.day for x in setup.seals()] == sealed
    finally:
        for s in (setup, *stores):
            s.close()
