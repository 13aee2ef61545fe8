"""Audit reports (CSV, XLSX, HTML) of connection rates over any period, with their method and digests; `audit verify`.

``build_report`` reads the store and counts with monitor.core.history (the same arithmetic
as the status page); ``tables`` turns a report into plain tables that the three
writers share, so every format carries the same figures.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, Any, TextIO
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape

from exporters.fmt import page_pct
from exporters.labels import ENDED_BY
from monitor.config import Config
from monitor.core.causes import RULES
from monitor.core.history import (
    UNBOUNDED,
    CommuneTotals,
    Outage,
    OutagePiece,
    PeriodCount,
    PeriodRate,
    Seconds,
    day_span,
    merge_outages,
    period_rates,
)
from monitor.core.notes import OutageNote, notes_of, outage_id, with_exclusions
from monitor.core.rates import RateRow, for_scope, province_row
from monitor.files import atomic_path
from monitor.store import HistoryStore, InventoryVersionInfo, Seal
from monitor.store.model import Reseal, Rosters

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
    # Seconds per carrier (None: communes whose inventory names none) and the communes counted under it.
    carriers: dict[str | None, tuple[Seconds, frozenset[Any]]] = field(default_factory=dict)
    # Maintenance windows with a span in the period: declared at run time (the store) and in config.yaml.
    maintenance: tuple[MaintenanceLine, ...] = ()
    # What operators said of the period's outages (notes, approved exclusions), the chain's re-sealings, and the
    # figures counted again with the approved exclusions (empty without any).
    notes: tuple[OutageNote, ...] = ()
    reseals: tuple[Reseal, ...] = ()
    summary_x: tuple[PeriodRate, ...] = ()
    daily_x: tuple[RateRow | None, ...] = ()
    availability_x: dict[Any, float | None] = field(default_factory=dict)

    @property
    def exclusions(self) -> tuple[OutageNote, ...]:
        return tuple(n for n in self.notes if n.is_exclusion)

    @property
    def exclusion_count(self) -> int:
        """Approved exclusions: of outages, and maintenance windows declared after the fact."""
        return len(self.exclusions) + sum(1 for m in self.maintenance if m.excluded)
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
    used: dict[int, int] = {}
    # Counted on plain values (monitor.core.history.PeriodCount): the figures of day_rates over commune_days and of
    # CommuneTotals.add_day, without an object per commune and day (tests/test_audit_fast.py compares them).
    count = PeriodCount(min_availability=rates_cfg.connected_min_availability,
                        in_use_min_bytes=rates_cfg.in_use_min_bytes)
    rosters = Rosters(store.inventory_nodes, area)
    # What operators said of the period's outages; approved exclusions are counted a second time beside the
    # measured figures, never instead of them (monitor.core.notes).
    lo, hi = day_span(first, tz)[0], day_span(last, tz)[1]
    notes = tuple(store.outage_notes(lo, hi)) if first <= last else ()
    spans = store.exclusion_spans(lo, hi) if first <= last else {}
    count_x = PeriodCount(min_availability=rates_cfg.connected_min_availability,
                          in_use_min_bytes=rates_cfg.in_use_min_bytes) if spans else None
    rates_x: list[RateRow] = []
    daily_x: list[RateRow | None] = []
    pieces: list[tuple[Any, OutagePiece]] = []
    all_rates: list[RateRow] = []
    daily: list[DailyLine] = []
    observed = period = 0.0
    if first <= last:
        for h in store.history_values(first, last, tz):
            if h.inventory_version is not None:
                used[h.inventory_version] = used.get(h.inventory_version, 0) + 1
            roster = rosters.on(h.inventory_version, h.day)
            rates = for_scope(count.add_day(h.day, h.day_s, roster, h.rows), cfg)
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
            if count_x is not None:
                rows_x, _ = with_exclusions(h.rows, h.outages, spans)
                day_x = for_scope(count_x.add_day(h.day, h.day_s, roster, rows_x), cfg)
                if area is not None:
                    day_x = tuple(r for r in day_x if r.area == area)
                rates_x.extend(day_x)
                daily_x.append(next((r for r in day_x if (r.province, r.area) == (main.province, main.area)), None))
            elapsed = max(0.0, min(now, h.end) - h.start)
            daily.append(DailyLine(main, h.observed_s / elapsed if elapsed > 0 else 0.0, h.seal))
            observed += h.observed_s
            period += elapsed
            units = roster.units
            pieces.extend((u, p) for u, p in h.outages if u in units)
            if progress:
                progress(1)
    totals = count.totals()
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
        head=head, carriers=count.carrier_seconds(), notes=notes, reseals=tuple(
            x for x in store.reseals() if first <= x.from_day <= last),
        summary_x=tuple(period_rates(rates_x)), daily_x=tuple(daily_x),
        availability_x={u: t.seconds.availability for u, t in count_x.totals().items()} if count_x else {},
        maintenance=maintenance_lines(store, cfg, day_span(first, tz)[0], min(now, day_span(last, tz)[1])),
        pages_url=cfg.web.public_url.rstrip("/") + "/" if cfg.web.public_url else "")


NOT_RECORDED = "not recorded"


@dataclass(frozen=True, slots=True)
class MaintenanceLine:
    """A maintenance window with a span in the period, as the report lists it."""

    source: str  # "declared" (tslcd maintenance, the API) or "config.yaml"
    id: int | None
    start: float
    end: float
    recur: str | None
    nodes: str
    reason: str
    declared_by: str
    declared_at: float | None
    approved_by: str | None
    ended_at: float | None
    in_period_s: float  # the length of its spans inside the period
    spans: tuple[tuple[float, float], ...] = ()  # its spans inside the period, clipped to it
    excluded: bool = False  # declared after it began (approved): an exclusion, beside the measured figures


def maintenance_lines(store: HistoryStore, cfg: Config, lo: float, hi: float) -> tuple[MaintenanceLine, ...]:
    """Every maintenance window with a span in [lo, hi): those declared at run time and those of config.yaml."""
    tz = cfg.tz
    out = []
    for w in store.maintenance_windows(lo, hi):
        spans = list(w.spans(lo, hi, tz))
        out.append(MaintenanceLine(
            "declared", w.id, w.start, w.end, w.recur + (f" until {w.until}" if w.until else "") if w.recur else None,
            ", ".join([*w.codes, *(f"area {a}" for a in w.areas)]), w.reason, w.declared_by, w.declared_at,
            w.approved_by, w.ended_at, sum(min(e, hi) - max(s, lo) for s, e in spans),
            tuple((max(s, lo), min(e, hi)) for s, e in spans), w.after_the_fact and bool(w.approved_by)))
    for m in cfg.maintenance:
        s = (m.start if m.start.tzinfo else m.start.replace(tzinfo=tz)).timestamp()
        e = (m.end if m.end.tzinfo else m.end.replace(tzinfo=tz)).timestamp()
        if s < hi and e > lo:
            out.append(MaintenanceLine("config.yaml", None, s, e, None,
                                       ", ".join([*m.codes, *(f"area {a}" for a in m.areas)]), m.reason, "", None,
                                       None, None, min(e, hi) - max(s, lo), ((max(s, lo), min(e, hi)),)))
    return tuple(sorted(out, key=lambda x: (x.start, x.id or 0)))
NO_CARRIER = "(none named)"


@dataclass(frozen=True, slots=True)
class CauseCount:
    """The outages of one cause in a period: how many, of how many communes, how much downtime."""

    why: str
    outages: int
    communes: int
    downtime_s: float


def by_cause(outages: Iterable[Outage]) -> list[CauseCount]:
    """Outages counted per cause, in the rule table's order (then "not recorded"); causes with none left out."""
    n: dict[str, int] = {}
    units: dict[str, set[Any]] = {}
    down: dict[str, float] = {}
    for o in outages:
        why = o.why or NOT_RECORDED
        n[why] = n.get(why, 0) + 1
        units.setdefault(why, set()).add(o.unit)
        down[why] = down.get(why, 0.0) + o.down_s + o.unreachable_s
    order = [c.value for c, _ in RULES] + [NOT_RECORDED]
    return [CauseCount(w, n[w], len(units[w]), down[w]) for w in sorted(n, key=lambda w: (
        order.index(w) if w in order else len(order), w))]


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
        "IPv6 readiness on day D: communes whose IPv6 address (inventory: address6) answered at least once on D, "
        "divided by the communes with data on D (the connection rate's denominator and 'no data' rules); a commune "
        "without an IPv6 address is not IPv6 ready. A period's IPv6 readiness rate is the mean of the daily rates "
        "of the days with data. A commune's IPv6 availability: the sweeps its IPv6 address answered / the sweeps "
        "that probed it.",
        "Exclusions: an operator may ask that an outage be excluded from availability (say, planned works declared "
        "too late); it counts only with a named approver, and never instead of the measured figure: every figure it "
        "changes is given twice, as measured and with the approved exclusions (the excluded outage's down and "
        "unreachable time left out of availability, as maintenance is). Exclusions are part of the hash chain: one "
        "of an outage on a day already sealed re-seals the chain from that day, recorded above with its reason; "
        "one added or changed in the database otherwise fails `tslcd audit verify`.",
        "Outage causes, from what ICMP and SNMP saw (first match wins): " + "; ".join(
            f"{c.value}: {text}" for c, text in RULES) + ". A down commune is asked over SNMP too (at most "
        "snmp.down_nodes_max a poll). A day's outages carry the cause known when the day was sealed; an outage "
        "over several days is listed with the cause known last; 'not recorded' marks outages from before causes "
        "were recorded.",
        "Tamper evidence: once a day is over it is sealed: a SHA-256 digest over its rollup rows, outages (with "
        "their causes), "
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
    method_rows.append(("Approved exclusions", f"{r.exclusion_count}: the figures they change are given twice, as "
                        "measured and with the approved exclusions" if r.exclusion_count else "none"))
    for x in r.reseals:
        method_rows.append((f"Re-sealed from {x.from_day}", f"on {_local(x.at, tz):%Y-%m-%d %H:%M:%S} by {x.by}, "
                            f"approved by {x.approved_by}: {x.reason}; chain head before {x.old_head}, after "
                            f"{x.new_head}"))
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
        Column("ipv6_rate", "IPv6 readiness rate (measured)", "rate"),
        Column("connected_rate_x", "Connected rate with approved exclusions", "rate"),
        Column("exclusions", "Approved exclusions", "int"),
    )
    summary_x = {(p.province, p.area): p for p in r.summary_x}
    n_excl = r.exclusion_count
    summary_rows = tuple(
        (p.province, p.area, p.days, p.provisioned_rate, p.connected_rate, p.in_use_rate, r.target,
         None if p.connected_rate is None else max(0.0, r.target - p.connected_rate), p.connected_min,
         p.connected_max, p.days_no_data, p.ipv6_rate,
         summary_x[(p.province, p.area)].connected_rate if (p.province, p.area) in summary_x else p.connected_rate,
         n_excl) for p in r.summary)

    daily_cols = (
        Column("day", "Day", "date"), Column("communes", "Communes active", "int"),
        Column("provisioned", "Provisioned", "int"), Column("connected", "Connected", "int"),
        Column("in_use", "Connected and in use", "int"),
        Column("provisioned_rate", "Provisioned rate", "rate"), Column("connected_rate", "Connected rate", "rate"),
        Column("in_use_rate", "In use rate", "rate"), Column("coverage", "Monitor coverage", "rate"),
        Column("sealed", "Sealed"), Column("digest", "Day digest (sha256)"),
        Column("no_data", "Communes without data (not observed)", "int"),
        Column("representative", f"Representative (coverage >= {r.min_coverage:.0%})"),
        Column("ipv6_ready", "IPv6 ready", "int"), Column("ipv6_rate", "IPv6 readiness rate", "rate"),
        Column("connected_rate_x", "Connected rate with approved exclusions", "rate"),
    )
    daily_rows = tuple(
        (d.rate.day, d.rate.communes, d.rate.provisioned, d.rate.connected, d.rate.in_use, d.rate.provisioned_rate,
         d.rate.connected_rate, d.rate.in_use_rate, d.coverage, "yes" if d.seal else "no",
         d.seal.digest if d.seal else "", d.rate.no_data,
         "no data" if not d.rate.has_data else ("yes" if d.coverage >= r.min_coverage else "no"),
         d.rate.ipv6_ready, d.rate.ipv6_rate,
         dx.connected_rate if (dx := (r.daily_x[i] if i < len(r.daily_x) else None)) is not None
         else d.rate.connected_rate)
        for i, d in enumerate(r.daily))

    commune_cols = (
        Column("code", "Code"), Column("name", "Name"), Column("area", "Area"),
        Column("first_day", "First day counted", "date"), Column("last_day", "Last day counted", "date"),
        Column("days_active", "Days active", "int"), Column("days_provisioned", "Days provisioned", "int"),
        Column("availability", "Availability", "rate"), Column("days_connected", "Days connected", "int"),
        Column("days_in_use", "Days in use", "int"), Column("outages", "Outages", "int"),
        Column("downtime_s", "Total downtime, s", "seconds"), Column("longest_s", "Longest outage, s", "seconds"),
        Column("coverage", "Coverage", "rate"), Column("unknown_s", "Unknown, s", "seconds"),
        Column("maintenance_s", "Maintenance, s", "seconds"),
        Column("carrier", "Carrier"), Column("days_ipv6", "Days IPv6 answered", "int"),
        Column("ipv6_availability", "IPv6 availability (answered / probed)", "rate"),
        Column("availability_x", "Availability with approved exclusions", "rate"),
    )
    commune_rows = tuple(
        (t.code, t.name, t.area, t.first_day, t.last_day, t.days_active, t.days_provisioned,
         t.seconds.availability, t.days_connected, t.days_in_use, r.counts.get(t.unit, 0), round(t.seconds.outage, 3),
         round(r.longest.get(t.unit, 0.0), 3), t.coverage, round(t.seconds.unknown, 3),
         round(t.seconds.maintenance, 3), t.carrier or "", t.days_ipv6, t.ipv6_availability,
         r.availability_x.get(t.unit, t.seconds.availability) if r.availability_x else t.seconds.availability)
        for t in r.communes)

    outage_cols = (
        Column("code", "Code"), Column("name", "Name"), Column("area", "Area"),
        Column("start", f"Start ({r.timezone})", "datetime"), Column("end", f"End ({r.timezone})", "datetime"),
        Column("duration_s", "Duration, s", "seconds"), Column("down_s", "Down, s", "seconds"),
        Column("unreachable_s", "Unreachable (upstream down), s", "seconds"),
        Column("why", "Cause"), Column("cause", "Upstream node down"), Column("ended_by", "Ended by"),
        Column("id", "Outage id"), Column("notes", "Notes (ticket, cause given, by)"),
        Column("excluded", "Excluded from availability (reason; approved by)"),
    )
    said: dict[Any, list[OutageNote]] = {}
    for n in r.notes:
        said.setdefault(n.unit, []).append(n)

    def notes_text(o: Outage) -> tuple[str, str]:
        ns = notes_of(said.get(o.unit, ()), o.unit, o.start, o.end)
        text = " | ".join(
            n.note + (f" (ticket {n.ticket})" if n.ticket else "") + (f" (cause: {n.cause})" if n.cause else "")
            + f" — {n.by}" for n in ns if not n.is_exclusion)
        excl = " | ".join(f"{n.note}; approved by {n.approved_by} ({n.by})" for n in ns if n.is_exclusion)
        return text, excl

    outage_rows = tuple(
        (t.code, t.name, t.area, _local(o.start, tz), _local(o.end, tz), round(o.duration, 3), o.down_s,
         o.unreachable_s, o.why or NOT_RECORDED, o.cause or "", ENDED_BY.get(o.ended_by, o.ended_by),
         outage_id(t.code, o.start, tz), *notes_text(o))
        for o, t in r.outages)

    carrier_cols = (Column("carrier", "Carrier"), Column("communes", "Communes", "int"),
                    Column("availability", "Availability", "rate"),
                    Column("circuit_availability", "Availability excluding upstream outages", "rate"),
                    Column("outage_min", "Outage minutes (down + unreachable)", "number"),
                    Column("down_min", "Down minutes", "number"),
                    Column("unreachable_min", "Unreachable minutes (upstream down)", "number"),
                    Column("outages", "Outages", "int"), Column("unknown_min", "Unknown minutes", "number"),
                    Column("maintenance_min", "Maintenance minutes", "number"))
    carrier_of = {t.unit: t.carrier for t in r.communes}
    outages_of: dict[str | None, int] = {}
    for o, _ in r.outages:
        outages_of[carrier_of.get(o.unit)] = outages_of.get(carrier_of.get(o.unit), 0) + 1
    carrier_rows = tuple(
        (c if c is not None else NO_CARRIER, len(units), sec.availability,
         sec.up / (sec.up + sec.down) if sec.up + sec.down > 0 else None,
         round((sec.down + sec.unreachable) / 60, 1), round(sec.down / 60, 1), round(sec.unreachable / 60, 1),
         outages_of.get(c, 0), round(sec.unknown / 60, 1), round(sec.maintenance / 60, 1))
        for c, (sec, units) in sorted(r.carriers.items(), key=lambda kv: (kv[0] is None, kv[0] or "")))

    maint_cols = (Column("source", "Declared in"), Column("id", "Window", "int"),
                  Column("start", f"Start ({r.timezone})", "datetime"),
                  Column("end", f"End ({r.timezone})", "datetime"), Column("recur", "Repeats"),
                  Column("nodes", "Nodes (and every node behind them)"),
                  Column("reason", "Reason"), Column("declared_by", "Declared by"),
                  Column("declared_at", f"Declared at ({r.timezone})", "datetime"),
                  Column("approved_by", "Approved by (declared after it began)"),
                  Column("ended_at", f"Ended early at ({r.timezone})", "datetime"),
                  Column("in_period_s", "Span in the period, s", "seconds"))
    maint_rows = tuple(
        (m.source, m.id, _local(m.start, tz), _local(m.end, tz), m.recur or "", m.nodes, m.reason, m.declared_by,
         _local(m.declared_at, tz) if m.declared_at is not None else None, m.approved_by or "",
         _local(m.ended_at, tz) if m.ended_at is not None else None, round(m.in_period_s, 3)) for m in r.maintenance)

    cause_cols = (Column("why", "Cause"), Column("outages", "Outages", "int"),
                  Column("communes", "Communes", "int"), Column("downtime_s", "Downtime, s", "seconds"),
                  Column("share", "Share of the downtime", "rate"), Column("rule", "Rule"))
    per_cause = by_cause(o for o, _ in r.outages)
    total_down = sum(c.downtime_s for c in per_cause)
    rules = {c.value: text for c, text in RULES}
    cause_rows = tuple(
        (c.why, c.outages, c.communes, round(c.downtime_s, 3), c.downtime_s / total_down if total_down else None,
         rules.get(c.why, "outages from before causes were recorded")) for c in per_cause)

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
        Table("carriers", "Carriers", carrier_cols, carrier_rows,
              "Each commune's days count under the carrier its inventory named that day (inventory: carrier). "
              "Availability as everywhere; excluding upstream outages: up / (up + down), the commune's own "
              "circuit. Outages are counted under the commune's carrier on its last day counted."),
        Table("maintenance", "Maintenance windows", maint_cols, maint_rows,
              "Time in maintenance is out of availability (each commune's is in Communes: Maintenance, s). A window "
              "covers the nodes it names and every node behind them."),
        Table("causes", "Outages by cause", cause_cols, cause_rows,
              "Each outage once, with its cause (Definitions); downtime = down + unreachable time in the period."),
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
# What openpyxl gives a date or datetime cell of no format of its own.
_XLSX_DATE_FORMATS = {date: "yyyy-mm-dd", datetime: "yyyy-mm-dd h:mm:ss"}
# Built-in number formats by id (ECMA-376 18.8.30); others are declared in styles.xml from 164 on.
_XLSX_BUILTIN_FORMATS = {"General": 0, "0": 1, "0.00%": 10}
_XLSX_CUSTOM_FORMATS = ("yyyy-mm-dd", "yyyy-mm-dd h:mm:ss", "#,##0.000", "yyyy-mm-dd hh:mm:ss")
_XLSX_FORMAT_IDS = {**_XLSX_BUILTIN_FORMATS, **{f: 164 + i for i, f in enumerate(_XLSX_CUSTOM_FORMATS)}}
_XLSX_MAX_TEXT = 32_767  # characters in a cell (Excel's limit; openpyxl cuts there too)

_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_SHEET_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"


def _xml_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _xml_attr(value: str) -> str:
    return _xml_text(value).replace('"', "&quot;").replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#09;")


def _column_letter(i: int) -> str:
    """1 -> A, 27 -> AA."""
    out = ""
    while i > 0:
        i, rem = divmod(i - 1, 26)
        out = chr(65 + rem) + out
    return out


class _XlsxStyles:
    """The cell formats used (cellXfs), each a number format, bold or not, wrapped or not; id 0 is the default."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, bool, bool], int] = {("General", False, False): 0}

    def id(self, number_format: str, bold: bool = False, wrap: bool = False) -> int:
        key = (number_format, bold, wrap)
        found = self.ids.get(key)
        if found is None:
            found = self.ids[key] = len(self.ids)
        return found

    def xml(self) -> str:
        xfs = []
        for (fmt, bold, wrap), _ in sorted(self.ids.items(), key=lambda kv: kv[1]):
            attrs = f'numFmtId="{_XLSX_FORMAT_IDS[fmt]}" fontId="{int(bold)}" fillId="0" borderId="0"'
            if fmt != "General":
                attrs += ' applyNumberFormat="1"'
            if bold:
                attrs += ' applyFont="1"'
            xfs.append(f'<xf {attrs} applyAlignment="1" xfId="0"><alignment vertical="top" wrapText="1"/></xf>'
                       if wrap else f'<xf {attrs} xfId="0"/>')
        formats = "".join(f'<numFmt numFmtId="{164 + i}" formatCode="{_xml_attr(f)}"/>'
                          for i, f in enumerate(_XLSX_CUSTOM_FORMATS))
        return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<styleSheet xmlns="{_MAIN_NS}">'
                f'<numFmts count="{len(_XLSX_CUSTOM_FORMATS)}">{formats}</numFmts>'
                '<fonts count="2"><font><sz val="11"/><color theme="1"/><name val="Calibri"/><family val="2"/>'
                '<scheme val="minor"/></font><font><b val="1"/></font></fonts>'
                '<fills count="2"><fill><patternFill/></fill><fill><patternFill patternType="gray125"/></fill></fills>'
                '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
                '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
                f'<cellXfs count="{len(xfs)}">{"".join(xfs)}</cellXfs>'
                '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
                '<tableStyles count="0" defaultTableStyle="TableStyleMedium9" defaultPivotStyle="PivotStyleLight16"/>'
                '</styleSheet>')


def _xlsx_widths(t: Table) -> list[int]:
    widths = [min(40, max(10, len(c.title) // 2 + 2)) for c in t.columns]
    for row in t.rows:
        for i, (c, v) in enumerate(zip(t.columns, row, strict=True)):
            if isinstance(v, str):
                widths[i] = max(widths[i], min(90 if t.id == "method" else 60, len(v) + 2))
            elif c.kind == "datetime":
                widths[i] = max(widths[i], 20)
            elif c.kind in _XLSX_FORMATS:
                widths[i] = max(widths[i], 12)
    return widths


def _xlsx_sheet(t: Table, styles: _XlsxStyles, out: IO[bytes]) -> None:
    """One table as a worksheet's XML, written in pieces: frozen header row (bold, wrapped), column widths, a filter
    over the rows, each value in its column's number format; text is always text, never a formula."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.utils.datetime import to_excel

    def write(piece: str) -> None:
        out.write(piece.encode("utf-8"))

    letters = [_column_letter(i) for i in range(1, len(t.columns) + 1)]
    cols = "".join(f'<col min="{i}" max="{i}" width="{w}" customWidth="1"/>'
                   for i, w in enumerate(_xlsx_widths(t), 1))
    write(f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="{_MAIN_NS}">'
          '<sheetPr><outlinePr summaryBelow="1" summaryRight="1"/><pageSetUpPr/></sheetPr>'
          '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" '
          'state="frozen"/><selection pane="bottomLeft" activeCell="A1" sqref="A1"/></sheetView></sheetViews>'
          f'<sheetFormatPr baseColWidth="8" defaultRowHeight="15"/><cols>{cols}</cols><sheetData>')
    illegal = ILLEGAL_CHARACTERS_RE.sub

    def text(ref: str, value: str, s: str) -> str:
        # Names recorded before the loader neutralised controls: never a crash (U+FFFD instead).
        value = illegal("\ufffd", value)[:_XLSX_MAX_TEXT]
        if not value:
            return f'<c r="{ref}"{s} t="inlineStr"/>'
        stripped = value.strip()
        space = ' xml:space="preserve"' if stripped and stripped != value else ""
        return f'<c r="{ref}"{s} t="inlineStr"><is><t{space}>{_xml_text(value)}</t></is></c>'

    header = styles.id("General", bold=True, wrap=True)
    write('<row r="1">' + "".join(text(f"{letters[i]}1", c.title, f' s="{header}"')
                                  for i, c in enumerate(t.columns)) + "</row>")
    # Per column: the style of a number in its kind's format, and of any other value; cached per format.
    wrap_col = 1 if t.id == "method" else -1
    plain = [f' s="{styles.id("General", wrap=True)}"' if i == wrap_col else "" for i in range(len(t.columns))]
    kinded = [f' s="{styles.id(_XLSX_FORMATS[c.kind], wrap=i == wrap_col)}"' if c.kind in _XLSX_FORMATS else None
              for i, c in enumerate(t.columns)]
    dated = [{k: f' s="{styles.id(f, wrap=i == wrap_col)}"' for k, f in _XLSX_DATE_FORMATS.items()}
             for i in range(len(t.columns))]
    chunk: list[str] = []
    n = 1
    for n, row in enumerate(t.rows, 2):
        cells = []
        for i, v in enumerate(row):
            ref = f"{letters[i]}{n}"
            if isinstance(v, str):
                cells.append(text(ref, v, plain[i]))
                continue
            if v is None:
                if plain[i]:  # an empty cell with a format of its own; openpyxl leaves out one without
                    cells.append(f'<c r="{ref}"{plain[i]} t="n"/>')
                continue
            s = kinded[i]
            if isinstance(v, date):  # a datetime too: both days since 1899-12-30 as openpyxl counts them
                number = to_excel(v)
                s = s or dated[i][datetime if isinstance(v, datetime) else date]
            else:
                number = v
                s = s or plain[i]
            if isinstance(v, bool):
                cells.append(f'<c r="{ref}"{s} t="b"><v>{int(v)}</v></c>')
            elif isinstance(number, float) and not math.isfinite(number):
                cells.append(f'<c r="{ref}"{s} t="n"><v></v></c>')
            else:
                cells.append(f'<c r="{ref}"{s} t="n"><v>{number:.16g}</v></c>')  # openpyxl's way: 16 digits
        chunk.append(f'<row r="{n}">{"".join(cells)}</row>')
        if len(chunk) >= 2000:
            write("".join(chunk))
            chunk.clear()
    write("".join(chunk))
    if t.note:
        write(f'<row r="{n + 1}"/><row r="{n + 2}">{text(f"A{n + 2}", t.note, "")}</row>')
    write("</sheetData>")
    if t.rows and t.id != "method":
        write(f'<autoFilter ref="A1:{letters[-1]}{len(t.rows) + 1}"/>')
    write('<pageMargins left="0.75" right="0.75" top="1" bottom="1" header="0.5" footer="0.5"/></worksheet>')


def write_xlsx(r: Report, path: Path) -> None:
    """An XLSX workbook, a sheet per table: real dates and numbers, column widths, frozen header, filters.

    SpreadsheetML written straight into the zip, each sheet streamed row by row: a year of 20,000 communes is about
    1.9 million cells, and openpyxl (write-only mode included) spends some 10 us on each. The cells are what openpyxl
    wrote: inline strings, numbers to 16 significant digits, dates and times as its ``to_excel`` counts them, the
    same number formats; the tests read the workbook back with openpyxl.
    """
    import zipfile

    from openpyxl.writer.theme import theme_xml

    ts = tables(r)
    styles = _XlsxStyles()
    titles = [t.title[:31] for t in ts]
    created = datetime.fromtimestamp(r.generated_at, ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")
    head = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    sheets = "".join(f'<sheet name="{_xml_attr(title)}" sheetId="{i}" r:id="rId{i}"/>'
                     for i, title in enumerate(titles, 1))
    names = "".join(
        f'<definedName name="_xlnm._FilterDatabase" localSheetId="{i}" hidden="1">'
        + _xml_text("'" + title.replace("'", "''") + "'")
        + f"!$A$1:${_column_letter(len(t.columns))}${len(t.rows) + 1}</definedName>"
        for i, (t, title) in enumerate(zip(ts, titles, strict=True)) if t.rows and t.id != "method")
    parts = {
        "[Content_Types].xml": (
            f'{head}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/styles.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
            '<Override PartName="/xl/theme/theme1.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.theme+xml"/>'
            '<Override PartName="/docProps/core.xml" '
            'ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
            '<Override PartName="/docProps/app.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.extended-properties+xml"/>'
            + "".join(f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="{_SHEET_TYPE}"/>'
                      for i in range(1, len(ts) + 1))
            + "</Types>"),
        "_rels/.rels": (
            f'{head}<Relationships xmlns="{_PKG_REL_NS}">'
            f'<Relationship Id="rId1" Type="{_REL_NS}/officeDocument" Target="xl/workbook.xml"/>'
            '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/'
            'core-properties" Target="docProps/core.xml"/>'
            f'<Relationship Id="rId3" Type="{_REL_NS}/extended-properties" Target="docProps/app.xml"/>'
            "</Relationships>"),
        "docProps/app.xml": (
            f'{head}<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties">'
            f"<Application>tslcd-monitor {_xml_text(_tool_version())}</Application></Properties>"),
        "docProps/core.xml": (
            f'{head}<cp:coreProperties '
            'xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            f"<dc:creator>tslcd-monitor {_xml_text(_tool_version())}</dc:creator>"
            f"<dc:title>{_xml_text(f'TSLCD audit {r.province} {r.first} – {r.last}')}</dc:title>"
            f'<dcterms:created xsi:type="dcterms:W3CDTF">{created}</dcterms:created>'
            f'<dcterms:modified xsi:type="dcterms:W3CDTF">{created}</dcterms:modified>'
            "</cp:coreProperties>"),
        "xl/workbook.xml": (
            f'{head}<workbook xmlns="{_MAIN_NS}" xmlns:r="{_REL_NS}"><workbookPr/>'
            '<bookViews><workbookView activeTab="0"/></bookViews>'
            f"<sheets>{sheets}</sheets>" + (f"<definedNames>{names}</definedNames>" if names else "")
            + '<calcPr calcId="124519" fullCalcOnLoad="1"/></workbook>'),
        "xl/_rels/workbook.xml.rels": (
            f'{head}<Relationships xmlns="{_PKG_REL_NS}">'
            + "".join(f'<Relationship Id="rId{i}" Type="{_REL_NS}/worksheet" Target="worksheets/sheet{i}.xml"/>'
                      for i in range(1, len(ts) + 1))
            + f'<Relationship Id="rId{len(ts) + 1}" Type="{_REL_NS}/styles" Target="styles.xml"/>'
            f'<Relationship Id="rId{len(ts) + 2}" Type="{_REL_NS}/theme" Target="theme/theme1.xml"/>'
            "</Relationships>"),
        "xl/theme/theme1.xml": theme_xml,
    }
    stamp = datetime.fromtimestamp(r.generated_at, ZoneInfo(r.timezone)).timetuple()[:6]

    def entry(name: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=stamp)
        info.compress_type = zipfile.ZIP_DEFLATED
        return info

    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        for name, text in parts.items():
            z.writestr(entry(name), text)
        for i, t in enumerate(ts, 1):
            with z.open(entry(f"xl/worksheets/sheet{i}.xml"), "w") as sheet:
                _xlsx_sheet(t, styles, sheet)
        z.writestr(entry("xl/styles.xml"), styles.xml())  # after the sheets: the formats they used


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
