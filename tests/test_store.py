"""The history store on SQLite in tmp_path: migrations, one transaction per sweep, windows, seals and verify."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, func, select

from inventory.model import Inventory, Node
from monitor.core.history import DOWN, UNKNOWN, UP, Seconds, day_span, merge_outages
from monitor.store import CauseRow, ChangeRow, SampleRow, SqlStore, StoreError, SweepBatch, chain
from monitor.store import migrate as store_migrate
from monitor.store.schema import events, metadata

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
D = date(2025, 6, 30)
P = "Đắk Lắk"
T0 = day_span(D, HCM)[0]


@pytest.fixture
def db(store_url: str) -> str:
    """The store's URL, on SQLite and on a real PostgreSQL (the same tests, parametrised: issue 14)."""
    return store_url


@pytest.fixture
def store(db: str) -> Iterator[SqlStore]:
    s = SqlStore(db)
    yield s
    s.close()


def inventory(n: int = 3) -> Inventory:
    return Inventory.of([Node(f"2400{i}", f"Xã {i}", "commune", P, area="A", address=f"198.18.0.{i + 1}")
                         for i in range(n)])


def test_migrations_create_the_schema_of_schema_py(store: SqlStore, db: str) -> None:
    with store.engine.connect() as conn:
        assert store_migrate.current(conn) == store_migrate.head() == store_migrate.shipped_head()
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diffs == []
    if store.sqlite:
        con = sqlite3.connect(db.removeprefix("sqlite:///"))
        try:
            assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            con.close()


def test_reopening_keeps_the_data_and_does_not_migrate_again(db: str) -> None:
    s = SqlStore(db)
    run = s.start_run(T0, max_gap_s=90)
    s.close()
    s = SqlStore(db)
    try:
        assert [r.id for r in s.runs()] == [run]
    finally:
        s.close()


def test_a_missing_store_is_an_error_when_create_is_off(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no history store at"):
        SqlStore(f"sqlite:///{tmp_path}/nowhere.sqlite", create=False)


def test_a_sweep_of_20000_nodes_is_one_transaction(store: SqlStore) -> None:
    inv = Inventory.of([Node(f"{i:05d}", f"Xã {i}", "commune", P, address=f"198.18.{i // 250}.{i % 250 + 1}")
                        for i in range(20_000)])
    units = store.record_inventory(inv, T0).units
    run = store.start_run(T0, max_gap_s=90)
    commits: list[int] = []
    event.listen(store.engine, "commit", lambda conn: commits.append(1))
    ids = list(units.values())
    store.write_sweep(SweepBatch(run, T0 + 30, [ChangeRow(u, T0 + 30, UNKNOWN, UP) for u in ids],
                                 [SampleRow(D, u, 1, 1, 2000, 0) for u in ids]))
    assert len(commits) == 1
    (h,) = store.history(D, D, HCM)
    assert len(h.rows) == 20_000 and h.rows[ids[0]].rtt_mean_s == 0.002


def test_heartbeats_extend_a_window_and_a_long_gap_opens_a_new_one(store: SqlStore) -> None:
    units = store.record_inventory(inventory(1), T0).units
    (u,) = units.values()
    run = store.start_run(T0, max_gap_s=90)
    store.write_sweep(SweepBatch(run, T0 + 3600, [ChangeRow(u, T0 + 3600, UNKNOWN, UP)]))
    for k in range(1, 61):
        store.write_sweep(SweepBatch(run, T0 + 3600 + 60 * k))  # one hour, every 60 s
    store.write_sweep(SweepBatch(run, T0 + 3 * 3600))  # 1 h later: a gap
    store.write_sweep(SweepBatch(run, T0 + 3 * 3600 + 60))
    (h,) = store.history(D, D, HCM)
    assert h.observed_s == 3600 + 60
    assert h.rows[u].seconds == Seconds(up=3660, unknown=86_400 - 3660)


def test_a_code_reused_by_another_unit_gets_its_own_identity(store: SqlStore) -> None:
    july = date(2025, 7, 1)
    inv = Inventory.of([
        Node("24133", "Phường Thành Công", "commune", P, address="198.18.0.1", active_until=D),
        Node("24133", "Phường Buôn Ma Thuột", "commune", P, address="198.18.0.2", active_from=july),
    ])
    rec = store.record_inventory(inv, T0)
    assert len(set(rec.units.values())) == 2
    nodes = store.inventory_nodes(rec.version)
    assert {(n.name, n.active_on(D), n.active_on(july)) for n in nodes} == {
        ("Phường Thành Công", True, False), ("Phường Buôn Ma Thuột", False, True)}
    again = store.record_inventory(inv, T0 + 10)
    assert (again.version, again.new) == (rec.version, False)  # unchanged: no new version


def fill(store: SqlStore, n_days: int = 3) -> dict[str, int]:
    """Three communes observed for ``n_days`` days from D; 24001 is down 02:00-03:00 every day."""
    units = store.record_inventory(inventory(3), T0 - 10).units
    ids = {code: u for (code, _), u in units.items()}
    run = store.start_run(T0, max_gap_s=300)
    store.write_sweep(SweepBatch(run, T0, [ChangeRow(u, T0, UNKNOWN, UP) for u in ids.values()]))
    for d in range(n_days):
        base = T0 + d * 86_400
        for k in range(1, 24 * 12 + 1):  # every 5 minutes
            t = base + k * 300
            changes = []
            if k == 2 * 12:
                changes = [ChangeRow(ids["24001"], t, UP, DOWN)]
            elif k == 3 * 12:
                changes = [ChangeRow(ids["24001"], t, DOWN, UP)]
            store.write_sweep(SweepBatch(run, t, changes,
                                         [SampleRow(D + timedelta(days=d), u, 1, 1, 1500, 0) for u in ids.values()]))
    return ids


def test_finished_days_are_sealed_in_order_and_verify_clean(store: SqlStore) -> None:
    ids = fill(store)
    sealed = store.seal_due(T0 + 3 * 86_400 + 301, HCM, 300)
    assert sealed == [D, D + timedelta(days=1), D + timedelta(days=2)]
    assert store.seal_due(T0 + 3 * 86_400 + 400, HCM, 300) == []  # nothing new
    res = store.verify()
    assert res.ok and res.checked == 3 and res.head is not None and res.head.day == D + timedelta(days=2)
    seals = store.seals()
    assert seals[0].prev == "0" * 64 and seals[1].prev == seals[0].digest
    (h,) = store.history(D + timedelta(days=1), D + timedelta(days=1), HCM)
    assert h.seal is not None and h.coverage == 1.0
    assert h.rows[ids["24001"]].seconds == Seconds(up=82_800, down=3600)
    assert h.rows[ids["24001"]].samples == 288
    ((unit, piece),) = h.outages
    assert unit == ids["24001"] and piece.duration == 3600 and piece.ended_by == UP


def test_a_day_sealed_reads_the_same_as_it_was_computed(store: SqlStore) -> None:
    fill(store, 2)
    before = list(store.history(D, D + timedelta(days=1), HCM))
    store.seal_due(T0 + 2 * 86_400 + 301, HCM, 300)
    after = list(store.history(D, D + timedelta(days=1), HCM))
    assert [h.seal is None for h in before] == [True, True] and all(h.seal for h in after)
    for b, a in zip(before, after, strict=True):
        assert b.rows == a.rows and b.outages == a.outages and b.observed_s == a.observed_s


def tamper(db: str, sql: str, **params: object) -> None:
    """Change the store behind its back, as someone with the database's password could (one row)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db)
    try:
        with engine.begin() as conn:
            assert conn.execute(text(sql), params).rowcount == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize("sql", [
    "UPDATE daily SET down_s = 0, up_s = 86400 WHERE day = :day AND down_s > 0",
    "UPDATE outages SET end_at = end_at - 600 WHERE day = :day",
    "DELETE FROM outages WHERE day = :day",
    "UPDATE seals SET observed_s = observed_s - 1 WHERE day = :day",
])
def test_verify_names_the_day_whose_stored_data_changed(store: SqlStore, db: str, sql: str) -> None:
    fill(store)
    store.seal_due(T0 + 3 * 86_400 + 301, HCM, 300)
    assert store.verify().ok
    middle = D + timedelta(days=1)
    tamper(db, sql, day=middle)
    res = store.verify()
    assert not res.ok and res.first_bad == middle
    assert any(p.startswith(f"{middle}: its data no longer matches") for p in res.problems)
    assert store.verify(D, D).ok  # the day before is untouched
    assert store.verify(middle + timedelta(days=1)).ok  # the day after still links to the stored digest


def test_verify_names_the_first_day_using_a_changed_inventory(store: SqlStore, db: str) -> None:
    fill(store)
    store.seal_due(T0 + 3 * 86_400 + 301, HCM, 300)
    tamper(db, "UPDATE inventory_nodes SET address = '' WHERE unit_id = (SELECT min(unit_id) FROM inventory_nodes)")
    assert store.verify().first_bad == D


def test_verify_finds_a_broken_link_and_a_missing_day(store: SqlStore, db: str) -> None:
    fill(store)
    store.seal_due(T0 + 3 * 86_400 + 301, HCM, 300)
    tamper(db, "UPDATE seals SET prev = :prev WHERE day = :day", prev="f" * 64, day=D + timedelta(days=2))
    res = store.verify()
    assert res.first_bad == D + timedelta(days=2) and any("link" in p for p in res.problems)
    tamper(db, "DELETE FROM seals WHERE day = :day", day=D + timedelta(days=1))
    assert store.verify().first_bad == D + timedelta(days=1)


def test_samples_for_a_sealed_day_are_dropped_never_written(store: SqlStore) -> None:
    ids = fill(store, 1)
    store.seal_due(T0 + 86_400 + 301, HCM, 300)
    run = store.runs()[-1].id
    store.write_sweep(SweepBatch(run, None, (), [SampleRow(D, ids["24000"], 5, 5, 5, 5)]))
    assert store.verify().ok


def test_days_the_monitor_did_not_run_are_sealed_too_so_the_chain_has_no_hole(store: SqlStore) -> None:
    fill(store, 1)
    store.seal_due(T0 + 5 * 86_400, HCM, 300)
    seals = store.seals()
    assert [s.day for s in seals] == [D + timedelta(days=i) for i in range(4)]
    assert [s.observed_s for s in seals[1:]] == [0, 0, 0] and [s.rows for s in seals[1:]] == [0, 0, 0]
    (h,) = store.history(D + timedelta(days=2), D + timedelta(days=2), HCM)
    assert h.rows == {} and h.coverage == 0


def test_retention_purges_old_raw_events_but_keeps_each_units_state(store: SqlStore, db: str) -> None:
    ids = fill(store, 3)
    store.seal_due(T0 + 3 * 86_400 + 301, HCM, 300)
    with store.engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(events)).scalar()
    gone = store.purge_events(T0 + 2 * 86_400, HCM)
    assert gone == before - 3 - 2  # keeps each unit's last change before the cutoff, and the day after's pair
    assert store.verify().ok  # sealed days never depended on raw events
    # The next (unsealed) day still knows every unit is up.
    run = store.runs()[-1].id
    store.write_sweep(SweepBatch(run, T0 + 3 * 86_400 + 300))
    (h,) = store.history(D + timedelta(days=3), D + timedelta(days=3), HCM)
    assert h.rows[ids["24002"]].seconds.up == 300


# -- the recorder: what the service will call ------------------------------------------------------------


def recorded_monitor(tmp_path: Path, clock: list[float], url: str) -> tuple[Any, Any, Any, Any]:
    from monitor.config import load_config
    from monitor.lab.demo import inventory_yaml
    from monitor.runtime.recorder import Recorder
    from monitor.runtime.service import Monitor
    from tests.conftest import ScriptedSweeper, small_inventory

    inv = small_inventory()
    path = tmp_path / "inv.yaml"
    path.write_text(inventory_yaml(inv.nodes), encoding="utf-8")
    (tmp_path / "config.yaml").write_text(
        f"province: {P}\ninventory: inv.yaml\nicmp:\n  interval_s: 300\n"
        "states:\n  down_after: 1\n  up_after: 1\n", encoding="utf-8")
    cfg = load_config(tmp_path / "config.yaml")
    sweeper = ScriptedSweeper()
    mon = Monitor(cfg, inv, sweeper, clock=lambda: clock[0])  # type: ignore[arg-type]
    rec = Recorder(SqlStore(url), cfg, clock=lambda: clock[0])
    return mon, rec, sweeper, inv


async def sweep(mon: Any, rec: Any, inv: Inventory, clock: list[float], t: float) -> None:
    clock[0] = t
    events: list[Any] = []
    mon.event_sinks[:] = [events.extend]
    snap = await mon.sweep_once()
    await rec.on_sweep(t, snap, events, inv)


async def test_recorder_keeps_today_and_past_days_for_the_page_and_metrics(tmp_path: Path, store_url: str) -> None:
    from dataclasses import replace

    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from exporters.status import render_status_page

    clock = [T0]
    mon, rec, sweeper, inv = recorded_monitor(tmp_path, clock, store_url)
    await rec.on_start(inv)
    for k in range(36 * 12):  # a day and a half, a sweep every 5 min; 22015 down 01:00-04:00 on day 1
        t = T0 + 300 * (k + 1)
        sweeper.down = {"127.0.0.6"} if 3600 <= t - T0 < 4 * 3600 else set()
        await sweep(mon, rec, inv, clock, t)
    await rec.on_stop()
    recent = rec.recent()
    assert recent is not None and [d.day for d in recent.days] == [D] and recent.days[0].sealed
    prov_day = recent.province_row(recent.days[0].rates)
    assert prov_day is not None and (prov_day.communes, prov_day.connected) == (5, 3)  # 22015 only 87.5%
    today = recent.province_row(recent.today.rates)
    assert today is not None and today.connected == 4 and recent.today.coverage > 0.99
    registry = CollectorRegistry(auto_describe=False)
    registry.register(rec.collector())
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(generate_latest(registry).decode()) for s in f.samples}
    key = (("area", ""), ("period", "yesterday"), ("province", "Đắk Lắk"))
    assert samples[("tslcd_connected_day_rate_ratio", key)] == 0.6
    assert samples[("tslcd_connected_day_rate_ratio", (("area", ""), ("period", "today"), ("province", "Đắk Lắk")))] \
        == 0.8
    assert samples[("tslcd_history_sealed_through_timestamp_seconds", ())] == day_span(D, HCM)[1]
    html = render_status_page(replace(mon.snapshot, history=recent))
    assert 'id="day-today"' in html and "60.0%" in html and "80.0%" in html


async def test_a_node_leaving_the_inventory_becomes_unknown_not_up(tmp_path: Path, store_url: str) -> None:
    clock = [T0]
    mon, rec, sweeper, inv = recorded_monitor(tmp_path, clock, store_url)
    for k in range(1, 4):
        await sweep(mon, rec, inv, clock, T0 + 5 * k)
    smaller = Inventory.of([n for n in inv.nodes if n.code != "24154"], source="smaller")
    mon.inventory = smaller
    await sweep(mon, rec, smaller, clock, T0 + 20)
    await sweep(mon, rec, smaller, clock, T0 + 25)
    await rec.on_stop()
    store = rec.store
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT e.old, e.new, e.cause, e.at FROM events e JOIN units u ON u.id = e.unit_id"
                                    " WHERE u.code = '24154' ORDER BY e.id").all()
    assert [tuple(r) for r in rows] == [("unknown", "up", None, T0 + 5), ("up", "unknown", "not monitored", T0 + 20)]
    assert len(store.inventory_versions()) == 2
    (h,) = store.history(D, D, HCM)
    unit = next(n.unit for n in store.inventory_nodes(1) if n.code == "24154")
    assert h.rows[unit].seconds.up == 15


async def test_a_failed_write_is_retried_and_its_gap_is_unknown(tmp_path: Path, store_url: str) -> None:
    clock = [T0]
    mon, rec, sweeper, inv = recorded_monitor(tmp_path, clock, store_url)
    await sweep(mon, rec, inv, clock, T0 + 5)
    real = rec.store.write_sweep
    calls = []

    def failing(batch: SweepBatch) -> None:
        calls.append(batch)
        if len(calls) == 1:
            raise OSError("disk full")
        real(batch)

    rec.store.write_sweep = failing
    sweeper.down = {"127.0.0.6"}
    await sweep(mon, rec, inv, clock, T0 + 10)  # 22015 goes down; the write fails
    await sweep(mon, rec, inv, clock, T0 + 15)  # retried with this one
    await rec.on_stop()
    assert rec.write_failures == 1 and [c.unit for c in calls[1].changes] == [c.unit for c in calls[0].changes]
    (h,) = rec.store.history(D, D, HCM)
    unit = next(n.unit for n in rec.store.inventory_nodes(1) if n.code == "22015")
    # Window 5..15 (one heartbeat lost, within the max gap): up 5..10, down 10..15.
    assert h.rows[unit].seconds == Seconds(up=5, down=5, unknown=86_390)


def test_a_second_monitor_on_the_same_store_is_refused_a_killed_one_is_not(store: SqlStore, db: str) -> None:
    run = store.start_run(T0, max_gap_s=90)
    store.write_sweep(SweepBatch(run, T0 + 30))
    with pytest.raises(StoreError, match="another monitor .* is writing"):
        store.start_run(T0 + 40, max_gap_s=90)  # this process is alive and its run is not stopped
    tamper(db, "UPDATE runs SET pid = :pid WHERE id = :id", pid=2**22 + 1, id=run)  # as if it had been killed
    assert store.start_run(T0 + 40, max_gap_s=90) > run


async def test_nothing_observed_today_yet_shows_no_rate_rather_than_zero(tmp_path: Path, store_url: str) -> None:
    from dataclasses import replace

    from prometheus_client import CollectorRegistry, generate_latest

    from exporters.status import render_status_page

    clock = [T0 + 3600]
    mon, rec, _, inv = recorded_monitor(tmp_path, clock, store_url)
    await rec.on_start(inv)
    await sweep(mon, rec, inv, clock, clock[0])  # the first sweep: no time observed yet
    recent = rec.recent()
    assert recent is not None and recent.today.coverage == 0
    registry = CollectorRegistry(auto_describe=False)
    registry.register(rec.collector())
    text = generate_latest(registry).decode()
    assert 'tslcd_connected_day_rate_ratio{area="",period="today"' not in text
    html = render_status_page(replace(mon.snapshot, history=recent))
    assert "chưa đủ dữ liệu" in html
    await sweep(mon, rec, inv, clock, clock[0] + 300)
    rec._recent_at = float("-inf")  # the refresh is throttled to once a minute; force it
    await sweep(mon, rec, inv, clock, clock[0] + 300)
    recent = rec.recent()
    assert recent is not None and recent.today.coverage > 0
    registry = CollectorRegistry(auto_describe=False)
    registry.register(rec.collector())
    assert 'tslcd_connected_day_rate_ratio{area="",period="today",province="Đắk Lắk"} 0.8' in \
        generate_latest(registry).decode()
    await rec.on_stop()


async def test_a_day_the_monitor_did_not_run_is_no_data_on_metrics_and_the_page(tmp_path: Path,
                                                                               store_url: str) -> None:
    """Day D observed (22015 down 3 h: 3 of 5 connected), D+1 the monitor stopped all day, D+2 observed
    (all connected): yesterday (D+1) has no rate series, the 30-day rate is the mean of D and D+2 only,
    and the page says "no data" for D+1 (issue 16: unobserved is not disconnected)."""
    from dataclasses import replace

    from prometheus_client import CollectorRegistry, generate_latest

    from exporters.status import render_status_page

    clock = [T0]
    mon, rec, sweeper, inv = recorded_monitor(tmp_path, clock, store_url)
    await rec.on_start(inv)
    for k in range(24 * 12):  # day D, a sweep every 5 min; 22015 down 01:00-04:00
        t = T0 + 300 * (k + 1)
        sweeper.down = {"127.0.0.6"} if 3600 <= t - T0 < 4 * 3600 else set()
        await sweep(mon, rec, inv, clock, t)
    await rec.on_stop()
    rec.store.close()
    # D+1: not running. D+2: a new start at 00:00, a morning observed.
    mon, rec, sweeper, inv = recorded_monitor(tmp_path, clock, store_url)
    clock[0] = T0 + 2 * 86_400
    await rec.on_start(inv)
    for k in range(12 * 12):
        await sweep(mon, rec, inv, clock, T0 + 2 * 86_400 + 300 * k)
    rec._recent_at = float("-inf")  # the refresh is throttled to once a minute; force it
    await sweep(mon, rec, inv, clock, T0 + 2 * 86_400 + 12 * 3600)
    recent = rec.recent()
    assert recent is not None and [d.day for d in recent.days] == [D, D + timedelta(days=1)]
    gap = recent.province_row(recent.days[1].rates)
    assert gap is not None and gap.connected_rate is None and gap.no_data == 4  # 4 with a circuit, 1 without
    period = recent.province_row(recent.period)
    assert period is not None and (period.days, period.days_no_data) == (1, 1)
    assert period.connected_rate == pytest.approx(3 / 5)  # D only: the day without data is not a 0
    registry = CollectorRegistry(auto_describe=False)
    registry.register(rec.collector())
    text = generate_latest(registry).decode()
    assert 'tslcd_connected_day_rate_ratio{area="",period="yesterday"' not in text
    assert 'tslcd_connected_day_rate_ratio{area="",period="last_30d",province="Đắk Lắk"} 0.6' in text
    html = render_status_page(replace(mon.snapshot, history=recent))
    assert "chưa có số liệu / no data" in html
    await rec.on_stop()


async def test_healthz_is_unhealthy_while_history_cannot_be_written(tmp_path: Path, store_url: str,
                                                                  served: Any) -> None:
    """A full disk keeps monitoring (states are still published) but /healthz says the history is not kept."""
    import urllib.error
    import urllib.request

    clock = [time.time()]
    mon, rec, _, inv = recorded_monitor(tmp_path, clock, store_url)
    mon.recorder = rec
    url = await served(mon)
    await sweep(mon, rec, inv, clock, clock[0])
    real = rec.store.write_sweep
    failing = [True]

    def write(batch: SweepBatch) -> None:
        if failing[0]:
            raise OSError(28, "No space left on device")
        real(batch)

    rec.store.write_sweep = write

    def healthz() -> tuple[int, str]:
        try:
            with urllib.request.urlopen(url + "healthz", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    clock[0] += 5
    await sweep(mon, rec, inv, clock, clock[0])
    status, text = await asyncio.to_thread(healthz)
    assert status == 503 and text.startswith("unhealthy: history not written since")
    assert mon.snapshot.sweeps == 2  # monitoring went on
    failing[0] = False
    clock[0] += 5
    await sweep(mon, rec, inv, clock, clock[0])
    status, text = await asyncio.to_thread(healthz)
    assert status == 200 and text.startswith("ok"), text
    await rec.on_stop()


@pytest.mark.parametrize("content", [b"", b"\x00garbage" * 100, b"SQLite format 3\x00" + b"\xff" * 8000])
def test_a_damaged_store_is_refused_at_start_with_exit_3_and_kept(tmp_path: Path, content: bytes) -> None:
    """An empty file, garbage, or a header over garbage: `tslcd run` and `audit verify` refuse it with exit 3
    (never a new empty history, never "a day changed"), and the file is left as it was."""
    import subprocess
    import sys

    (tmp_path / "inv.yaml").write_text("province: Đắk Lắk\nnodes:\n  - {code: CORE, name: Lõi, kind: core, "
                                       "address: 127.0.0.1}\n", encoding="utf-8")
    (tmp_path / "config.yaml").write_text("province: Đắk Lắk\ninventory: inv.yaml\nweb:\n  listen: 127.0.0.1:0\n"
                                          "store:\n  path: h.sqlite\n", encoding="utf-8")
    (tmp_path / "h.sqlite").write_bytes(content)
    for argv in (["run"], ["audit", "verify"]):
        r = subprocess.run([sys.executable, "-m", "monitor.cli", *argv, "--config", str(tmp_path / "config.yaml")],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 3, (argv, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and "h.sqlite" in r.stderr, (argv, r.stderr)
        assert "kept as it is" in r.stderr or "damaged" in r.stderr, (argv, r.stderr)
    assert (tmp_path / "h.sqlite").read_bytes() == content


def test_a_store_that_cannot_be_created_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "var").write_text("a file where the store's folder should be", encoding="utf-8")
    with pytest.raises(StoreError, match=r"cannot create the history store .*var/h\.sqlite: File exists"):
        SqlStore(f"sqlite:///{tmp_path}/var/h.sqlite")


def test_two_monitors_starting_at_once_cannot_both_run(store: SqlStore, db: str) -> None:
    """The second start, before the first monitor's first heartbeat, sees the first run (its start counts)."""
    store.start_run(T0, max_gap_s=90)
    with pytest.raises(StoreError, match="another monitor .* is writing"):
        SqlStore(db).start_run(T0 + 0.5, max_gap_s=90)


def test_a_restart_with_the_same_pid_is_not_another_monitor(store: SqlStore, db: str) -> None:
    """A container's PID 1 restarted: the run its earlier incarnation left (same pid, same host, another
    process identity) does not block the new one, even within the gap; the same process's own run still does."""
    import os

    from monitor.procs import process_identity

    if process_identity() is None:
        pytest.skip("no /proc: the process identity cannot be read here")
    run = store.start_run(T0, max_gap_s=90)
    store.write_sweep(SweepBatch(run, T0 + 30))
    with pytest.raises(StoreError, match="another monitor"):
        store.start_run(T0 + 40, max_gap_s=90)
    tamper(db, "UPDATE runs SET process = :p WHERE id = :id AND pid = :pid", p="an-earlier-boot/12345", id=run,
           pid=os.getpid())
    assert store.start_run(T0 + 40, max_gap_s=90) > run


def test_a_store_written_by_a_newer_tslcd_is_refused(store: SqlStore, db: str) -> None:
    store.close()
    tamper(db, "UPDATE alembic_version SET version_num = :v", v="9999")
    with pytest.raises(StoreError, match=r"has schema 9999, newer than this tslcd knows \(up to 0009\)"):
        SqlStore(db)


def test_a_store_already_up_to_date_opens_without_importing_alembic(tmp_path: Path) -> None:
    """Alembic costs a running monitor about 11 MB of memory: loaded only to migrate."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path}/h.sqlite"
    probe = ("import sys; from monitor.store import SqlStore; SqlStore(sys.argv[1]).close(); "
             "print('alembic' in sys.modules)")
    root = Path(__file__).resolve().parents[1]
    runs = [subprocess.run([sys.executable, "-c", probe, url], cwd=root, capture_output=True, text=True, timeout=60)
            for _ in range(2)]
    assert [r.stdout.strip() for r in runs] == ["True", "False"], [r.stderr for r in runs]


def test_outage_causes_are_sealed_as_known_then_and_covered_by_the_chain(store: SqlStore, db: str) -> None:
    """An outage's cause is recorded while it lasts and once it is over (monitor.core.causes); a day's seal copies
    the cause known then into its outage pieces, and the chain covers it. An outage across midnight: the first
    day's piece keeps the cause known when that day was sealed, the next day's the final one, and the merged
    outage (what the audit lists) the final one."""
    units = store.record_inventory(inventory(3), T0 - 10).units
    ids = {code: u for (code, _), u in units.items()}
    a, b = ids["24001"], ids["24002"]
    run = store.start_run(T0, max_gap_s=600)
    store.write_sweep(SweepBatch(run, T0, [ChangeRow(u, T0, UNKNOWN, UP) for u in ids.values()]))
    a_down, a_up = T0 + 7200, T0 + 10_800
    b_down, b_up = T0 + 86_400 - 3600, T0 + 86_400 + 3600

    def sweeps(first: float, last: float) -> None:
        t = first
        while t <= last:
            changes = [ChangeRow(u, t, old, new) for u, at, old, new in (
                (a, a_down, UP, DOWN), (a, a_up, DOWN, UP), (b, b_down, UP, DOWN), (b, b_up, DOWN, UP)) if at == t]
            causes = []
            if t == a_up + 300:
                causes = [CauseRow(a, a_down, a_up, "power")]
            elif t == b_down:
                causes = [CauseRow(b, b_down, None, "unknown")]
            elif t == b_down + 1800:
                causes = [CauseRow(b, b_down, None, "line")]  # SNMP lost too, its parent up
            store.write_sweep(SweepBatch(run, t, changes, (), causes))
            t += 300

    sweeps(T0 + 300, T0 + 86_400 + 300)
    assert store.seal_due(T0 + 86_400 + 301, HCM, 300) == [D]
    # It restarted: the router's uptime, read once it answered again, says so.
    sweeps(T0 + 86_400 + 600, T0 + 2 * 86_400 + 300)
    store.write_sweep(SweepBatch(run, T0 + 2 * 86_400 + 300, (), (), [CauseRow(b, b_down, b_up, "power")]))
    assert store.seal_due(T0 + 2 * 86_400 + 301, HCM, 300) == [D + timedelta(days=1)]
    h1, h2 = store.history(D, D + timedelta(days=1), HCM)
    assert sorted((u, p.why) for u, p in h1.outages) == sorted([(a, "power"), (b, "line")])
    assert [(u, p.why) for u, p in h2.outages] == [(b, "power")]
    merged = merge_outages((u, p) for h in (h1, h2) for u, p in h.outages)
    assert {o.unit: (o.why, o.start, o.end) for o in merged} == {a: ("power", a_down, a_up),
                                                                 b: ("power", b_down, b_up)}
    assert store.verify().ok
    tamper(db, "UPDATE outages SET why = 'filtered' WHERE day = :day AND why = 'line'", day=D)
    res = store.verify()
    assert not res.ok and res.first_bad == D


def test_a_day_sealed_before_causes_were_recorded_keeps_its_digest(store: SqlStore) -> None:
    """Pieces without a cause (sealed before migration 0005) read as they did: eight values, no ``why``."""
    fill(store, 1)
    store.seal_due(T0 + 86_400 + 301, HCM, 300)
    s = store.seals()[0]
    with store.engine.connect() as conn:
        text, _ = store._day_text(conn, D, s.prev, s.inventory_version, s.observed_s, s.day_s, {})
    outs = [json.loads(line[1:]) for line in text.splitlines() if line.startswith("O")]
    assert len(outs) == 1 and len(outs[0]) == 8 and chain.digest(text) == s.digest


def test_carriers_are_recorded_with_the_inventory_and_old_versions_keep_their_digest(store: SqlStore) -> None:
    plain = inventory(2)
    before = store.record_inventory(plain, T0)
    # A node without carrier and circuit id is digested as it was before migration 0006.
    rows = [(n.code, date(1, 1, 1), n.name, n.kind, n.province, n.area, n.address, n.parent, n.active_from,
             n.active_until) for n in plain.nodes]
    assert before.digest == chain.inventory_digest(rows) == chain.inventory_digest([(*r, None, None) for r in rows])
    a, b = plain.nodes
    with_carrier = Inventory.of([replace(a, carrier="VNPT", circuit_id="DLK-0042"), b])
    after = store.record_inventory(with_carrier, T0 + 10)
    assert after.new and after.digest != before.digest  # a carrier named is a new version, covered by its digest
    got = {n.code: (n.carrier, n.circuit_id) for n in store.inventory_nodes(after.version)}
    assert got == {a.code: ("VNPT", "DLK-0042"), b.code: (None, None)}


def test_ipv6_sample_sums_are_sealed_with_the_day_and_covered_by_the_chain(store: SqlStore, db: str) -> None:
    """Issue 17, part 5: the sweeps that probed a commune's IPv6 address and those it answered add up per day;
    NULL (never probed) stays NULL; the seal covers them."""
    ids = fill(store, 1)
    run = store.runs()[-1].id
    a, b = ids["24000"], ids["24001"]
    store.write_sweep(SweepBatch(run, None, (), [SampleRow(D, a, v6_samples=2, v6_ok=1),
                                                 SampleRow(D, a, v6_samples=3, v6_ok=3)]))
    (h,) = store.history(D, D, HCM)
    assert (h.rows[a].v6_samples, h.rows[a].v6_ok, h.rows[b].v6_samples) == (5, 4, None)
    store.seal_due(T0 + 86_400 + 301, HCM, 300)
    (h,) = store.history(D, D, HCM)
    assert h.seal is not None and (h.rows[a].v6_samples, h.rows[a].v6_ok, h.rows[b].v6_ok) == (5, 4, None)
    assert store.verify().ok
    tamper(db, "UPDATE daily SET v6_ok = 5 WHERE day = :day AND v6_ok = 4", day=D)
    assert store.verify().first_bad == D
