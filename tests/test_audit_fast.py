"""The audit's counting at national size (issue 17): the fast path (``history_values``, ``Rosters``,
``PeriodCount``) gives the very report the straightforward counting gives (``history``, ``commune_days``,
``day_rates``, ``CommuneTotals.add_day``), float for float; and the XLSX written straight as SpreadsheetML holds the
cells openpyxl's writer held. On both backends, over days with several inventory versions, a reused code, outages
across midnight, an unreachable cause, maintenance, a day the monitor did not run, a day before any inventory, a
commune without a circuit, traffic above and below the threshold, and days not sealed yet."""

from __future__ import annotations

import math
import random
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporters.audit import (
    DailyLine,
    Report,
    VersionUse,
    build_report,
    maintenance_lines,
    render_html,
    tables,
    write_csv,
    write_xlsx,
)
from inventory.model import Inventory, Node
from monitor.config import Config, load_config
from monitor.core.history import (
    DOWN,
    MAINTENANCE,
    UNBOUNDED,
    UNKNOWN,
    UNREACHABLE,
    UP,
    CommuneTotals,
    OutagePiece,
    PeriodCount,
    Seconds,
    day_rates,
    day_span,
    days,
    merge_outages,
    period_rates,
    unit_key,
)
from monitor.core.rates import RateRow, for_scope, province_row
from monitor.store import ChangeRow, SampleRow, SqlStore, SweepBatch, commune_days
from monitor.store.model import DayHistory, DayRow, HistoryStore, InventoryNode, Rosters

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
P, Q = "Đắk Lắk", "Lai Châu"
D0 = date(2025, 6, 26)
H = 3600.0
GAP = 7200.0


def d(i: int) -> date:
    return D0 + timedelta(days=i)


def at(i: int, hour: float) -> float:
    return day_span(d(i), HCM)[0] + hour * H


# -- the straightforward counting (build_report as it was before the fast path), the reference -------------------


def straightforward_report(store: HistoryStore, cfg: Config, first: date, last: date, *, area: str | None = None,
                           now: float) -> Report:
    """build_report counted with one CommuneDay per commune and day, as the status page and the email count."""
    tz = cfg.tz
    requested_last = last
    last = min(last, datetime.fromtimestamp(now, tz).date())
    rates_cfg = cfg.rates
    versions = {v.id: v for v in store.inventory_versions()}
    nodes: dict[int, tuple[InventoryNode, ...]] = {}
    used: dict[int, int] = {}
    totals: dict[Any, CommuneTotals] = {}
    pieces: list[tuple[Any, OutagePiece]] = []
    all_rates: list[RateRow] = []
    daily: list[DailyLine] = []
    observed = period = 0.0
    if first <= last:
        for h in store.history(first, last, tz):
            day_nodes: tuple[InventoryNode, ...] = ()
            if h.inventory_version is not None:
                if h.inventory_version not in nodes:
                    nodes[h.inventory_version] = store.inventory_nodes(h.inventory_version)
                day_nodes = nodes[h.inventory_version]
                used[h.inventory_version] = used.get(h.inventory_version, 0) + 1
            cds = commune_days(h, day_nodes, area)
            rates = for_scope(day_rates(h.day, cds, min_availability=rates_cfg.connected_min_availability,
                                        in_use_min_bytes=rates_cfg.in_use_min_bytes), cfg)
            if area is not None:
                rates = tuple(r for r in rates if r.area == area)
            main = next((r for r in rates if r.area == area), None) if area else (
                province_row(rates, cfg.province) or next((r for r in rates if r.area == ""), None))
            if main is None:
                main = RateRow(cfg.province, area or "", 0, 0, 0, 0, day=h.day)
                rates = (*rates, main)
            all_rates.extend(rates)
            elapsed = max(0.0, min(now, h.end) - h.start)
            daily.append(DailyLine(main, h.observed_s / elapsed if elapsed > 0 else 0.0, h.seal))
            observed += h.observed_s
            period += elapsed
            units = set()
            for c in cds:
                units.add(c.unit)
                t = totals.get(c.unit)
                if t is None:
                    t = totals[c.unit] = CommuneTotals(c.unit, c.code, c.name, c.area)
                t.add_day(h.day, c, min_availability=rates_cfg.connected_min_availability,
                          in_use_min_bytes=rates_cfg.in_use_min_bytes)
            pieces.extend((u, p) for u, p in h.outages if u in units)
    merged = merge_outages(pieces)
    longest: dict[Any, float] = {}
    counts: dict[Any, int] = {}
    for o in merged:
        counts[o.unit] = counts.get(o.unit, 0) + 1
        longest[o.unit] = max(longest.get(o.unit, 0.0), o.duration)
    communes = tuple(sorted(totals.values(), key=lambda t: (t.area, t.code, t.first_day or UNBOUNDED)))
    # Per carrier: the communes' totals added up (no circuit changes hands in these histories: test_history.py has
    # one that does).
    by_carrier: dict[str | None, tuple[list[float], set[Any]]] = {}
    for t in totals.values():
        acc, members = by_carrier.setdefault(t.carrier, ([0.0] * 5, set()))
        for i, v in enumerate((t.seconds.up, t.seconds.down, t.seconds.unreachable, t.seconds.unknown,
                               t.seconds.maintenance)):
            acc[i] += v
        members.add(t.unit)
    carriers = {c: (Seconds(*acc), frozenset(members)) for c, (acc, members) in by_carrier.items()}
    return Report(
        province=cfg.province, area=area, first=first, last=last, requested_last=requested_last,
        timezone=cfg.timezone, generated_at=now, target=rates_cfg.target,
        min_availability=rates_cfg.connected_min_availability, in_use_min_bytes=rates_cfg.in_use_min_bytes,
        min_coverage=rates_cfg.min_day_coverage, max_gaps_s=tuple(sorted({r.max_gap_s for r in store.runs()})),
        store="",
        versions=tuple(VersionUse(versions[v], n) for v, n in sorted(used.items()) if v in versions),
        observed_s=observed, period_s=period,
        summary=tuple(sorted(period_rates(all_rates), key=lambda p: (p.province != cfg.province, p.province, p.area))),
        daily=tuple(daily),
        communes=communes, outages=tuple((o, totals[o.unit]) for o in merged), longest=longest, counts=counts,
        head=store.chain_head(), carriers=carriers,
        maintenance=maintenance_lines(store, cfg, day_span(first, tz)[0], min(now, day_span(last, tz)[1])),
        pages_url=cfg.web.public_url.rstrip("/") + "/" if cfg.web.public_url else "")


def assert_same_report(fast: Report, slow: Report) -> None:
    """Field by field (a readable failure), then whole: equal floats, not approximately equal ones."""
    assert fast.daily == slow.daily
    assert fast.summary == slow.summary
    assert [vars_of(t) for t in fast.communes] == [vars_of(t) for t in slow.communes]
    assert fast.outages == slow.outages
    assert (fast.longest, fast.counts, fast.versions) == (slow.longest, slow.counts, slow.versions)
    assert (fast.observed_s, fast.period_s) == (slow.observed_s, slow.period_s)
    assert fast == slow
    assert repr(fast) == repr(slow)  # -0.0 and 0.0 are equal, but not the same text


def vars_of(t: CommuneTotals) -> tuple[Any, ...]:
    return (t.unit, t.code, t.name, t.area, t.first_day, t.last_day, t.days_active, t.days_provisioned,
            t.days_connected, t.days_in_use, t.seconds, t.traffic_bytes)


# -- a history with everything an audit meets, written through the Store API -------------------------------------


def _inventories() -> list[tuple[float, Inventory]]:
    """Three versions: v1 from day 0; v2 from day 4 (a rename and a move, a circuit added, a commune gone, a unit
    ending on day 5 and another reusing its code from day 6); v3 from day 7 (a commune of Lai Châu gone)."""
    core = Node("CORE", "Lõi", "core", P, address="127.0.0.1")
    agg = Node("AGG", "Tập trung", "aggregation", P, area="A", address="127.0.0.2", parent="CORE")
    q1 = Node("03541", "Xã Mường Tè", "commune", Q, address="127.0.9.1")
    q2 = Node("03542", "Xã Bum Nưa", "commune", Q, area="Q1", address="127.0.9.2")
    merged = Node("30001", "Xã Cũ", "commune", P, area="C", address="127.0.0.8", active_until=d(5))
    reused = Node("30001", "Xã Mới", "commune", P, area="C", address="127.0.0.9", active_from=d(6))
    later = Node("30002", "Xã Sau", "commune", P, area="C", address="127.0.0.10", active_from=d(6))
    never = Node("22099", "Xã Chưa Có", "commune", P, area="B")  # no circuit, ever
    v1 = [core, agg,
          Node("24133", "Phường Buôn Ma Thuột", "commune", P, area="A", address="127.0.0.3", parent="AGG"),
          Node("24121", "Phường Tân An", "commune", P, area="A", address="127.0.0.4", parent="AGG"),
          Node("24154", "Xã Hòa Phú", "commune", P, area="B", address="127.0.0.5", parent="CORE"),
          Node("22045", "Phường Bình Kiến", "commune", P, area="B"),  # no circuit until v2
          Node("22015", "Phường Tuy Hòa", "commune", P, address="127.0.0.6"),  # no area; gone in v2
          merged, never, q1, q2]
    v2 = [core, agg,
          Node("24133", "Phường Buôn Ma Thuột (mới)", "commune", P, area="B", address="127.0.0.3", parent="AGG"),
          Node("24121", "Phường Tân An", "commune", P, area="A", address="127.0.0.4", parent="AGG"),
          Node("24154", "Xã Hòa Phú", "commune", P, area="B", address="127.0.0.5", parent="CORE"),
          Node("22045", "Phường Bình Kiến", "commune", P, area="B", address="127.0.0.7"),
          merged, reused, later, never, q1, q2]
    v3 = [n for n in v2 if n.code != "03542"]
    return [(at(0, 12), Inventory.of(v1, source="v1")), (at(4, 10), Inventory.of(v2, source="v2")),
            (at(7, 9), Inventory.of(v3, source="v3"))]


def build_history(url: str) -> SqlStore:
    """Days 0-9 (now: day 9, 10:00): run 1 from day 0 to day 3 14:00; nothing on day 4; run 2 from day 5 on. Days
    0-7 sealed, day 8 finished but not sealed, day 9 today. The days before day 0 have no inventory."""
    store = SqlStore(url)
    ids: dict[tuple[str, date], int] = {}
    for loaded, inv in _inventories():
        ids.update(store.record_inventory(inv, loaded).units)

    def u(code: str, frm: date | None = None) -> int:
        return ids[unit_key(code, frm)]

    everyone = sorted(set(ids.values()))
    rnd = random.Random(17)
    # (unit, at, new state, cause) besides the first sweep's UNKNOWN -> UP of everyone
    script: list[tuple[int, float, str, str | None]] = [
        (u("24121"), at(1, 10), DOWN, None), (u("24121"), at(1, 13), UP, None),
        # AGG down across midnight: its communes unreachable behind it
        (u("AGG"), at(1, 23), DOWN, None), (u("24133"), at(1, 23), UNREACHABLE, "AGG"),
        (u("24121"), at(1, 23), UNREACHABLE, "AGG"),
        (u("AGG"), at(2, 1), UP, None), (u("24133"), at(2, 1), UP, None), (u("24121"), at(2, 1), UP, None),
        (u("24154"), at(2, 2), MAINTENANCE, None), (u("24154"), at(2, 4), UP, None),
        (u("22015"), at(3, 12), DOWN, None),  # still down when run 1 stops: ended by not observed
        (u("30001", None), at(3, 1), DOWN, None), (u("30001", None), at(3, 1.25), UP, None),
    ]
    script2: list[tuple[int, float, str, str | None]] = [
        (u("24154"), at(6, 0.5), DOWN, None),  # down all day 6 but its first half hour
        (u("24133"), at(7, 6), DOWN, None), (u("24133"), at(7, 8.5), UP, None),  # 89.6 % on day 7
        (u("03541"), at(8, 0), MAINTENANCE, None),  # in maintenance all of day 8: no data
        (u("03541"), at(9, 0), UP, None),
        (u("24121"), at(9, 8), DOWN, None),  # down since 08:00 today
        (u("30001", d(6)), at(6, 5), DOWN, None), (u("30001", d(6)), at(6, 5.0001), UP, None),
    ]

    def run(first: float, last: float, events: list[tuple[int, float, str, str | None]]) -> None:
        r = store.start_run(first, max_gap_s=GAP)
        store.write_sweep(SweepBatch(r, first, [ChangeRow(x, first, UNKNOWN, UP) for x in everyone]))
        t = first
        for _ in range(400):  # bounded: one heartbeat an hour
            nxt = min(t + H, last)
            changes = sorted((ChangeRow(x, a, UNKNOWN, s, c) for x, a, s, c in events if t < a <= nxt),
                             key=lambda c: c.at)
            samples = []
            if (nxt - at(0, 0)) % 86_400 == 23 * H or nxt == last:  # each day's sums at 23:00, or at the stop
                day = datetime.fromtimestamp(nxt, HCM).date()
                samples = [SampleRow(day, x, 288, 280, 280 * rnd.randint(2_000, 40_000), rnd.randint(0, 20_000),
                                     *traffic(x, rnd)) for x in everyone if x != u("22015")]
            store.write_sweep(SweepBatch(r, nxt, changes, samples))
            t = nxt
            if t >= last:
                break
        store.stop_run(r, last)

    def traffic(x: int, rnd: random.Random) -> tuple[int | None, int | None]:
        if x == u("24154"):
            return (500, None)  # far below 1 MB
        if x == u("03541"):
            return (None, 2_000_000)
        if x in (u("24133"), u("24121")):
            return (rnd.randint(600_000, 5_000_000), rnd.randint(0, 600_000))
        return (None, None)

    run(at(0, 0), at(3, 14), script)
    run(at(5, 0), at(9, 10), script2)
    sealed = store.seal_due(at(8, 0) + GAP + 1, HCM, GAP)
    assert sealed == [d(i) for i in range(8)]
    return store


def config(tmp: Path, *, province: str = P, **rates: Any) -> Config:
    lines = "".join(f"  {k}: {v}\n" for k, v in rates.items())
    (tmp / "config.yaml").write_text(f"province: {province}\ninventory: none.yaml\n"
                                     + (f"rates:\n{lines}" if lines else ""), encoding="utf-8")
    return load_config(tmp / "config.yaml")


@pytest.fixture
def history_store(store_url: str) -> Iterator[SqlStore]:
    store = build_history(store_url)
    try:
        yield store
    finally:
        store.close()


CASES = {
    "defaults": ({}, None, -3, 9),
    "strict": ({"connected_min_availability": 1.0, "in_use_min_bytes": 0}, None, -3, 9),
    "lenient": ({"connected_min_availability": 0.5, "in_use_min_bytes": 10**12}, None, 0, 9),
    "zero": ({"connected_min_availability": 0.0, "in_use_min_bytes": 1}, None, 0, 8),
    "area A": ({}, "A", -1, 9),
    "area C": ({}, "C", 2, 9),
    "middle": ({}, None, 2, 6),
    "one day": ({}, None, 4, 4),
    "future": ({}, None, 8, 12),
}


def test_the_fast_counting_gives_the_straightforward_report(history_store: SqlStore, tmp_path: Path) -> None:
    now = at(9, 10)
    for name, (rates, area, first, last) in CASES.items():
        cfg = config(tmp_path, **rates)
        fast = build_report(history_store, cfg, d(first), d(last), area=area, now=now)
        slow = straightforward_report(history_store, cfg, d(first), d(last), area=area, now=now)
        with case(name):
            assert_same_report(fast, slow)
    # The history has what the test means it to have.
    cfg = config(tmp_path)
    r = build_report(history_store, cfg, d(-3), d(9), now=now)
    assert [v.days for v in r.versions] == [4, 3, 3] and r.days_without_inventory == 3
    assert r.unsealed == (d(-3), d(-2), d(-1), d(8), d(9)) and len(r.seals) == 8
    by_day = {x.rate.day: x.rate for x in r.daily}
    assert not by_day[d(4)].has_data and by_day[d(4)].communes == 6  # the monitor did not run
    assert by_day[d(-1)].communes == 0  # before any inventory
    codes = {(t.code, t.first_day) for t in r.communes}
    assert ("30001", d(0)) in codes and ("30001", d(6)) in codes  # a reused code: two communes
    assert any(o.cause == "AGG" and o.unreachable_s > 0 for o, _ in r.outages)
    assert any(t.seconds.maintenance > 0 for t in r.communes)
    assert {t.code: t.days_provisioned for t in r.communes}["22099"] == 0
    assert 0 < next(p for p in r.summary if p.area == "").in_use_rate < 1


def test_the_fast_counting_gives_the_straightforward_national_report(history_store: SqlStore,
                                                                     tmp_path: Path) -> None:
    cfg = config(tmp_path, province=f"[{P}, {Q}]")
    now = at(9, 10)
    fast = build_report(history_store, cfg, d(-1), d(9), now=now)
    assert_same_report(fast, straightforward_report(history_store, cfg, d(-1), d(9), now=now))
    assert fast.summary[0].province != P and {p.province for p in fast.summary} >= {P, Q}


def test_history_values_are_the_rows_of_history(history_store: SqlStore) -> None:
    """The bulk reading gives each day's rows as ``history`` does, sealed or computed, value for value."""
    for h, v in zip(history_store.history(d(-1), d(9), HCM), history_store.history_values(d(-1), d(9), HCM),
                    strict=True):
        assert (h.day, h.start, h.end, h.seal, h.inventory_version, h.observed_s, h.outages) == (
            v.day, v.start, v.end, v.seal, v.inventory_version, v.observed_s, v.outages)
        assert {u: (u, *astuple(r.seconds), r.bytes_in, r.bytes_out, r.v6_samples, r.v6_ok)
                for u, r in h.rows.items()} == dict(v.rows)
        for u, row in v.rows.items():
            r = h.rows[u]
            assert [type(x) for x in row] == [type(x) for x in (u, *astuple(r.seconds), r.bytes_in, r.bytes_out,
                                                                    r.v6_samples, r.v6_ok)]


def astuple(s: Seconds) -> tuple[float, ...]:
    return (s.up, s.down, s.unreachable, s.unknown, s.maintenance)


# -- the XLSX written straight holds what openpyxl's writer wrote -----------------------------------------------


def openpyxl_xlsx(r: Report, path: Path) -> None:
    """The workbook as openpyxl's write-only writer wrote it before: the reference."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    formats = {"rate": "0.00%", "seconds": "#,##0.000", "int": "0", "date": "yyyy-mm-dd",
               "datetime": "yyyy-mm-dd hh:mm:ss"}
    wb = Workbook(write_only=True)
    bold = Font(bold=True)
    wrap = Alignment(wrap_text=True, vertical="top")
    for t in tables(r):
        ws = wb.create_sheet(t.title[:31])
        widths = [min(40, max(10, len(c.title) // 2 + 2)) for c in t.columns]
        for row in t.rows:
            for i, (c, v) in enumerate(zip(t.columns, row, strict=True)):
                if isinstance(v, str):
                    widths[i] = max(widths[i], min(90 if t.id == "method" else 60, len(v) + 2))
                elif c.kind == "datetime":
                    widths[i] = max(widths[i], 20)
                elif c.kind in formats:
                    widths[i] = max(widths[i], 12)
        for i, w in enumerate(widths, 1):
            ws.column_dimensions[get_column_letter(i)].width = w
        ws.freeze_panes = "A2"
        if t.rows and t.id != "method":
            ws.auto_filter.ref = f"A1:{get_column_letter(len(t.columns))}{len(t.rows) + 1}"

        def cell(value: Any, kind: str, *, style: Font | None = None, align: Alignment | None = None,
                 ws: Any = ws) -> Any:
            if isinstance(value, str):
                value = ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)
            c = WriteOnlyCell(ws, value=value)
            if isinstance(value, str):
                c.data_type = "s"
            elif kind in formats and value is not None:
                c.number_format = formats[kind]
            if style is not None:
                c.font = style
            if align is not None:
                c.alignment = align
            return c

        ws.append([cell(c.title, "text", style=bold, align=wrap) for c in t.columns])
        for row in t.rows:
            ws.append([cell(v, c.kind, align=wrap if t.id == "method" and i == 1 else None)
                       for i, (c, v) in enumerate(zip(t.columns, row, strict=True))])
        if t.note:
            ws.append([])
            ws.append([cell(t.note, "text")])
    wb.properties.title = f"TSLCD audit {r.province} {r.first} – {r.last}"
    wb.properties.creator = "tslcd-monitor"
    wb.save(path)


def raw_cells(path: Path) -> dict[tuple[str, str], tuple[str, str | None, str | None, str | None]]:
    """Every cell as written: its type, its value's text, its inline string, and xml:space."""
    ns = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
    out = {}
    with zipfile.ZipFile(path) as z:
        for name in sorted(n for n in z.namelist() if n.startswith("xl/worksheets/")):
            for c in ET.fromstring(z.read(name)).iter(f"{ns}c"):
                v, t = c.find(f"{ns}v"), c.find(f"{ns}is/{ns}t")
                out[(name, c.get("r", ""))] = (c.get("t", "n"), None if v is None else v.text,
                                               None if t is None else t.text,
                                               None if t is None else t.get("{http://www.w3.org/XML/1998/namespace}space"))
    return out


def assert_same_workbook(new: Path, ref: Path) -> None:
    from openpyxl import load_workbook

    assert raw_cells(new) == raw_cells(ref)  # the same texts: numbers to the same 16 digits
    a, b = load_workbook(new), load_workbook(ref)
    assert a.sheetnames == b.sheetnames
    for x, y in zip(a.worksheets, b.worksheets, strict=True):
        assert (x.freeze_panes, x.auto_filter.ref, x.max_row, x.max_column) == (
            y.freeze_panes, y.auto_filter.ref, y.max_row, y.max_column), x.title
        assert {k: v.width for k, v in x.column_dimensions.items()} == {
            k: v.width for k, v in y.column_dimensions.items()}, x.title
        for ra, rb in zip(x.iter_rows(), y.iter_rows(), strict=True):
            for ca, cb in zip(ra, rb, strict=True):
                assert (ca.value, type(ca.value), ca.data_type, ca.number_format, ca.font.b, ca.alignment.wrap_text,
                        ca.alignment.vertical) == (cb.value, type(cb.value), cb.data_type, cb.number_format,
                                                   cb.font.b, cb.alignment.wrap_text, cb.alignment.vertical), (
                    x.title, ca.coordinate)
    assert a.properties.title == b.properties.title
    assert defined_names(new) == defined_names(ref)


def defined_names(path: Path) -> list[tuple[str | None, str | None, str | None]]:
    ns = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
    with zipfile.ZipFile(path) as z:
        root = ET.fromstring(z.read("xl/workbook.xml"))
    return [(n.get("name"), n.get("localSheetId"), n.text) for n in root.iter(f"{ns}definedName")]


@contextmanager
def case(name: str) -> Iterator[None]:
    """Name the case in a failure of the assertions inside."""
    try:
        yield
    except AssertionError as e:
        raise AssertionError(f"case {name!r}: {e}") from e


def test_the_xlsx_holds_the_cells_openpyxl_wrote(history_store: SqlStore, tmp_path: Path) -> None:
    now = at(9, 10)
    for name, (rates, area, first, last) in CASES.items():
        cfg = config(tmp_path, **rates)
        r = build_report(history_store, cfg, d(first), d(last), area=area, now=now)
        write_xlsx(r, tmp_path / "new.xlsx")
        openpyxl_xlsx(r, tmp_path / "ref.xlsx")
        with case(name):
            assert_same_workbook(tmp_path / "new.xlsx", tmp_path / "ref.xlsx")


def test_the_xlsx_keeps_odd_text_as_openpyxl_did(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Text with controls, markup, spaces at either end, a formula's start, and a cell longer than Excel takes."""
    from exporters.audit import Column, Table

    odd = ["=SUM(A1)", " padded ", "  ", "", "<b>&amp;</b>", "A\x07\x1b[31mB\u202e", "x" * 40_000, "tab\tin",
           "line\nbreak", "'quoted'", "\"dq\""]
    rows = tuple((s, i, float(i) / 3, None, date(2025, 7, 1), datetime(2025, 7, 1, 12, 30, 15, 250_000), True)
                 for i, s in enumerate(odd))
    cols = (Column("name", "Name <&>"), Column("n", "N", "int"), Column("rate", "R", "rate"),
            Column("none", "None", "seconds"), Column("day", "Day", "date"), Column("at", "At", "datetime"),
            Column("flag", "Flag"))
    import exporters.audit as audit

    table = Table("communes", "Odd cells", cols, rows, note=" a note ")
    method = Table("method", "Method", (Column("key", "Item"), Column("value", "Value")),
                   (("Period from", date(2025, 1, 1)), ("x", 0.1), ("y", None), ("z", datetime(2025, 1, 1, 7))))
    empty = Table("outages", "Nothing", (Column("code", "Code"),), (), note="none")
    monkeypatch.setattr(audit, "tables", lambda _r: [table, method, empty])
    monkeypatch.setattr(sys.modules[__name__], "tables", lambda _r: [table, method, empty])
    r = build_report_stub()
    write_xlsx(r, tmp_path / "new.xlsx")
    openpyxl_xlsx(r, tmp_path / "ref.xlsx")
    assert_same_workbook(tmp_path / "new.xlsx", tmp_path / "ref.xlsx")


def build_report_stub() -> Report:
    return Report(province=P, area=None, first=d(0), last=d(1), requested_last=d(1), timezone="Asia/Ho_Chi_Minh",
                  generated_at=at(2, 0), target=1.0, min_availability=0.9, in_use_min_bytes=1, min_coverage=0.5,
                  max_gaps_s=(), store="", versions=(), observed_s=0.0, period_s=0.0, summary=(), daily=(),
                  communes=(), outages=())


def test_every_format_of_the_fast_report_is_the_straightforward_ones(history_store: SqlStore, tmp_path: Path) -> None:
    import io

    cfg = config(tmp_path)
    now = at(9, 10)
    fast = build_report(history_store, cfg, d(-3), d(9), now=now)
    slow = straightforward_report(history_store, cfg, d(-3), d(9), now=now)
    a, b = io.StringIO(), io.StringIO()
    write_csv(fast, a)
    write_csv(slow, b)
    assert a.getvalue() == b.getvalue()
    assert render_html(fast) == render_html(slow)


# -- the pure counting, on random days --------------------------------------------------------------------------

_AMOUNT = st.sampled_from([0.0, -0.0, 0.001, 0.5, 300.0, 3600.0, 43_200.0, 77_760.0, 86_400.0, 1e-9, 12_345.678,
                           86_399.999])
# Seconds, uplink bytes in and out, then the IPv6 probes and answers (both None: no IPv6 address probed).
_ROW = st.tuples(st.tuples(_AMOUNT, _AMOUNT, _AMOUNT, _AMOUNT, _AMOUNT, st.one_of(st.none(), st.integers(0, 3_000_000)),
                           st.one_of(st.none(), st.integers(0, 3_000_000))),
                 st.one_of(st.just((None, None)), st.tuples(st.integers(0, 300), st.integers(0, 300)))).map(
    lambda t: (*t[0], *t[1]))
_NODE = st.tuples(st.sampled_from(["commune", "commune", "commune", "core"]), st.sampled_from([P, Q]),
                  st.sampled_from(["", "A", "B"]), st.booleans(), st.sampled_from([None, 1, 2]),
                  st.sampled_from([None, 2, 3]), st.sampled_from(["Xã A", "Xã B"]))


@settings(max_examples=150, deadline=None)
@given(nodes=st.lists(_NODE, min_size=0, max_size=8),
       versions=st.lists(st.integers(0, 2), min_size=1, max_size=6),
       rows=st.lists(st.dictionaries(st.integers(1, 9), _ROW, max_size=9), min_size=6, max_size=6),
       min_av=st.sampled_from([0.0, 0.5, 0.9, 1.0]), min_bytes=st.sampled_from([0, 1, 1_000_000]),
       area=st.sampled_from([None, "A", ""]))
def test_period_count_is_commune_days_day_rates_and_commune_totals(
        nodes: list[Any], versions: list[int], rows: list[dict[int, Any]], min_av: float, min_bytes: int,
        area: str | None) -> None:
    # Version k holds the nodes whose index is not k mod 3: versions differ, units come and go.
    inventory = {k: tuple(InventoryNode(i + 1, f"{i:05d}", UNBOUNDED, name, kind, prov, ar,
                                        "198.18.0.1" if prov_ok else "", None,
                                        None if frm is None else D0 + timedelta(days=frm),
                                        None if until is None else D0 + timedelta(days=until))
                          for i, (kind, prov, ar, prov_ok, frm, until, name) in enumerate(nodes) if i % 3 != k)
                 for k in range(3)}
    count = PeriodCount(min_availability=min_av, in_use_min_bytes=min_bytes)
    rosters = Rosters(lambda v: inventory[v], area)
    totals: dict[Any, CommuneTotals] = {}
    for i, day in enumerate(days(D0, D0 + timedelta(days=len(versions) - 1))):
        version = versions[i] if versions[i] else None
        start, end = day_span(day, HCM)
        h = DayHistory(day, start, end, None, version, 0.0,
                       {u: DayRow(u, Seconds(*r[:5]), 0, 0, 0, 0, r[5], r[6], None, r[7], r[8])
                        for u, r in rows[i % 6].items()})
        cds = commune_days(h, inventory[version] if version is not None else (), area)
        want = day_rates(day, cds, min_availability=min_av, in_use_min_bytes=min_bytes)
        got = count.add_day(day, h.day_s, rosters.on(version, day),
                            {u: (u, *r) for u, r in rows[i % 6].items()})
        assert got == want
        assert rosters.on(version, day).units == {c.unit for c in cds}
        for c in cds:
            totals.setdefault(c.unit, CommuneTotals(c.unit, c.code, c.name, c.area)).add_day(
                day, c, min_availability=min_av, in_use_min_bytes=min_bytes)
    fast = count.totals()
    assert list(fast) == list(totals)
    for u, t in totals.items():
        assert vars_of(fast[u]) == vars_of(t)
        assert all(math.copysign(1, a) == math.copysign(1, b)
                   for a, b in zip(astuple(fast[u].seconds), astuple(t.seconds), strict=True))
