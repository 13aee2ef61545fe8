"""Audit reports (CSV, XLSX, HTML) of connection rates over any period, with their method and digests; `audit verify`.

``build_report`` reads the store and counts with monitor.core.history (the same arithmetic
as the status page); ``tables`` turns a report into plain tables that the three
writers share, so every format carries the same figures.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape

from exporters.fmt import page_pct
from exporters.labels import ENDED_BY
from monitor.config import Config
from monitor.core.history import (
    UNBOUNDED,
    CommuneTotals,
    Outage,
    OutagePiece,
    PeriodRate,
    day_rates,
    merge_outages,
    period_rates,
)
from monitor.core.rates import RateRow, for_scope, province_row
from monitor.files import atomic_path
from monitor.store import (
    HistoryStore,
    InventoryNode,
    InventoryVersionInfo,
    Seal,
    commune_days,
)

FORMATS = ("csv", "xlsx", "html")


# Spreadsheet programs run a cell that starts with one of these as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _tool_version() -> str:
    try:
        return version("tslcd-monitor")
    except PackageNotFoundError:
        return "unknown"


# -- the report, as plain values ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VersionUse:
    """An inventory version and the days of the period it decided which communes counted."""

    info: InventoryVersionInfo
    days: int


@dataclass(frozen=True, slots=True)
class DailyLine:
    """One day of the daily rates table (the province, or the area asked for)."""

    rate: RateRow
    coverage: float
    seal: Seal | None


@dataclass(frozen=True, slots=True)
class Report:
    """Everything an audit report states."""

    province: str
    area: str | None
    first: date
    last: date
    requested_last: date
    timezone: str
    generated_at: float
    target: float
    min_availability: float
    in_use_min_bytes: int
    min_coverage: float
    max_gaps_s: tuple[float, ...]
    store: str
    versions: tuple[VersionUse, ...]
    observed_s: float
    period_s: float
    summary: tuple[PeriodRate, ...]
    daily: tuple[DailyLine, ...]
    communes: tuple[CommuneTotals, ...]
    outages: tuple[tuple[Outage, CommuneTotals], ...]
    longest: dict[Any, float] = field(default_factory=dict)
    counts: dict[Any, int] = field(default_factory=dict)
    head: Seal | None = None
    pages_url: str = ""  # the status page (web.public_url): the HTML links each commune's code to its page there

    @property
    def coverage(self) -> float:
        """Share of the period the monitor was observing."""
        return self.observed_s / self.period_s if self.period_s > 0 else 0.0

    @property
    def seals(self) -> tuple[Seal, ...]:
        return tuple(d.seal for d in self.daily if d.seal is not None)

    @property
    def days_without_inventory(self) -> int:
        """Days of the period before any inventory version was recorded: no active commune, no data."""
        return len(self.daily) - sum(v.days for v in self.versions)

    @property
    def unsealed(self) -> tuple[date, ...]:
        return tuple(d.rate.day for d in self.daily if d.seal is None and d.rate.day is not None)


def period_of(*, first: date | None = None, last: date | None = None, year: int | None = None,
              month: str | None = None) -> tuple[date, date]:
    """The period of --from/--to, --year Y or --month YYYY-MM (exactly one form); ValueError says what is wrong."""
    forms = sum(x is not None for x in (year, month)) + (first is not None or last is not None)
    if forms != 1:
        raise ValueError("give the period as --from D1 --to D2, --year Y or --month YYYY-MM (one of them)")
    if year is not None:
        return date(year, 1, 1), date(year, 12, 31)
    if month is not None:
        try:
            start = datetime.strptime(month, "%Y-%m").date()
        except ValueError:
            raise ValueError(f"--month: expected YYYY-MM, got {month!r}") from None
        nxt = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
        return start, nxt - timedelta(days=1)
    if first is None or last is None:
        raise ValueError("give both --from and --to")
    if last < first:
        raise ValueError(f"--to {last} is before --from {first}")
    return first, last


def build_report(store: HistoryStore, cfg: Config, first: date, last: date, *, area: str | None = None,
                 now: float | None = None, progress: Callable[[int], None] | None = None,
                 store_name: str = "") -> Report:
    """Count the period day by day, as docs/design.md defines it; days after today are left out (and said so).

    ``progress`` is called with 1 after each day (for a progress bar).
    """
    now = time.time() if now is None else now
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
            # The scope's row: the area's, the nation's, or the province's (else the first province's: a history
            # recorded under another spelling of the province keeps its figures).
            main = next((r for r in rates if r.area == area), None) if area else (
                province_row(rates, cfg.province) or next((r for r in rates if r.area == ""), None))
            if main is None:  # no commune that day (no inventory recorded yet): a day without data, said so
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
            if progress:
                progress(1)
    merged = merge_outages(pieces)
    longest: dict[Any, float] = {}
    counts: dict[Any, int] = {}
    for o in merged:
        counts[o.unit] = counts.get(o.unit, 0) + 1
        longest[o.unit] = max(longest.get(o.unit, 0.0), o.duration)
    communes = tuple(sorted(totals.values(), key=lambda t: (t.area, t.code, t.first_day or UNBOUNDED)))
    head = store.chain_head()
    return Report(
        province=cfg.province, area=area, first=first, last=last, requested_last=requested_last,
        timezone=cfg.timezone, generated_at=now, target=rates_cfg.target,
        min_availability=rates_cfg.connected_min_availability, in_use_min_bytes=rates_cfg.in_use_min_bytes,
        min_coverage=rates_cfg.min_day_coverage, max_gaps_s=tuple(sorted({r.max_gap_s for r in store.runs()})),
        store=store_name,
        versions=tuple(VersionUse(versions[v], n) for v, n in sorted(used.items()) if v in versions),
        observed_s=observed, period_s=period,
        summary=tuple(sorted(period_rates(all_rates), key=lambda p: (p.province != cfg.province, p.province, p.area))),
        daily=tuple(daily),
        communes=communes, outages=tuple((o, totals[o.unit]) for o in merged), longest=longest, counts=counts,
        head=head, pages_url=cfg.web.public_url.rstrip("/") + "/" if cfg.web.public_url else "")


# -- plain tables shared by the writers ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Column:
    """A column: ``kind`` is text, int, number, rate, seconds, date or datetime (writers format by kind)."""

    key: str
    title: str
    kind: str = "text"


@dataclass(frozen=True, slots=True)
class Table:
    """One table of the report: a sheet in XLSX, a section in CSV and HTML."""

    id: str
    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[Any, ...], ...]
    note: str = ""


def definitions(r: Report) -> list[str]:
    """The definitions the figures follow (docs/design.md), with this report's thresholds filled in."""
    gaps = ", ".join(f"{g:g} s" for g in r.max_gaps_s) or "n/a"
    return [
        "Availability of a commune over a span = up / (up + down + unreachable). Time in state unknown "
        "(not observed, or the monitor was not running) and in declared maintenance is left out of the "
        "denominator and shown beside it as coverage; it never counts as up or down.",
        "Provisioned on day D: a commune active on D that has a TSLCD circuit (a management address in the "
        "inventory in effect on D). This is a registration, not a measurement; the official indicator may "
        "mean it, so it is shown beside the measured rates.",
        f"Connected on day D (measured): availability on D >= {r.min_availability:.2%} "
        "(rates.connected_min_availability). A commune with a circuit that was never observed on D (the "
        "monitor was not running, or the commune was in maintenance all day) has no data on D: it is neither "
        "connected nor not connected, and is left out of D's measured rates. A commune without a circuit is "
        "known not to be connected.",
        f"Connected and in use on day D (measured): connected on D, and uplink traffic (bytes in + out, read by "
        f"SNMP) on D >= {r.in_use_min_bytes:,} bytes (rates.in_use_min_bytes). A commune without traffic data "
        "is not counted as in use.",
        "Rate on day D: communes provisioned divided by all communes active in the inventory on D (a "
        "registration); communes connected, and connected and in use, divided by the communes active on D "
        "with data (provisioned or not). A day on which no commune has data has no measured rate. A period's "
        "measured rate is the mean of the daily rates of the days with data (the days without data are "
        "counted beside it); each commune's days connected are listed.",
        f"Representative: a day whose monitor coverage (share of the day the monitor was observing) is below "
        f"{r.min_coverage:.0%} (rates.min_day_coverage) is marked as not representative in the daily rates; "
        "its figures still count.",
        f"Days run from local midnight to midnight in {r.timezone}.",
        f"Observation: the monitor probes every node each sweep. Sweeps further apart than the run's maximum "
        f"gap ({gaps}) leave a gap, and so does any time the monitor was not running: that time is unknown.",
        "Identity: communes are identified by official code and first day of validity, never by name, so a "
        "code reused by a new unit after a reform is a different commune. The inventory version in effect at "
        "the end of each day decides which communes are active that day; a day before the first version "
        "was recorded has none (none recorded), so no data.",
        "Tamper evidence: once a day is over it is sealed: a SHA-256 digest over its rollup rows, outages, "
        "coverage, inventory version and the previous day's digest (a hash chain). `tslcd audit verify` "
        "recomputes the digests and names the first day whose data no longer matches; compare the chain head "
        "below with the one printed in earlier reports.",
    ]


def _local(ts: float, tz: ZoneInfo) -> datetime:
    # Naive local time: spreadsheets have no time zones; every header names the zone.
    return datetime.fromtimestamp(ts, tz).replace(tzinfo=None)


def tables(r: Report) -> list[Table]:
    """The report as tables: method, summary, daily, communes, outages, digests."""
    tz = ZoneInfo(r.timezone)
    scope = f"{r.province}" + (f", area {r.area}" if r.area else "")
    method_rows: list[tuple[Any, ...]] = [
        ("Report", f"TSLCD connection of commune People's Committees (UBND cấp xã): {scope}"),
        ("Period from", r.first),
        ("Period to", r.last),
    ]
    if r.requested_last != r.last:
        method_rows.append(("Period requested to", r.requested_last))
        method_rows.append(("Note", "days after the report was generated are not counted"))
    method_rows += [
        ("Area", r.area or "all"),
        ("Timezone (day boundaries)", r.timezone),
        ("Target (rates.target)", r.target),
        ("Connected threshold (rates.connected_min_availability)", r.min_availability),
        ("In use threshold, bytes/day (rates.in_use_min_bytes)", r.in_use_min_bytes),
        ("Representative day, minimum coverage (rates.min_day_coverage)", r.min_coverage),
        ("Maximum gap between sweeps, s", ", ".join(f"{g:g}" for g in r.max_gaps_s) or "n/a"),
        ("Coverage (share of the period the monitor was observing)", r.coverage),
        ("Days in the period", len(r.daily)),
        ("Days sealed", len(r.seals)),
        ("Days not sealed yet (computed from raw events, no digest)", ", ".join(d.isoformat() for d in r.unsealed)
         or "none"),
    ]
    for vu in r.versions:
        v = vu.info
        method_rows.append((f"Inventory version {v.id}", f"loaded {_local(v.loaded_at, tz):%Y-%m-%d %H:%M:%S}, "
                            f"{v.nodes} nodes, sha256 {v.digest}, used on {vu.days} day(s)"))
    if r.days_without_inventory:
        method_rows.append(("Inventory version before the first one recorded",
                            f"none recorded: {r.days_without_inventory} day(s) with no active commune (no data)"))
    method_rows += [
        ("Chain head", f"{r.head.day} {r.head.digest}" if r.head else "no day sealed yet"),
        ("Generated at", _local(r.generated_at, tz)),
        ("Generated by", f"tslcd-monitor {_tool_version()}"),
        ("History store", r.store),
    ]
    method_rows += [(f"Definition {i}", text) for i, text in enumerate(definitions(r), 1)]

    summary_cols = (
        Column("province", "Province"), Column("area", "Area (blank: whole province)"),
        Column("days", "Days counted", "int"),
        Column("provisioned_rate", "Provisioned rate (registered circuit, not measured)", "rate"),
        Column("connected_rate", "Connected rate (measured)", "rate"),
        Column("in_use_rate", "Connected and in use rate (measured)", "rate"),
        Column("target", "Target", "rate"),
        Column("gap", "Connected rate short of target", "rate"),
        Column("connected_min", "Lowest daily connected rate", "rate"),
        Column("connected_max", "Highest daily connected rate", "rate"),
        Column("days_no_data", "Days without data (left out of the measured rates)", "int"),
    )
    summary_rows = tuple(
        (p.province, p.area, p.days, p.provisioned_rate, p.connected_rate, p.in_use_rate, r.target,
         None if p.connected_rate is None else max(0.0, r.target - p.connected_rate), p.connected_min,
         p.connected_max, p.days_no_data) for p in r.summary)

    daily_cols = (
        Column("day", "Day", "date"), Column("communes", "Communes active", "int"),
        Column("provisioned", "Provisioned", "int"), Column("connected", "Connected", "int"),
        Column("in_use", "Connected and in use", "int"),
        Column("provisioned_rate", "Provisioned rate", "rate"), Column("connected_rate", "Connected rate", "rate"),
        Column("in_use_rate", "In use rate", "rate"), Column("coverage", "Monitor coverage", "rate"),
        Column("sealed", "Sealed"), Column("digest", "Day digest (sha256)"),
        Column("no_data", "Communes without data (not observed)", "int"),
        Column("representative", f"Representative (coverage >= {r.min_coverage:.0%})"),
    )
    daily_rows = tuple(
        (d.rate.day, d.rate.communes, d.rate.provisioned, d.rate.connected, d.rate.in_use, d.rate.provisioned_rate,
         d.rate.connected_rate, d.rate.in_use_rate, d.coverage, "yes" if d.seal else "no",
         d.seal.digest if d.seal else "", d.rate.no_data,
         "no data" if not d.rate.has_data else ("yes" if d.coverage >= r.min_coverage else "no"))
        for d in r.daily)

    commune_cols = (
        Column("code", "Code"), Column("name", "Name"), Column("area", "Area"),
        Column("first_day", "First day counted", "date"), Column("last_day", "Last day counted", "date"),
        Column("days_active", "Days active", "int"), Column("days_provisioned", "Days provisioned", "int"),
        Column("availability", "Availability", "rate"), Column("days_connected", "Days connected", "int"),
        Column("days_in_use", "Days in use", "int"), Column("outages", "Outages", "int"),
        Column("downtime_s", "Total downtime, s", "seconds"), Column("longest_s", "Longest outage, s", "seconds"),
        Column("coverage", "Coverage", "rate"), Column("unknown_s", "Unknown, s", "seconds"),
        Column("maintenance_s", "Maintenance, s", "seconds"),
    )
    commune_rows = tuple(
        (t.code, t.name, t.area, t.first_day, t.last_day, t.days_active, t.days_provisioned,
         t.seconds.availability, t.days_connected, t.days_in_use, r.counts.get(t.unit, 0), round(t.seconds.outage, 3),
         round(r.longest.get(t.unit, 0.0), 3), t.coverage, round(t.seconds.unknown, 3),
         round(t.seconds.maintenance, 3)) for t in r.communes)

    outage_cols = (
        Column("code", "Code"), Column("name", "Name"), Column("area", "Area"),
        Column("start", f"Start ({r.timezone})", "datetime"), Column("end", f"End ({r.timezone})", "datetime"),
        Column("duration_s", "Duration, s", "seconds"), Column("down_s", "Down, s", "seconds"),
        Column("unreachable_s", "Unreachable (upstream down), s", "seconds"),
        Column("cause", "Upstream node down"), Column("ended_by", "Ended by"),
    )
    outage_rows = tuple(
        (t.code, t.name, t.area, _local(o.start, tz), _local(o.end, tz), round(o.duration, 3), o.down_s,
         o.unreachable_s, o.cause or "", ENDED_BY.get(o.ended_by, o.ended_by)) for o, t in r.outages)

    digest_cols = (Column("day", "Day", "date"), Column("digest", "Digest (sha256)"),
                   Column("prev", "Previous day's digest"), Column("inventory_version", "Inventory version", "int"),
                   Column("observed_s", "Observed, s", "seconds"), Column("rows", "Rows", "int"))
    digest_rows: list[tuple[Any, ...]] = [(s.day, s.digest, s.prev, s.inventory_version, s.observed_s, s.rows)
                                          for s in r.seals]
    head_note = (f"Chain head: {r.head.day} {r.head.digest}" if r.head else "Chain head: no day sealed yet")
    return [
        Table("method", "Method", (Column("key", "Item"), Column("value", "Value")), tuple(method_rows)),
        Table("summary", "Summary against the target", summary_cols, summary_rows,
              "Period rates are the mean of the daily rates."),
        Table("daily", "Daily rates", daily_cols, daily_rows),
        Table("communes", "Communes", commune_cols, commune_rows,
              "Downtime = down + unreachable time observed in the period; outages cut at the period's ends."),
        Table("outages", "Outages", outage_cols, outage_rows,
              "An outage is a stretch of down or unreachable time; one the monitor stopped observing ends there "
              "(what followed is unknown)."),
        Table("digests", "Digests", digest_cols, tuple(digest_rows), head_note),
    ]


# -- writers ----------------------------------------------------------------------------------------------


def safe_text(value: str) -> str:
    """A text cell that no spreadsheet runs as a formula: a leading = + - @ tab or CR gets a ' before it."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _csv_value(value: Any, kind: str) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6f}" if kind == "rate" else f"{value:.3f}" if kind == "seconds" else repr(value)
    if isinstance(value, int):
        return value
    return safe_text(str(value))


def write_csv(r: Report, out: TextIO) -> None:
    """One CSV holding every table, each after a line naming it; text cells are safe from formula injection."""
    w = csv.writer(out, lineterminator="\r\n")
    for t in tables(r):
        w.writerow([f"[{t.title}]"])
        w.writerow([c.title for c in t.columns])
        for row in t.rows:
            w.writerow([_csv_value(v, c.kind) for v, c in zip(row, t.columns, strict=True)])
        if t.note:
            w.writerow([safe_text(t.note)])
        w.writerow([])


_XLSX_FORMATS = {"rate": "0.00%", "seconds": "#,##0.000", "int": "0", "date": "yyyy-mm-dd",
                 "datetime": "yyyy-mm-dd hh:mm:ss"}


def write_xlsx(r: Report, path: Path) -> None:
    """An XLSX workbook, a sheet per table: real dates and numbers, column widths, frozen header, filters.

    Written in openpyxl's write-only mode: a year of 20,000 communes streams out instead
    of building every cell in memory first.
    """
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    wb = Workbook(write_only=True)
    bold = Font(bold=True)
    wrap = Alignment(wrap_text=True, vertical="top")
    for t in tables(r):
        ws = wb.create_sheet(t.title[:31])
        # Widths first: a write-only sheet takes its column settings before any row.
        widths = [min(40, max(10, len(c.title) // 2 + 2)) for c in t.columns]
        for row in t.rows:
            for i, (c, v) in enumerate(zip(t.columns, row, strict=True)):
                if isinstance(v, str):
                    widths[i] = max(widths[i], min(90 if t.id == "method" else 60, len(v) + 2))
                elif c.kind == "datetime":
                    widths[i] = max(widths[i], 20)
                elif c.kind in _XLSX_FORMATS:
                    widths[i] = max(widths[i], 12)
        for i, w in enumerate(widths, 1):
            ws.column_dimensions[get_column_letter(i)].width = w
        ws.freeze_panes = "A2"
        if t.rows and t.id != "method":
            ws.auto_filter.ref = f"A1:{get_column_letter(len(t.columns))}{len(t.rows) + 1}"

        def cell(value: Any, kind: str, *, style: Font | None = None, align: Alignment | None = None,
                 ws: Any = ws) -> Any:
            if isinstance(value, str):  # names recorded before the loader neutralised controls: never a crash
                value = ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)
            c = WriteOnlyCell(ws, value=value)
            if isinstance(value, str):
                # openpyxl would store "=..." as a formula; a name is text, always.
                c.data_type = "s"
            elif kind in _XLSX_FORMATS and value is not None:
                c.number_format = _XLSX_FORMATS[kind]
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
    wb.properties.creator = f"tslcd-monitor {_tool_version()}"
    with atomic_path(path) as tmp:
        wb.save(tmp)


_env = Environment(loader=PackageLoader("exporters", "templates"), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)
_env.filters["pct"] = lambda x, digits=2: page_pct(x, digits, "no data")


def _html_value(value: Any, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "rate" and isinstance(value, float):
        return f"{value * 100:.2f}%"
    if kind == "seconds" and isinstance(value, int | float):
        return f"{value:,.0f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def render_html(r: Report) -> str:
    """A self-contained HTML page (no script, no external resource), each table with an id for checks."""
    ts = tables(r)
    province = next((p for p in r.summary if p.area == (r.area or "")), None)
    return _env.get_template("audit.html").render(
        r=r, tables=ts, by_id={t.id: t for t in ts}, fmt=_html_value, defs=definitions(r), main=province,
        version=_tool_version())


# -- the command ------------------------------------------------------------------------------------------


def format_rows(rows: Iterable[Sequence[Any]], columns: Sequence[Column]) -> list[list[str]]:
    """Rows as the HTML report shows them (used by tests to compare formats)."""
    return [[_html_value(v, c.kind) for v, c in zip(row, columns, strict=True)] for row in rows]
