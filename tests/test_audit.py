"""Audit reports from a constructed run: CSV and XLSX opened and read, HTML in headless Chromium, verify, netns run."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import time
import zipfile
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from exporters.audit import build_report, period_of, safe_text, write_xlsx
from inventory.model import Inventory, Node
from monitor.cli.audit import add_parser, run
from monitor.config import Config, load_config
from monitor.core.history import day_of, day_span
from monitor.runtime.recorder import Recorder, UplinkCounters
from monitor.runtime.service import Monitor
from monitor.store import open_store
from tests.conftest import ScriptedSweeper

P = "Đắk Lắk"
D = date(2025, 6, 28)
H = 3600.0
CHROMIUM = "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()


def audit_inventory() -> Inventory:
    """core -> agg -> 3 communes of area A; 22015 and one with no circuit in B; a name that looks like a formula."""
    return Inventory.of([
        Node("CORE", "Lõi", "core", P, address="127.0.0.1"),
        Node("AGG", "Tập trung", "aggregation", P, area="A", address="127.0.0.2", parent="CORE"),
        Node("24133", "Phường Buôn Ma Thuột", "commune", P, area="A", address="127.0.0.3", parent="AGG",
             carrier="VNPT", circuit_id="DLK-1"),
        Node("24121", "Phường Tân An", "commune", P, area="A", address="127.0.0.4", parent="AGG", carrier="VNPT"),
        Node("24154", "Xã Hòa Phú", "commune", P, area="A", address="127.0.0.5", parent="CORE"),
        Node("22015", "Phường <b>Tuy Hòa</b>", "commune", P, area="B", address="127.0.0.6", parent="CORE",
             carrier="Viettel", address6="::1"),
        Node("22045", "Phường Bình Kiến", "commune", P, area="B", parent="CORE"),
        Node("24999", "=HYPERLINK(\"http://198.18.0.1\",\"x\")", "commune", P, area="C", address="127.0.0.7",
             parent="CORE"),
    ], source="audit-test")


def audit_config(tmp: Path, interval_s: float = 300, extra: str = "") -> Config:
    path = tmp / "config.yaml"
    maint = (D + timedelta(days=2)).isoformat()
    path.write_text(
        f"province: {P}\ninventory: inv.yaml\nweb:\n  listen: 127.0.0.1:0\n"
        f"icmp:\n  interval_s: {interval_s}\n  count: 1\n  timeout_s: 0.3\n  echo_interval_s: 0\n"
        "states:\n  down_after: 1\n  up_after: 1\n"
        f"maintenance:\n  - start: {maint}T02:00:00\n    end: {maint}T04:00:00\n    codes: ['24154']\n{extra}",
        encoding="utf-8")
    return load_config(path)


async def simulate(cfg: Config, inv: Inventory, start: float, end: float, *, gap: tuple[float, float]) -> None:
    """Sweep every 300 s from ``start`` to ``end`` with a fake clock, the monitor stopped during ``gap``.

    22015 is down D 10:00-13:00; AGG and its communes D+1 23:00 to D+2 01:00 (24133 and
    24121 unreachable); 24121 sends 10 kB of uplink traffic each sweep.
    """
    t0 = day_span(D, cfg.tz)[0]
    now = [start]
    sweeper = ScriptedSweeper()

    def down_at(t: float) -> set[str]:
        out = set()
        if t0 + 10 * H <= t < t0 + 13 * H:
            out.add("127.0.0.6")
        if t0 + 47 * H <= t < t0 + 49 * H:
            out |= {"127.0.0.2", "127.0.0.3", "127.0.0.4"}
        return out

    mon: Monitor | None = None
    rec: Recorder | None = None
    t = start
    for _ in range(int((end - start) // 300) + 1):  # bounded: one sweep per 300 s
        if gap[0] <= t < gap[1]:
            if rec is not None:
                await rec.on_stop()
                rec.store.close()
                mon = rec = None
        else:
            if rec is None:
                mon = Monitor(cfg, inv, sweeper, clock=lambda: now[0])  # type: ignore[arg-type]
                rec = Recorder(open_store(cfg), cfg, clock=lambda: now[0])
                await rec.on_start(inv)
            assert mon is not None
            now[0] = t
            sweeper.down = down_at(t)
            events: list[Any] = []
            causes: list[Any] = []
            mon.event_sinks[:] = [events.extend]
            mon.cause_sinks[:] = [causes.extend]
            snap = await mon.sweep_once()
            await rec.on_sweep(t, snap, events, inv, {"24121": UplinkCounters(5_000, 5_000)}, causes)
        t += 300
        if t > end:
            break
    if rec is not None:
        await rec.on_stop()
        rec.store.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def run_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding D 00:00 to D+4 12:00, the monitor stopped D+3 06:00-09:00: a SQLite file next to the
    config, or a database on the tests' real PostgreSQL (issue 14: the audit suite runs on both)."""
    tmp = tmp_path_factory.mktemp("audit")
    extra = ""
    if request.param == "postgresql":
        from monitor.lab.postgres import database

        extra = f"store:\n  url: {database(request.getfixturevalue('postgres'), f'audit_{os.getpid()}')}\n"
    cfg = audit_config(tmp, extra=extra)
    t0 = day_span(D, cfg.tz)[0]
    asyncio.run(simulate(cfg, audit_inventory(), t0, t0 + 4 * 24 * H + 12 * H, gap=(t0 + 78 * H, t0 + 81 * H)))
    return tmp


def args(run_dir: Path, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tslcd")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["audit", "--config", str(run_dir / "config.yaml"), *argv])


FROM_TO = ("--from", D.isoformat(), "--to", (D + timedelta(days=3)).isoformat())
CONNECTED = (4 + 5 + 5 + 5) / (6 * 4)  # 22015 not connected on D (21 h of 24); the rest connected every day
# The last sweep before the stop was at 05:55: 3 h 5 min unobserved.
COVERAGE = (4 * 24 * H - 3 * H - 300) / (4 * 24 * H)


def test_the_report_counts_what_the_run_did(run_dir: Path) -> None:
    cfg = load_config(run_dir / "config.yaml")
    store = open_store(cfg, create=False)
    try:
        r = build_report(store, cfg, D, D + timedelta(days=3))
    finally:
        store.close()
    prov = next(p for p in r.summary if p.area == "")
    assert prov.connected_rate == pytest.approx(CONNECTED)
    assert prov.provisioned_rate == pytest.approx(5 / 6) and prov.in_use_rate == pytest.approx(1 / 6)
    assert r.coverage == pytest.approx(COVERAGE)
    assert [d.rate.connected for d in r.daily] == [4, 5, 5, 5] and [d.rate.communes for d in r.daily] == [6] * 4
    assert len(r.seals) == 4 and r.head is not None and r.head.day == D + timedelta(days=3)
    by_code = {t.code: t for t in r.communes}
    assert by_code["22015"].days_connected == 3 and by_code["22015"].seconds.down == 3 * H
    assert by_code["24154"].seconds.maintenance == 2 * H and by_code["24154"].days_connected == 4
    assert by_code["22045"].days_provisioned == 0 and by_code["22045"].seconds.availability is None
    assert by_code["24121"].days_in_use == 4
    outages = [(t.code, o.start, o.duration, o.unreachable_s, o.cause, o.why) for o, t in r.outages]
    t0 = day_span(D, cfg.tz)[0]
    # No SNMP in this run: a commune down on its own has no evidence (unknown); one behind AGG is upstream.
    assert outages == [("22015", t0 + 10 * H, 3 * H, 0.0, None, "unknown"),
                       ("24121", t0 + 47 * H, 2 * H, 2 * H, "AGG", "upstream"),
                       ("24133", t0 + 47 * H, 2 * H, 2 * H, "AGG", "upstream")]
    assert all(by_code[c].seconds.unknown == 3 * H + 300 for c in ("24133", "22015"))


def test_a_period_ending_today_counts_the_day_so_far(run_dir: Path) -> None:
    cfg = load_config(run_dir / "config.yaml")
    store = open_store(cfg, create=False)
    noon = day_span(D + timedelta(days=4), cfg.tz)[0] + 12 * H
    try:
        r = build_report(store, cfg, D + timedelta(days=4), date(2030, 1, 1), now=noon)
    finally:
        store.close()
    assert r.last == D + timedelta(days=4) and r.requested_last == date(2030, 1, 1)
    assert [d.coverage for d in r.daily] == [1.0] and r.unsealed == (D + timedelta(days=4),)
    assert r.daily[0].rate.connected == 5 and r.daily[0].rate.in_use == 1  # 1.44 MB by noon


def sections(text: str) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    current: list[list[str]] = []
    for row in csv.reader(io.StringIO(text)):
        if len(row) == 1 and row[0].startswith("[") and row[0].endswith("]"):
            current = out.setdefault(row[0][1:-1], [])
        elif row:
            current.append(row)
    return out


def test_csv_report_has_every_section_and_is_safe_from_formulas(run_dir: Path) -> None:
    out = run_dir / "report.csv"
    assert run(args(run_dir, *FROM_TO, "--out", str(out))) == 0
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs for UTF-8
    s = sections(raw.decode("utf-8-sig"))
    assert list(s) == ["Method", "Summary against the target", "Daily rates", "Communes", "Carriers",
                       "Maintenance windows", "Outages by cause", "Outages", "Digests"]
    method = {row[0]: row[1] for row in s["Method"][1:] if len(row) > 1}
    assert method["Timezone (day boundaries)"] == "Asia/Ho_Chi_Minh"
    assert method["Connected threshold (rates.connected_min_availability)"] == "0.9"
    assert method["Days sealed"] == "4" and method["Chain head"].startswith(str(D + timedelta(days=3)))
    assert any(k.startswith("Inventory version 1") for k in method)
    summary = {row[1]: row for row in s["Summary against the target"][1:] if len(row) > 3}
    assert float(summary[""][4]) == pytest.approx(CONNECTED, abs=1e-6)
    communes = {row[0]: row for row in s["Communes"][1:] if len(row) > 3}
    assert communes["24999"][1] == "'=HYPERLINK(\"http://198.18.0.1\",\"x\")"
    assert communes["22015"][10:13] == ["1", "10800.000", "10800.000"]
    assert len([r for r in s["Outages"][1:] if len(r) > 3]) == 3
    # Per carrier, counted by hand: 24133 and 24121 (VNPT) each unreachable 2 h behind AGG and unobserved 3 h 5 min;
    # 22015 (Viettel) down 3 h; the others name no carrier.
    carriers = {r[0]: r for r in s["Carriers"][1:] if len(r) > 3}
    assert set(carriers) == {"VNPT", "Viettel", "(none named)"}
    up = 4 * 24 * H - 2 * H - 3 * H - 300
    assert carriers["VNPT"][1:] == ["2", f"{2 * up / (2 * up + 4 * H):.6f}", "1.000000", "240.0", "0.0", "240.0", "2",
                                    "370.0", "0.0"]
    up = 4 * 24 * H - 3 * H - 3 * H - 300
    assert carriers["Viettel"][1:5] == ["1", f"{up / (up + 3 * H):.6f}", f"{up / (up + 3 * H):.6f}", "180.0"]
    # Per cause, in the rule table's order, with the rule that put them there (also among the definitions).
    assert [r[:5] for r in s["Outages by cause"][1:] if len(r) > 3] == [
        ["upstream", "2", "2", "14400.000", "0.571429"], ["unknown", "1", "1", "10800.000", "0.428571"]]
    assert any("power: its router restarted" in v for v in method.values())
    # IPv6 readiness (issue 17, part 5): 22015 is dual-stack and its IPv6 address answered every observed sweep.
    assert [r[-3:-1] for r in s["Daily rates"][1:] if len(r) > 3] == [["1", f"{1 / 6:.6f}"]] * 4
    assert summary[""][-3] == f"{1 / 6:.6f}"
    assert communes["22015"][-4:-1] == ["Viettel", "4", "1.000000"] and communes["24133"][-4:-1] == ["VNPT", "0", ""]
    # No exclusion: the figures "with approved exclusions" are the measured ones, and none is counted.
    assert summary[""][-2:] == [summary[""][4], "0"] and communes["22015"][-1] == communes["22015"][7]
    assert any(v.startswith("IPv6 readiness on day D") for v in method.values())
    digests = [r for r in s["Digests"][1:] if len(r) > 3]
    assert [r[0] for r in digests] == [(D + timedelta(days=i)).isoformat() for i in range(4)]
    for cell in (c for rows in s.values() for row in rows for c in row):
        assert not cell.startswith(("=", "+", "@")), cell


@pytest.mark.parametrize("name", ["=1+2", "+1", "-1+1", "@SUM(A1)", "\tx", "Xã Ea Kao"])
def test_safe_text_defuses_formula_starts(name: str) -> None:
    assert safe_text(name) == (name if name == "Xã Ea Kao" else "'" + name)


def test_xlsx_report_has_real_dates_numbers_widths_and_a_frozen_header(run_dir: Path) -> None:
    from openpyxl import load_workbook

    out = run_dir / "report.xlsx"
    assert run(args(run_dir, *FROM_TO, "--out", str(out))) == 0
    wb = load_workbook(out)
    assert wb.sheetnames == ["Method", "Summary against the target", "Daily rates", "Communes", "Carriers",
                             "Maintenance windows", "Outages by cause", "Outages", "Digests"]
    for ws in wb.worksheets:
        assert ws.freeze_panes == "A2"
        assert ws.column_dimensions["A"].width >= 10
    daily = wb["Daily rates"]
    assert [c.value for c in daily[1]][:4] == ["Day", "Communes active", "Provisioned", "Connected"]
    assert isinstance(daily["A2"].value, datetime) and daily["A2"].value.date() == D
    assert daily["D2"].value == 4 and daily["G2"].value == pytest.approx(4 / 6)
    assert daily["G2"].number_format == "0.00%"
    summary = wb["Summary against the target"]
    assert summary["E2"].value == pytest.approx(CONNECTED) and summary["B2"].value in ("", None)
    communes = {row[0].value: row for row in wb["Communes"].iter_rows(min_row=2) if row[0].value}
    formula = communes["24999"][1]
    assert formula.value == "=HYPERLINK(\"http://198.18.0.1\",\"x\")" and formula.data_type == "s"
    assert communes["22015"][11].value == 10800 and communes["22015"][8].value == 3
    outages = list(wb["Outages"].iter_rows(min_row=2, values_only=True))
    first = next(r for r in outages if r[0] == "22015")
    assert first[3] == datetime(2025, 6, 28, 10, 0) and first[4] == datetime(2025, 6, 28, 13, 0)
    with zipfile.ZipFile(out) as z:
        assert not any("<f>" in z.read(n).decode() for n in z.namelist() if n.startswith("xl/worksheets/"))


@pytest.mark.browser
@pytest.mark.skipif(not HAVE_CHROMIUM, reason="Debian's chromium is not installed (scripts/test.sh installs it)")
async def test_html_report_in_chromium_shows_the_figures(run_dir: Path, browser: Any) -> None:
    out = run_dir / "report.html"
    assert run(args(run_dir, *FROM_TO, "--format", "html", "--out", str(out))) == 0
    page = await browser.new_page(java_script_enabled=False)
    try:
        await page.goto(out.as_uri(), wait_until="load")
        seen = {
            "connected": await page.inner_text("#connected-rate"),
            "provisioned": await page.inner_text("#provisioned-rate"),
            "in_use": await page.inner_text("#in-use-rate"),
            "coverage": await page.inner_text("#coverage"),
            "definitions": await page.inner_text("#definitions"),
            "head": await page.inner_text("#chain-head"),
            "outages": await page.locator("#outages tbody tr").count(),
            "digests": await page.locator("#digests tbody tr").count(),
            "tuy_hoa": await page.inner_text("#communes tbody tr:has(td:text-is('22015'))"),
            "formula": await page.inner_text("#communes tbody tr:has(td:text-is('24999')) td[data-key=name]"),
            "method": await page.inner_text("#method"),
        }
        await page.screenshot(path=str(run_dir / "audit.png"), full_page=True)
    finally:
        await page.close()
    assert seen["connected"] == f"{CONNECTED * 100:.2f}%" == "79.17%"
    assert seen["provisioned"] == "83.33%" and seen["in_use"] == "16.67%" and seen["coverage"] == "96.8%"
    assert "availability on D >= 90.00%" in seen["definitions"]
    assert str(D + timedelta(days=3)) in seen["head"]
    assert seen["outages"] == 3 and seen["digests"] == 4
    cells = seen["tuy_hoa"].split("\t")
    assert "Phường <b>Tuy Hòa</b>" in cells and "10,800" in cells
    assert seen["formula"] == "=HYPERLINK(\"http://198.18.0.1\",\"x\")"  # shown as text, never run
    assert "Asia/Ho_Chi_Minh" in seen["method"]


def test_verify_passes_then_names_the_day_a_stored_value_changed(run_dir: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    from sqlalchemy import create_engine, text

    from monitor.store.url import store_url

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    url = store_url(load_config(copy / "config.yaml"))
    if not url.startswith("sqlite"):  # a copy of the PostgreSQL history, moved as `tslcd store migrate` moves it
        from monitor.lab.postgres import database
        from monitor.store.copy import copy_store

        moved = database(_server_of(url), f"audit_copy_{os.getpid()}")
        copy_store(url, moved)
        config = copy / "config.yaml"
        config.write_text(config.read_text(encoding="utf-8").replace(url, moved), encoding="utf-8")
        url = moved
    assert run(args(copy, "verify")) == 0
    assert "OK: 4 sealed day(s) verified" in capsys.readouterr().out
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE daily SET down_s = 0, up_s = up_s + down_s WHERE day = :day AND down_s > 0"),
                         {"day": D})
    finally:
        engine.dispose()
    assert run(args(copy, "verify")) == 1
    out = capsys.readouterr().out
    assert f"first day that no longer matches: {D}" in out
    assert run(args(copy, "verify", "--from", str(D + timedelta(days=1)))) == 0  # the later days are intact


def _server_of(url: str) -> str:
    """The tests' PostgreSQL server of a database URL (its ``postgres`` database)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(database="postgres").render_as_string(hide_password=False)


def test_period_shortcuts() -> None:
    assert period_of(year=2025) == (date(2025, 1, 1), date(2025, 12, 31))
    assert period_of(month="2024-02") == (date(2024, 2, 1), date(2024, 2, 29))
    assert period_of(first=D, last=D) == (D, D)
    with pytest.raises(ValueError, match="one of them"):
        period_of(year=2025, month="2025-01")
    with pytest.raises(ValueError, match="before"):
        period_of(first=D, last=D - timedelta(days=1))


def test_month_with_area_and_progress_bar_on_request(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run_dir / "june-a.csv"
    assert run(args(run_dir, "--month", "2025-06", "--area", "A", "--out", str(out), "--progress")) == 0
    err = capsys.readouterr().err
    assert "tslcd audit" in err and "day" in err  # tqdm's bar, asked for although stderr is not a terminal
    s = sections(out.read_text(encoding="utf-8-sig"))
    codes = {row[0] for row in s["Communes"][1:] if len(row) > 3}
    assert codes == {"24133", "24121", "24154"}
    daily = [r for r in s["Daily rates"][1:] if len(r) > 3]
    # June 1-27: before the first inventory was recorded: no commune active, no data, no rate (coverage 0).
    # (Until issue 16 these days used the first version and counted its communes as not connected.)
    assert len(daily) == 30 and daily[0][1:4] == ["0", "0", "0"] and daily[0][8] == "0.000000"
    assert daily[0][6] == "" and daily[0][-4] == "no data"
    assert daily[27][1:4] == ["3", "3", "3"]


def test_progress_says_what_it_writes_once_the_days_are_counted(run_dir: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """After the bar over days, a year of a whole country still takes seconds to write: said on stderr, only where
    the bar is shown (a terminal, or --progress)."""
    out = run_dir / "progress.xlsx"
    assert run(args(run_dir, *FROM_TO, "--out", str(out), "--progress")) == 0
    assert "tslcd audit: 4 days counted, writing XLSX ..." in capsys.readouterr().err
    assert run(args(run_dir, *FROM_TO, "--out", str(out))) == 0  # stderr is not a terminal here
    assert "writing XLSX" not in capsys.readouterr().err


def test_usage_errors_exit_2(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(args(run_dir, "--year", "2025", "--out", str(tmp_path / "x.pdf"))) == 2
    assert run(args(run_dir, "--year", "2025", "--area", "Z", "--out", str(tmp_path / "x.csv"))) == 2
    assert run(args(run_dir, "--out", str(tmp_path / "x.csv"))) == 2
    err = capsys.readouterr().err
    assert "cannot tell the format" in err and "no commune has area 'Z'" in err
    config = (run_dir / "config.yaml").read_text(encoding="utf-8")
    if "url:" not in config:  # a SQLite store: the same config elsewhere has no store next to it
        (tmp_path / "config.yaml").write_text(config, encoding="utf-8")
        assert run(args(tmp_path, "verify")) == 2
        assert "no history store" in capsys.readouterr().err


# -- a real run over network namespaces ---------------------------------------------------------------------


@pytest.fixture
def lab() -> Iterator[Any]:
    from monitor.lab.netns import Lab, available

    why = available()
    if why:
        pytest.skip(why)
    with Lab("tsaudit") as lab:
        yield lab


@pytest.mark.netns
@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces and raw ICMP need root (CI runs as root)")
async def test_a_real_run_reports_the_outage_the_test_caused(tmp_path: Path, lab: Any) -> None:
    from monitor.probes.icmp import IcmpEngine

    c1 = lab.add_host("c1", lab.allocate()[0])
    c2 = lab.add_host("c2", lab.allocate()[0])
    inv = Inventory.of([Node("24001", "Xã Một", "commune", P, area="A", address=c1.ipv4),
                        Node("24002", "Xã Hai", "commune", P, area="A", address=c2.ipv4)])
    cfg = audit_config(tmp_path, interval_s=1)
    interval = cfg.icmp.interval_s
    engine = IcmpEngine()
    mon = Monitor(cfg, inv, engine)  # type: ignore[arg-type]
    rec = Recorder(open_store(cfg), cfg)
    started = time.time()
    await rec.on_start(inv)
    marks: dict[str, float] = {}
    try:
        # 3 s up, c1's link down for 5 s, then up again for 3 s; one sweep a second.
        for tick in range(12):
            due = started + tick * interval
            await asyncio.sleep(max(0.0, due - time.time()))  # pacing of the schedule, not synchronisation
            if tick == 3:
                lab.set_link(c1, False)
                marks["down"] = time.time()
            if tick == 8:
                lab.set_link(c1, True)
                marks["up"] = time.time()
            events: list[Any] = []
            mon.event_sinks[:] = [events.extend]
            snap = await mon.sweep_once()
            await rec.on_sweep(snap.taken_at, snap, events, inv)
    finally:
        await rec.on_stop()
        rec.store.close()
        engine.close()
    store = open_store(cfg, create=False)
    try:
        now = time.time()
        r = build_report(store, cfg, day_of(started, cfg.tz), day_of(now, cfg.tz), now=now)
    finally:
        store.close()
    caused = marks["up"] - marks["down"]
    (outage, who), = r.outages
    assert who.code == "24001"
    assert abs(outage.duration - caused) <= interval + cfg.icmp.timeout_s
    assert abs(outage.start - marks["down"]) <= interval + cfg.icmp.timeout_s
    t1 = next(t for t in r.communes if t.code == "24001")
    t2 = next(t for t in r.communes if t.code == "24002")
    assert abs(t1.seconds.down - caused) <= interval + cfg.icmp.timeout_s
    assert t2.seconds.down == 0 and t2.seconds.up > 9


def test_a_month_the_monitor_saw_only_3_days_of_has_the_rate_of_those_3_days(run_dir: Path) -> None:
    """June for a monitor started on 28 June: the 27 days before are "no data", not 0% (issue: unobserved is
    not disconnected), with the coverage 3/30 stated; CSV, XLSX and HTML say the same."""
    from openpyxl import load_workbook

    cfg = load_config(run_dir / "config.yaml")
    store = open_store(cfg, create=False)
    try:
        june = build_report(store, cfg, date(2025, 6, 1), date(2025, 6, 30))
        seen = build_report(store, cfg, D, date(2025, 6, 30))
    finally:
        store.close()
    month = next(p for p in june.summary if p.area == "")
    last3 = next(p for p in seen.summary if p.area == "")
    assert (month.days, month.days_no_data) == (3, 27) and (last3.days, last3.days_no_data) == (3, 0)
    assert month.connected_rate == pytest.approx(last3.connected_rate) and month.connected_rate > 0.6
    assert month.in_use_rate == pytest.approx(last3.in_use_rate)
    assert june.coverage == pytest.approx(3 / 30, abs=0.002)
    # Before the first inventory was recorded (28 June): no commune, no data, "none recorded".
    assert all(d.rate.communes == 0 and d.rate.connected_rate is None for d in june.daily[:27])
    assert [v.days for v in june.versions] == [3] and june.days_without_inventory == 27

    out = run_dir / "june.csv"
    assert run(args(run_dir, "--month", "2025-06", "--out", str(out))) == 0
    s = sections(out.read_text(encoding="utf-8-sig"))
    head, row = s["Summary against the target"][0], next(r for r in s["Summary against the target"][1:] if r[1] == "")
    assert row[head.index("Days counted")] == "3"
    assert row[head.index("Days without data (left out of the measured rates)")] == "27"
    assert float(row[head.index("Connected rate (measured)")]) == pytest.approx(last3.connected_rate, abs=1e-6)
    daily = [r for r in s["Daily rates"][1:] if len(r) > 3]
    assert daily[0][6] == "" and daily[0][-4] == "no data" and daily[27][-4] == "yes"
    assert float(dict(s["Method"][1:])["Coverage (share of the period the monitor was observing)"]) == pytest.approx(
        3 / 30, abs=0.002)

    xlsx = run_dir / "june.xlsx"
    assert run(args(run_dir, "--month", "2025-06", "--out", str(xlsx))) == 0
    summary = load_workbook(xlsx)["Summary against the target"]
    assert summary["E2"].value == pytest.approx(last3.connected_rate) and summary["K2"].value == 27

    html = run_dir / "june.html"
    assert run(args(run_dir, "--month", "2025-06", "--out", str(html))) == 0
    text = html.read_text(encoding="utf-8")
    assert f"{last3.connected_rate * 100:.2f}%" in text and "no data" in text


def test_a_name_with_control_characters_does_not_break_the_xlsx(tmp_path: Path) -> None:
    """A name recorded with a bell, an escape sequence and a bidi override (an inventory the loader would now
    neutralise, or a store written before it did): the XLSX is written, the characters replaced by U+FFFD."""
    from openpyxl import load_workbook

    evil = "A\x07\x1b[31mRED\u202eX"
    inv = Inventory.of([Node("CORE", "Lõi", "core", P, address="127.0.0.1"),
                        Node("24133", evil, "commune", P, area="A\x1b", address="127.0.0.3", parent="CORE")])
    cfg = audit_config(tmp_path)
    t0 = day_span(D, cfg.tz)[0]
    asyncio.run(simulate(cfg, inv, t0, t0 + 2 * H, gap=(0.0, 0.0)))
    store = open_store(cfg, create=False)
    try:
        report = build_report(store, cfg, D, D)
    finally:
        store.close()
    out = tmp_path / "evil.xlsx"
    write_xlsx(report, out)
    names = [row[1].value for row in load_workbook(out)["Communes"].iter_rows(min_row=2) if row[0].value == "24133"]
    assert names == ["A\ufffd\ufffd[31mRED\u202eX"]  # openpyxl refuses C0 controls; a bidi override is legal text


def test_a_backup_taken_while_a_monitor_writes_restores_to_an_identical_audit(run_dir: Path, tmp_path: Path) -> None:
    """`tslcd store backup` while a recorder writes (a new run on the store); the backup under another config
    gives the same audit of the recorded days, and its chain verifies."""
    import shutil
    import subprocess
    import sys

    if "url:" in (run_dir / "config.yaml").read_text(encoding="utf-8"):
        pytest.skip("SQLite's online backup; a PostgreSQL store is backed up with pg_dump (docs/install.md)")
    work = tmp_path / "live"
    shutil.copytree(run_dir, work)
    cfg = load_config(work / "config.yaml")
    inv = audit_inventory()
    t5 = day_span(D + timedelta(days=5), cfg.tz)[0]

    def audit(where: Path) -> str:
        out = where / "audit.csv"
        assert run(args(where, "--from", str(D), "--to", str(D + timedelta(days=3)), "--out", str(out))) == 0
        return "\n".join(ln for ln in out.read_text(encoding="utf-8-sig").splitlines()
                         if not ln.startswith(("Generated at", "History store")))

    async def write_and_back_up() -> tuple[subprocess.CompletedProcess[str], str]:
        mon = Monitor(cfg, inv, ScriptedSweeper(), clock=lambda: t5)  # type: ignore[arg-type]
        rec = Recorder(open_store(cfg), cfg, clock=lambda: t5)
        await rec.on_start(inv)
        for k in range(3):
            snap = await mon.sweep_once()
            await rec.on_sweep(t5 + 300 * k, snap, [], inv)
        r = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "monitor.cli", "store", "backup",
                                                     str(tmp_path / "backup.sqlite"), "--config",
                                                     str(work / "config.yaml")],
                                    capture_output=True, text=True, timeout=120)
        at_backup = await asyncio.to_thread(audit, work)  # the original as it was when copied
        for k in range(3, 6):  # the monitor goes on writing after the copy
            snap = await mon.sweep_once()
            await rec.on_sweep(t5 + 300 * k, snap, [], inv)
        await rec.on_stop()
        rec.store.close()
        return r, at_backup

    r, original = asyncio.run(write_and_back_up())
    assert r.returncode == 0 and "wrote" in r.stdout and "sealed through" in r.stdout, r.stdout + r.stderr
    restored = tmp_path / "restored"
    restored.mkdir()
    (restored / "config.yaml").write_text((work / "config.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    (restored / cfg.store.path).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(tmp_path / "backup.sqlite", restored / cfg.store.path)

    assert audit(restored) == original
    assert run(args(restored, "verify")) == 0
