"""Maintenance windows declared at run time (issue 17, part 3): the pure rules, the store, the live monitor without a
restart, the history and the audit, the command line and the authenticated HTTP API."""

from __future__ import annotations

import argparse
import base64
import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import bcrypt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.core.history import Segment, day_span, fold
from monitor.core.maintenance import MaintenanceWindow, behind, covered, overlay, union
from monitor.errors import MaintenanceError
from tests.conftest import ScriptedSweeper, small_inventory

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
H = 3600.0


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> float:
    return datetime(y, mo, d, h, mi, tzinfo=TZ).timestamp()


# -- the pure rules ------------------------------------------------------------------------------------------


def test_a_weekly_window_repeats_its_local_span_until_its_last_day_and_stops_when_ended() -> None:
    # Sunday 6 December 2026, 22:00-02:00, every week until 20 December.
    w = MaintenanceWindow(1, at(2026, 12, 6, 22), at(2026, 12, 7, 2), areas=("B",), reason="r", declared_by="a",
                          declared_at=at(2026, 12, 1), recur="weekly", until=date(2026, 12, 20))
    spans = list(w.spans(at(2026, 12, 1), at(2027, 1, 31), TZ))
    assert spans == [(at(2026, 12, d, 22), at(2026, 12, d + 1, 2)) for d in (6, 13, 20)]
    assert list(w.spans(at(2026, 12, 14, 1), at(2026, 12, 14, 3), TZ)) == [(at(2026, 12, 13, 22), at(2026, 12, 14, 2))]
    ended = MaintenanceWindow(**{**_fields(w), "ended_at": at(2026, 12, 13, 23)})
    assert list(ended.spans(at(2026, 12, 1), at(2027, 1, 31), TZ)) == [
        (at(2026, 12, 6, 22), at(2026, 12, 7, 2)), (at(2026, 12, 13, 22), at(2026, 12, 13, 23))]
    forever = MaintenanceWindow(**{**_fields(w), "until": None})
    assert len(list(forever.spans(float("-inf"), float("inf"), TZ))) > 50  # bounded, not endless


def _fields(w: MaintenanceWindow) -> dict[str, Any]:
    return {f: getattr(w, f) for f in MaintenanceWindow.__slots__}  # type: ignore[attr-defined]


def test_a_window_covers_the_nodes_it_names_and_every_node_behind_them() -> None:
    parents = {"CORE": None, "AGG": "CORE", "24133": "AGG", "24121": "AGG", "X": "24121", "22015": "CORE"}
    assert behind({"AGG"}, parents) == {"AGG", "24133", "24121", "X"}
    assert behind({"CORE"}, parents) == set(parents)
    assert behind(set(), parents) == frozenset()
    cyclic = {"A": "B", "B": "A", "C": "A"}
    assert behind({"A"}, cyclic) == {"A", "B", "C"}  # a cycle ends the walk
    nodes = [(c, "B" if c == "22015" else "A", p) for c, p in parents.items()]
    w = MaintenanceWindow(1, at(2026, 12, 6, 22), at(2026, 12, 7, 2), codes=("AGG",), areas=("B",))
    assert covered([w], nodes, at(2026, 12, 6, 23), TZ) == {"AGG", "24133", "24121", "X", "22015"}
    assert covered([w], nodes, at(2026, 12, 7, 2), TZ) == frozenset()  # the end is not inside


@given(st.lists(st.tuples(st.integers(0, 100), st.integers(1, 30), st.sampled_from(
    ["up", "down", "unreachable", "unknown", "maintenance"])), max_size=8),
       st.lists(st.tuples(st.integers(0, 130), st.integers(1, 40)), max_size=4))
def test_overlay_moves_observed_time_inside_the_windows_to_maintenance_and_nothing_else(
        raw: list[tuple[int, int, str]], raw_spans: list[tuple[int, int]]) -> None:
    segs, t = [], 0.0
    for gap, length, state in raw:
        t += gap
        segs.append(Segment(t, t + length, state, "AGG" if state == "unreachable" else None))
        t += length
    spans = [(float(s), float(s + n)) for s, n in raw_spans]
    out = overlay(segs, spans)
    end = max([s.end for s in segs] + [1.0])
    before, after = fold(segs, 0.0, end), fold(out, 0.0, end)
    inside = sum(min(s.end, we) - max(s.start, ws) for s in segs if s.state in ("up", "down", "unreachable")
                 for ws, we in union(spans) if min(s.end, we) > max(s.start, ws))
    assert after.unknown == pytest.approx(before.unknown)  # unobserved time stays unknown
    assert after.maintenance == pytest.approx(before.maintenance + inside)
    assert after.up + after.down + after.unreachable == pytest.approx(
        before.up + before.down + before.unreachable - inside)
    assert all(s.state in ("maintenance", "unknown") or not any(ws < s.end and we > s.start for ws, we in spans)
               for s in out)


# -- the store ----------------------------------------------------------------------------------------------


def _window(start: float, end: float, **kw: Any) -> MaintenanceWindow:
    base: dict[str, Any] = {"codes": ("AGG",), "reason": "thay thiết bị / switch replacement",
                            "declared_by": "Nguyễn Văn A", "declared_at": start - 600}
    return MaintenanceWindow(0, start, end, **{**base, **kw})


def test_the_store_keeps_windows_with_who_and_why_and_refuses_what_cannot_be(store_url: str) -> None:
    from monitor.store import SqlStore

    store = SqlStore(store_url, tz=TZ)
    try:
        a = store.add_window(_window(at(2026, 12, 6, 22), at(2026, 12, 7, 2)))
        b = store.add_window(_window(at(2026, 12, 6, 8), at(2026, 12, 6, 9), areas=("B",), codes=(),
                                     recur="daily", until=date(2026, 12, 8)))
        assert (a.id, b.id) == (1, 2)
        assert store.maintenance_windows() == [a, b]
        assert store.maintenance_windows(at(2026, 12, 7, 3), at(2026, 12, 7, 12)) == [b]  # a is over by then
        assert store.maintenance_windows(at(2026, 12, 9, 0), at(2026, 12, 10, 0)) == []  # b's last day was the 8th
        with pytest.raises(MaintenanceError, match="needs a named approver"):
            store.add_window(_window(at(2026, 12, 5, 8), at(2026, 12, 5, 12), declared_at=at(2026, 12, 5, 10)))
        late = store.add_window(_window(at(2026, 12, 5, 8), at(2026, 12, 5, 12), declared_at=at(2026, 12, 5, 10),
                                        approved_by="Trần Thị B"))
        assert late.after_the_fact and late.approved_by == "Trần Thị B"
        with pytest.raises(MaintenanceError, match="say why"):
            store.add_window(_window(at(2026, 12, 6, 22), at(2026, 12, 7, 2), reason=" "))
        ended = store.end_window(b.id, at(2026, 12, 7, 8, 30), "ops")
        assert list(ended.spans(at(2026, 12, 6), at(2026, 12, 9), TZ)) == [
            (at(2026, 12, 6, 8), at(2026, 12, 6, 9)), (at(2026, 12, 7, 8), at(2026, 12, 7, 8, 30))]
        with pytest.raises(MaintenanceError, match="already ended by ops"):
            store.end_window(b.id, at(2026, 12, 7, 9), "ops")
        with pytest.raises(MaintenanceError, match="no maintenance window 99"):
            store.end_window(99, at(2026, 12, 7, 9), "ops")
    finally:
        store.close()


# -- the live monitor, the history and the audit ------------------------------------------------------------------


async def test_a_window_added_at_run_time_on_an_aggregation_node_keeps_its_communes_out_of_availability(
        tmp_path: Path) -> None:
    """The issue's "done when": declared by another process while the monitor runs (no restart), on AGG, which is
    down: AGG and the communes behind it are in maintenance for its span, not down or unreachable; the history
    counts that time as maintenance; the audit lists the window with its reason; the seal covers it."""
    from exporters.audit import build_report, tables
    from monitor.config import load_config
    from monitor.runtime.recorder import Recorder
    from monitor.runtime.service import Monitor
    from monitor.store import SqlStore

    (tmp_path / "config.yaml").write_text("province: Đắk Lắk\ninventory: inv.yaml\nicmp:\n  interval_s: 300\n"
                                          "states:\n  down_after: 1\n  up_after: 1\nstore:\n  path: h.sqlite\n",
                                          encoding="utf-8")
    cfg = load_config(tmp_path / "config.yaml")
    day = date(2026, 11, 2)
    t0 = day_span(day, TZ)[0]
    clock = [t0]
    # AGG down all day, so the communes behind it do not answer either: unreachable.
    sweeper = ScriptedSweeper(down={"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"})
    inv = small_inventory()
    rec = Recorder(SqlStore(f"sqlite:///{tmp_path}/h.sqlite", tz=TZ), cfg, clock=lambda: clock[0])
    mon = Monitor(cfg, inv, sweeper, clock=lambda: clock[0], recorder=rec)  # type: ignore[arg-type]
    other = SqlStore(f"sqlite:///{tmp_path}/h.sqlite", tz=TZ)  # another process: tslcd maintenance add
    try:
        await rec.on_start(inv)
        states: dict[float, dict[str, str]] = {}
        for k in range(1, 24 * 12 + 1):
            clock[0] = t0 + 300 * k
            if clock[0] == t0 + 10 * H - 300:  # declared at 09:55 for 10:00-14:00, by someone else
                other.add_window(_window(t0 + 10 * H, t0 + 14 * H, declared_at=clock[0]))
            snap = await mon.sweep_once()
            states[clock[0]] = {ns.node.code: ns.state for ns in snap.nodes}
        noon = states[t0 + 12 * H]
        assert {c: noon[c] for c in ("AGG", "24133", "24121", "24154")} == dict.fromkeys(
            ("AGG", "24133", "24121", "24154"), "maintenance")
        assert noon["22015"] == "up"  # not behind AGG
        assert states[t0 + 15 * H]["24133"] == "unreachable"  # after the window, AGG still down
        clock[0] = t0 + 24 * H + 300
        await mon.sweep_once()
        await rec.on_stop()
        store = rec.store
        assert store.seal_due(t0 + 24 * H + 1000, TZ, 900) == [day]  # the day is over: sealed with its window
        (h,) = store.history(day, day, TZ)
        u = {n.code: n.unit for n in store.inventory_nodes(store.version_for(day, TZ) or 0)}
        assert h.seal is not None
        assert h.rows[u["24133"]].seconds.maintenance == pytest.approx(4 * H)
        assert h.rows[u["24133"]].seconds.unreachable == pytest.approx(24 * H - 4 * H - 300, abs=301)
        report = build_report(store, cfg, day, day, now=clock[0])
        (maint,) = [t for t in tables(report) if t.id == "maintenance"]
        assert [(row[1], row[5], row[6], row[7], row[-1]) for row in maint.rows] == [
            (1, "AGG", "thay thiết bị / switch replacement", "Nguyễn Văn A", 4 * H)]
        assert store.verify().ok
        other.engine.dispose()
        from sqlalchemy import create_engine, text

        engine = create_engine(f"sqlite:///{tmp_path}/h.sqlite")
        with engine.begin() as conn:  # someone edits the window's reason in the database after the seal
            conn.execute(text("UPDATE maintenance_windows SET reason = 'khác'"))
        engine.dispose()
        assert store.verify().first_bad == day
    finally:
        other.close()
        store = rec.store
        store.close()


def test_a_window_declared_after_the_fact_is_an_approved_exclusion_beside_the_measured_figures(
        store_url: str) -> None:
    """Recorded down, then a window declared afterwards (approved) over part of it: the measured figures stay as
    recorded; the window's span is an exclusion (counted beside them, in proportion for an outage partly inside);
    on a sealed day it re-seals the chain, and the chain holds."""
    from inventory.model import Inventory, Node
    from monitor.core.notes import with_exclusions
    from monitor.store import ChangeRow, SqlStore, SweepBatch

    day = date(2026, 11, 2)
    t0 = day_span(day, TZ)[0]
    store = SqlStore(store_url, tz=TZ)
    try:
        units = store.record_inventory(Inventory.of([Node("24133", "Xã A", "commune", "Đắk Lắk",
                                                          address="198.18.0.1")]), t0 - 10).units
        (u,) = units.values()
        run = store.start_run(t0, max_gap_s=600)
        store.write_sweep(SweepBatch(run, t0, [ChangeRow(u, t0, "unknown", "up")]))
        for k in range(1, 12 * 12 + 1):  # to 12:00, every 5 minutes; down from 08:00
            t = t0 + 300 * k
            store.write_sweep(SweepBatch(run, t, [ChangeRow(u, t, "up", "down")] if t == t0 + 8 * H else []))
        store.add_window(MaintenanceWindow(0, t0 + 9 * H, t0 + 11 * H, codes=("24133",), reason="kéo cáp",
                                           declared_by="ops", declared_at=t0 + 12 * H, approved_by="Trần Thị B"))
        (h,) = store.history(day, day, TZ)
        assert (h.rows[u].seconds.down, h.rows[u].seconds.maintenance) == (pytest.approx(4 * H), 0)  # as measured
        spans = store.exclusion_spans(t0, t0 + 86_400)
        assert spans == {u: [(t0 + 9 * H, t0 + 11 * H)]}
        row = (u, h.rows[u].seconds.up, h.rows[u].seconds.down, 0.0, h.rows[u].seconds.unknown, 0.0)
        out, n = with_exclusions({u: row}, h.outages, spans)
        assert n == 1 and (out[u][2], out[u][5]) == (pytest.approx(2 * H), pytest.approx(2 * H))
        # The day sealed, another late window over it: accepted with its approver, the chain re-sealed from it.
        for k in range(12 * 12 + 1, 24 * 12 + 4):
            store.write_sweep(SweepBatch(run, t0 + 300 * k))
        assert store.seal_due(t0 + 86_400 + 1200, TZ, 600) == [day]
        head = store.chain_head()
        store.add_window(MaintenanceWindow(0, t0 + 8 * H, t0 + 9 * H, codes=("24133",), reason="đo kiểm",
                                           declared_by="ops", declared_at=t0 + 86_400 + 1300, approved_by="B"))
        assert store.chain_head() != head and store.verify().ok
        assert [(r.from_day, r.approved_by) for r in store.reseals()] == [(day, "B")]
    finally:
        store.close()


# -- the command line ----------------------------------------------------------------------------------------------


def _cli(tmp_path: Path, *argv: str) -> int:
    from monitor.cli import maintenance

    parser = argparse.ArgumentParser(prog="tslcd")
    maintenance.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["maintenance", *argv, "--config", str(tmp_path / "config.yaml")])
    return int(args.func(args))


def test_tslcd_maintenance_add_list_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.store import SqlStore

    (tmp_path / "config.yaml").write_text("province: Đắk Lắk\ninventory: inv.yaml\nstore:\n  path: h.sqlite\n",
                                          encoding="utf-8")
    SqlStore(f"sqlite:///{tmp_path}/h.sqlite").close()
    start = (datetime.now(TZ) + timedelta(days=1)).replace(hour=22, minute=0, second=0, microsecond=0)
    assert _cli(tmp_path, "add", "--codes", "66-AGG-DL", "--start", start.strftime("%Y-%m-%dT%H:%M"),
                "--duration", "4h", "--reason", "thay thiết bị", "--by", "Nguyễn Văn A", "--every", "weekly") == 0
    out = capsys.readouterr().out
    assert "declared maintenance window 1:" in out and "every week" in out and "by Nguyễn Văn A" in out
    assert _cli(tmp_path, "list") == 0
    assert "upcoming" in capsys.readouterr().out
    # A window that began an hour ago needs an approver: refused with the reason, exit status 1.
    past = (datetime.now(TZ) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert _cli(tmp_path, "add", "--areas", "B", "--start", past, "--duration", "2h", "--reason", "x") == 1
    assert "needs a named approver (--approved-by)" in capsys.readouterr().err
    assert _cli(tmp_path, "add", "--areas", "B", "--start", past, "--duration", "2h", "--reason", "x",
                "--approved-by", "Trần Thị B") == 0
    capsys.readouterr()
    assert _cli(tmp_path, "end", "1", "--by", "ops") == 0
    assert "ended maintenance window 1" in capsys.readouterr().out
    assert _cli(tmp_path, "list", "--all") == 0
    listed = capsys.readouterr().out
    assert "ended" in listed and "approved by Trần Thị B" in listed
    with pytest.raises(SystemExit):
        _cli(tmp_path, "add", "--codes", "X", "--start", "now", "--duration", "4x", "--reason", "r")


# -- the HTTP API ------------------------------------------------------------------------------------------------


async def test_the_api_declares_lists_and_ends_windows_as_the_signed_in_user(tmp_path: Path, served: Any) -> None:
    from monitor.config import load_config
    from monitor.lab.demo import inventory_yaml
    from monitor.runtime.recorder import Recorder
    from monitor.runtime.service import Monitor
    from monitor.store import SqlStore

    password = "mật-khẩu-thử-7"  # noqa: S105 (a test's own)
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "web.yml").write_text(f"basic_auth_users:\n  vanhanh: {hashed}\n", encoding="utf-8")
    inv = small_inventory()
    (tmp_path / "inv.yaml").write_text(inventory_yaml(inv.nodes), encoding="utf-8")
    (tmp_path / "config.yaml").write_text("province: Đắk Lắk\ninventory: inv.yaml\nweb:\n  listen: 127.0.0.1:0\n"
                                          "  config_file: web.yml\nstore:\n  path: h.sqlite\n", encoding="utf-8")
    cfg = load_config(tmp_path / "config.yaml")
    rec = Recorder(SqlStore(f"sqlite:///{tmp_path}/h.sqlite", tz=TZ), cfg)
    mon = Monitor(cfg, inv, ScriptedSweeper(), recorder=rec)  # type: ignore[arg-type]
    url = await served(mon)
    auth = {"Authorization": "Basic " + base64.b64encode(f"vanhanh:{password}".encode()).decode()}
    start = (datetime.now(TZ) + timedelta(hours=1)).replace(microsecond=0)
    body = {"codes": ["AGG"], "start": start.replace(tzinfo=None).isoformat(), "duration_s": 7200,
            "reason": "thay thiết bị / switch replacement"}
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "api/maintenance", json=body) as r:
                assert r.status == 401  # no password
            async with s.post(url + "api/maintenance", data=json.dumps(body), headers=auth) as r:
                assert r.status == 415  # not declared JSON: a browser form cannot post here
            async with s.post(url + "api/maintenance", json={**body, "colour": "red"}, headers=auth) as r:
                assert r.status == 400 and (await r.json())["parameter"] == "colour"
            async with s.post(url + "api/maintenance", json=body, headers=auth) as r:
                assert r.status == 200
                w = await r.json()
            assert (w["declared_by"], w["codes"], w["reason"]) == ("vanhanh", ["AGG"], body["reason"])
            assert w["start"] == start.isoformat()
            async with s.get(url + "api/maintenance", headers=auth) as r:
                assert [x["id"] for x in (await r.json())["windows"]] == [w["id"]]
            async with s.post(url + f"api/maintenance/{w['id']}/end", json={}, headers=auth) as r:
                assert r.status == 200 and (await r.json())["ended_by"] == "vanhanh"
            async with s.post(url + f"api/maintenance/{w['id']}/end", json={}, headers=auth) as r:
                assert r.status == 400 and "already ended" in (await r.json())["error"]
            assert password not in json.dumps(w)
    finally:
        rec.close()


async def test_without_passwords_configured_the_api_refuses_writes(tmp_path: Path, served: Any) -> None:
    from monitor.config import load_config
    from monitor.lab.demo import inventory_yaml
    from monitor.runtime.recorder import Recorder
    from monitor.runtime.service import Monitor
    from monitor.store import SqlStore

    inv = small_inventory()
    (tmp_path / "inv.yaml").write_text(inventory_yaml(inv.nodes), encoding="utf-8")
    (tmp_path / "config.yaml").write_text("province: Đắk Lắk\ninventory: inv.yaml\nweb:\n  listen: 127.0.0.1:0\n"
                                          "store:\n  path: h.sqlite\n", encoding="utf-8")
    cfg = load_config(tmp_path / "config.yaml")
    rec = Recorder(SqlStore(f"sqlite:///{tmp_path}/h.sqlite", tz=TZ), cfg)
    url = await served(Monitor(cfg, inv, ScriptedSweeper(), recorder=rec))  # type: ignore[arg-type]
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "api/maintenance", json={"codes": ["AGG"], "start": "2030-01-01T00:00",
                                                             "duration_s": 60, "reason": "r"}) as r:
                assert r.status == 403 and "basic auth" in (await r.json())["error"]
    finally:
        rec.close()


def test_ending_a_window_after_its_first_day_was_sealed_keeps_that_day_verifying(store_url: str) -> None:
    """A window over midnight: the day before is sealed, then the window is ended early; the sealed day's text
    holds its spans cut to the day, so it still verifies. Editing when it was declared (which decides whether it
    is an exclusion) is caught."""
    from inventory.model import Inventory, Node
    from monitor.store import ChangeRow, SqlStore, SweepBatch

    day = date(2026, 11, 2)
    t0 = day_span(day, TZ)[0]
    store = SqlStore(store_url, tz=TZ)
    try:
        units = store.record_inventory(Inventory.of([Node("24133", "Xã A", "commune", "Đắk Lắk",
                                                          address="198.18.0.1")]), t0 - 10).units
        (u,) = units.values()
        run = store.start_run(t0, max_gap_s=600)
        store.write_sweep(SweepBatch(run, t0, [ChangeRow(u, t0, "unknown", "up")]))
        w = store.add_window(MaintenanceWindow(0, t0 + 22 * H, t0 + 30 * H, codes=("24133",), reason="r",
                                               declared_by="ops", declared_at=t0 + 20 * H))
        for k in range(1, 24 * 12 + 4):
            store.write_sweep(SweepBatch(run, t0 + 300 * k))
        assert store.seal_due(t0 + 86_400 + 1200, TZ, 600) == [day]
        store.end_window(w.id, t0 + 25 * H, "ops")
        assert store.verify().ok
        tamper_sql = "UPDATE maintenance_windows SET declared_at = declared_at + 10 * 3600"
        from sqlalchemy import text

        with store.engine.begin() as conn:
            conn.execute(text(tamper_sql))
        assert store.verify().first_bad == day
    finally:
        store.close()


def test_a_window_too_long_or_too_wordy_is_refused_with_the_reason(store_url: str) -> None:
    from monitor.store import SqlStore

    store = SqlStore(store_url, tz=TZ)
    try:
        with pytest.raises(MaintenanceError, match="lasts at most 1 days"):
            store.add_window(_window(at(2026, 12, 6, 22), at(2026, 12, 8, 2), recur="daily"))
        with pytest.raises(MaintenanceError, match="lasts at most 366 days"):
            store.add_window(_window(at(2026, 12, 6, 22), at(2028, 12, 8, 2)))
        with pytest.raises(MaintenanceError, match="reason: 1200 characters, at most 1000"):
            store.add_window(_window(at(2026, 12, 6, 22), at(2026, 12, 7, 2), reason="x" * 1200))
        with pytest.raises(MaintenanceError, match="name areas rather than thousands of codes"):
            store.add_window(_window(at(2026, 12, 6, 22), at(2026, 12, 7, 2),
                                     codes=tuple(f"{i:05d}" for i in range(3000))))
    finally:
        store.close()
