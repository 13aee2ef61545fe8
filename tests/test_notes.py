"""Annotated outages and approved exclusions (issue 17, part 2): ids, notes and tickets, exclusions that count only
with an approver and are given beside the measured figures, the chain re-sealed and verify catching an edit; the
command line, the HTTP API and the email."""

from __future__ import annotations

import argparse
import base64
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import bcrypt
import pytest

from monitor.core.history import OutagePiece, day_span
from monitor.core.notes import EXCLUSION, NOTE, OutageNote, outage_id, parse_outage_id, with_exclusions
from monitor.errors import OutageNoteError

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
P = "Đắk Lắk"
D = date(2026, 11, 2)
T0 = day_span(D, TZ)[0]
H = 3600.0


def test_an_outage_id_names_its_code_and_local_start() -> None:
    assert outage_id("24133", T0 + 8 * H, TZ) == "24133@2026-11-02T08:00:00"
    assert parse_outage_id("24133@2026-11-02T08:00:00", TZ) == ("24133", T0 + 8 * H)
    assert parse_outage_id("a@b@2026-11-02T08:00:00", TZ)[0] == "a@b"
    for bad in ("24133", "24133@yesterday", "@2026-11-02T08:00:00"):
        with pytest.raises(ValueError, match="is not an outage id"):
            parse_outage_id(bad, TZ)


def test_an_exclusion_moves_only_its_outages_down_and_unreachable_time_out_of_availability() -> None:
    rows = {1: (1, 75_600.0, 7_200.0, 3_600.0, 0.0, 0.0, None, None, None, None),
            2: (2, 86_400.0, 0.0, 0.0, 0.0, 0.0, None, None, None, None)}
    pieces = [(1, OutagePiece(T0 + H, T0 + 3 * H, 7_200.0, 0.0, "up")),
              (1, OutagePiece(T0 + 5 * H, T0 + 6 * H, 0.0, 3_600.0, "up"))]
    note = OutageNote(1, 1, "24133", T0 + H, T0 + 3 * H, EXCLUSION, "works", by="ops", approved_by="B")
    out, n = with_exclusions(rows, pieces, {1: [(note.start, note.end)]})
    assert n == 1 and out[1] == (1, 75_600.0, 0.0, 3_600.0, 0.0, 7_200.0, None, None, None, None)
    assert out[2] is rows[2]
    unapproved = OutageNote(2, 1, "24133", T0 + H, T0 + 3 * H, EXCLUSION, "works", by="ops")
    assert not unapproved.is_exclusion and not OutageNote(3, 1, "x", 0, 1, NOTE, "n", approved_by="B").is_exclusion


def _history(tmp_path: Path) -> tuple[Any, Any]:
    """Three communes observed D and D+1, sealed; 24001 down 02:00-05:00 on D (availability 87.5 %: not
    connected), 24002 down 10:00-10:30 on D+1."""
    from inventory.model import Inventory, Node
    from monitor.config import load_config
    from monitor.store import ChangeRow, SweepBatch, open_store

    (tmp_path / "config.yaml").write_text(f"province: {P}\ninventory: inv.yaml\nstore:\n  path: h.sqlite\n",
                                          encoding="utf-8")
    cfg = load_config(tmp_path / "config.yaml")
    store = open_store(cfg)
    inv = Inventory.of([Node(f"2400{i}", f"Xã {i}", "commune", P, area="A", address=f"198.18.0.{i + 1}")
                        for i in range(3)])
    ids = {code: u for (code, _), u in store.record_inventory(inv, T0 - 10).units.items()}
    run = store.start_run(T0, max_gap_s=900)
    store.write_sweep(SweepBatch(run, T0, [ChangeRow(u, T0, "unknown", "up") for u in ids.values()]))
    events = {T0 + 2 * H: ("24001", "up", "down"), T0 + 5 * H: ("24001", "down", "up"),
              T0 + 34 * H: ("24002", "up", "down"), T0 + 34.5 * H: ("24002", "down", "up")}
    for k in range(1, 2 * 288 + 1):
        t = T0 + 300 * k
        e = events.get(t)
        store.write_sweep(SweepBatch(run, t, [ChangeRow(ids[e[0]], t, e[1], e[2])] if e else []))
    assert store.seal_due(T0 + 2 * 86_400 + 1000, TZ, 900) == [D, D + timedelta(days=1)]
    return store, cfg


def test_a_note_and_an_approved_exclusion_appear_in_the_audit_and_change_the_figures_exactly_as_stated(
        tmp_path: Path) -> None:
    from exporters.audit import build_report, tables

    store, cfg = _history(tmp_path)
    try:
        head = store.chain_head()
        assert head is not None
        note, reseal = store.add_outage_note("24001", T0 + 2 * H, kind=NOTE, note="đứt cáp / fibre cut", by="ops",
                                             at=T0 + 3 * 86_400, ticket="VNPT-4411", cause="line")
        assert reseal is None and store.chain_head() == head  # a note changes no figure: no re-seal
        with pytest.raises(OutageNoteError, match="named approver"):
            store.add_outage_note("24001", T0 + 2 * H, kind=EXCLUSION, note="works", by="ops", at=T0 + 3 * 86_400)
        with pytest.raises(OutageNoteError, match="no outage of 24001 began at 2026-11-02 03:00:00"):
            store.add_outage_note("24001", T0 + 3 * H, kind=NOTE, note="x", by="ops", at=T0 + 3 * 86_400)
        excl, reseal = store.add_outage_note("24001", T0 + 2 * H, kind=EXCLUSION, note="thi công đã báo / planned",
                                             by="ops", at=T0 + 3 * 86_400, approved_by="Trần Thị B")
        assert excl.is_exclusion and (excl.start, excl.end) == (T0 + 2 * H, T0 + 5 * H)
        assert reseal is not None and reseal.from_day == D and reseal.old_head == head.digest
        assert store.verify().ok  # re-sealed: the chain holds, with the exclusion in it

        report = build_report(store, cfg, D, D + timedelta(days=1), now=T0 + 3 * 86_400)
        t = {x.id: x for x in tables(report)}
        summary = dict(zip([c.key for c in t["summary"].columns], t["summary"].rows[0], strict=True))
        # Measured: D 2/3 connected, D+1 3/3 (24002 down 30 min: 97.9 %). With the exclusion: 3/3 both days.
        assert summary["connected_rate"] == pytest.approx((2 / 3 + 1) / 2)
        assert summary["connected_rate_x"] == pytest.approx(1.0) and summary["exclusions"] == 1
        daily = [dict(zip([c.key for c in t["daily"].columns], r, strict=True)) for r in t["daily"].rows]
        assert [(d["connected_rate"], d["connected_rate_x"]) for d in daily] == [
            (pytest.approx(2 / 3), pytest.approx(1.0)), (pytest.approx(1.0), pytest.approx(1.0))]
        communes = {r[0]: dict(zip([c.key for c in t["communes"].columns], r, strict=True))
                    for r in t["communes"].rows}
        assert communes["24001"]["availability"] == pytest.approx(1 - 3 * H / (2 * 86_400))
        assert communes["24001"]["availability_x"] == pytest.approx(1.0)
        outages = {r[-3]: dict(zip([c.key for c in t["outages"].columns], r, strict=True)) for r in t["outages"].rows}
        o = outages["24001@2026-11-02T02:00:00"]
        assert o["notes"] == "đứt cáp / fibre cut (ticket VNPT-4411) (cause: line) — ops"
        assert o["excluded"] == "thi công đã báo / planned; approved by Trần Thị B (ops)"
        assert outages["24002@2026-11-03T10:00:00"]["excluded"] == ""
        method = dict(t["method"].rows)
        assert method["Approved exclusions"].startswith("1: the figures they change are given twice")
        assert "approved by Trần Thị B" in method["Re-sealed from 2026-11-02"]
        assert any(str(v).startswith("Exclusions: an operator may ask") for v in method.values())

        # Someone edits the exclusion in the database, without the tool: verify names the day.
        from sqlalchemy import text

        with store.engine.begin() as conn:
            conn.execute(text("UPDATE outage_notes SET approved_by = 'ai đó' WHERE kind = 'exclusion'"))
        res = store.verify()
        assert not res.ok and res.first_bad == D
    finally:
        store.close()


def _cli(tmp_path: Path, *argv: str) -> int:
    from monitor.cli import outage

    parser = argparse.ArgumentParser(prog="tslcd")
    outage.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["outage", *argv, "--config", str(tmp_path / "config.yaml")])
    return int(args.func(args))


def test_tslcd_outage_list_annotate_exclude(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _history(tmp_path)[0].close()
    assert _cli(tmp_path, "list", "--from", str(D), "--to", str(D + timedelta(days=1))) == 0
    out = capsys.readouterr().out
    assert out.index("24001@2026-11-02T02:00:00") < out.index("24002@2026-11-03T10:00:00")  # longest first
    assert _cli(tmp_path, "annotate", "24002@2026-11-03T10:00:00", "--note", "mất điện lưới", "--ticket", "T-9",
                "--cause", "power", "--by", "ops") == 0
    assert "note added to 24002@2026-11-03T10:00:00" in capsys.readouterr().out
    assert _cli(tmp_path, "exclude", "24002@2026-11-03T10:00:00", "--reason", "planned", "--approved-by", "B",
                "--by", "ops") == 0
    assert "re-sealed from 2026-11-03" in capsys.readouterr().out
    assert _cli(tmp_path, "annotate", "24002@2026-11-03T11:00:00", "--note", "x") == 1
    assert "no outage of 24002 began at 2026-11-03 11:00:00" in capsys.readouterr().err
    assert _cli(tmp_path, "list", "--from", str(D), "--to", str(D + timedelta(days=1)), "--code", "24002") == 0
    listed = capsys.readouterr().out
    assert "mất điện lưới [ticket T-9] [cause power]" in listed and "EXCLUDED (planned; approved by B)" in listed


async def test_the_api_annotates_and_excludes_as_the_signed_in_user(tmp_path: Path, served: Any) -> None:
    import json

    from monitor.config import load_config
    from monitor.runtime.recorder import Recorder
    from monitor.runtime.service import Monitor
    from tests.conftest import ScriptedSweeper

    store, _ = _history(tmp_path)
    store.close()
    password = "mật-khẩu-ghi-chú-3"  # noqa: S105 (a test's own)
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "web.yml").write_text(f"basic_auth_users:\n  vanhanh: {hashed}\n", encoding="utf-8")
    (tmp_path / "config.yaml").write_text(f"province: {P}\ninventory: inv.yaml\nweb:\n  listen: 127.0.0.1:0\n"
                                          "  config_file: web.yml\nstore:\n  path: h.sqlite\n", encoding="utf-8")
    cfg = load_config(tmp_path / "config.yaml")
    from inventory.model import Inventory

    rec = Recorder.open(cfg)
    url = await served(Monitor(cfg, Inventory.of([]), ScriptedSweeper(), recorder=rec))  # type: ignore[arg-type]
    auth = {"Authorization": "Basic " + base64.b64encode(f"vanhanh:{password}".encode()).decode()}
    try:
        async with aiohttp.ClientSession() as s:
            target = url + "api/outages/24001@2026-11-02T02:00:00/notes"
            async with s.post(target, json={"note": "x"}) as r:
                assert r.status == 401
            async with s.post(target, json={"note": "đứt cáp", "ticket": "VNPT-1"}, headers=auth) as r:
                assert r.status == 200
                body = await r.json()
            assert (body["by"], body["kind"], body["resealed_from"]) == ("vanhanh", "note", None)
            async with s.post(target, json={"note": "planned", "exclude": True}, headers=auth) as r:
                assert r.status == 400 and "named approver" in (await r.json())["error"]
            async with s.post(target, json={"note": "planned", "exclude": True, "approved_by": "B"},
                              headers=auth) as r:
                assert r.status == 200 and (await r.json())["resealed_from"] == str(D)
            async with s.post(url + "api/outages/nope/notes", json={"note": "x"}, headers=auth) as r:
                assert r.status == 400 and (await r.json())["parameter"] == "id"
            assert password not in json.dumps(body)
    finally:
        rec.close()


def test_the_email_gives_the_rate_with_exclusions_beside_the_measured_one_and_the_notes(tmp_path: Path) -> None:
    from exporters.email import report_from_store
    from exporters.email.render import render

    store, cfg = _history(tmp_path)
    try:
        store.add_outage_note("24001", T0 + 2 * H, kind=NOTE, note="đứt cáp", by="ops", at=T0 + 86_400,
                              ticket="VNPT-4411")
        store.add_outage_note("24001", T0 + 2 * H, kind=EXCLUSION, note="thi công đã báo", by="ops", at=T0 + 86_400,
                              approved_by="Trần Thị B")
        r = report_from_store(store, cfg, D, now=T0 + 86_400 + 8 * H)
    finally:
        store.close()
    assert (r.connected.count, r.connected.total) == (2, 3)
    assert r.connected_x is not None and (r.connected_x.count, r.exclusions) == (3, 1)
    text = render(r, language="en").text
    assert "100% with 1 approved exclusion(s) (as measured: 66.7%)" in text
    assert "Exclusions: an outage is left out of availability only with a named approver" in text
    assert "đứt cáp (VNPT-4411) — ops" in text
    assert "excluded from availability: thi công đã báo (approved by Trần Thị B)" in text


def test_the_status_page_and_metrics_give_the_day_and_period_rates_with_exclusions_beside(tmp_path: Path) -> None:
    """The recent days' rates (status page, /metrics) counted again with an approved exclusion, beside the measured
    ones and only where it changes them; a later exclusion of a day already summed is picked up."""
    from exporters.metrics import RATE_CONNECTED, RATE_CONNECTED_X
    from exporters.status import history_view
    from monitor.runtime.recorder import Recorder

    store, cfg = _history(tmp_path)
    now = T0 + 2 * 86_400 + H
    rec = Recorder(store, cfg, clock=lambda: now)
    try:
        rec._refresh(now)  # what every sweep does, at most every minute
        recent = rec.recent()
        assert recent is not None and recent.period_x is None and all(s.rates_x is None for s in recent.days)
        store.add_outage_note("24001", T0 + 2 * H, kind=EXCLUSION, note="planned", by="ops", at=now,
                              approved_by="B")
        rec._refresh(now)
        recent = rec.recent()
        assert recent is not None
        days = {s.day: s for s in recent.days}
        measured, with_x = recent.province_row(days[D].rates), recent.province_row(days[D].rates_x or ())
        assert measured is not None and with_x is not None
        assert (measured.connected_rate, with_x.connected_rate) == (pytest.approx(2 / 3), 1.0)
        assert days[D + timedelta(days=1)].rates_x is None  # not touched by the exclusion
        view = history_view(recent)
        assert view is not None and view["period_connected_rate_x"] == 1.0
        assert [d["connected_rate_x"] for d in view["days"]] == [None, 1.0]  # newest first
        samples = {(m.name, s.labels["period"]): s.value for m in rec.collector().collect() for s in m.samples
                   if m.name in (RATE_CONNECTED, RATE_CONNECTED_X) and s.labels.get("area") == ""}
        assert samples[(RATE_CONNECTED, "last_30d")] == pytest.approx((2 / 3 + 1) / 2)
        assert samples[(RATE_CONNECTED_X, "last_30d")] == 1.0
        assert (RATE_CONNECTED_X, "yesterday") not in samples  # yesterday (D+1) had none
        from dataclasses import replace

        from exporters.status import render_status_page
        from monitor.core.snapshot import Snapshot

        page = render_status_page(replace(Snapshot(taken_at=now, province=P, timezone="Asia/Ho_Chi_Minh", target=1.0),
                                          history=recent))
        assert page.count("có loại trừ đã duyệt / with approved exclusions") == 2  # the period and day D
    finally:
        rec.close()


def test_an_outage_going_on_cannot_be_excluded_and_one_named_by_a_later_midnight_is_found_whole(
        tmp_path: Path) -> None:
    """An outage that goes on (at the end of the history) is refused; one that began the day before a report's
    period is named there by the period's first midnight, and that id finds the whole outage."""
    from monitor.store import ChangeRow, SweepBatch

    store, _ = _history(tmp_path)
    try:
        run = store.runs()[-1].id
        ids = {n.code: n.unit for n in store.inventory_nodes(store.version_for(D, TZ) or 0)}
        t = T0 + 2 * 86_400 + 22 * H  # D+2 22:00: 24000 goes down, until D+3 02:00
        for k in range(1, 24 * 12 + 2 * 12 + 1):
            tk = T0 + 2 * 86_400 + 300 * k
            change = ("up", "down") if tk == t else ("down", "up") if tk == t + 4 * H else None
            store.write_sweep(SweepBatch(run, tk, [ChangeRow(ids["24000"], tk, *change)] if change else []))
            if tk == t + H:
                with pytest.raises(OutageNoteError, match="still going on"):
                    store.add_outage_note("24000", t, kind=EXCLUSION, note="x", by="ops", at=tk + 60,
                                          approved_by="B")
        # Named as the audit of D+3 names it: 24000@D+3T00:00:00.
        note, _ = store.add_outage_note("24000", T0 + 3 * 86_400, kind=EXCLUSION, note="x", by="ops",
                                        at=t + 6 * H, approved_by="B")
        assert (note.start, note.end) == (t, t + 4 * H)
        with pytest.raises(OutageNoteError, match="no outage of 24000 began"):
            store.add_outage_note("24000", t + H, kind=NOTE, note="x", by="ops", at=t + 6 * H)
    finally:
        store.close()
