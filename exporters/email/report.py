"""The daily report as plain values: ``DailyReport``, and ``report_from_store`` that counts it from the history store.

It counts with monitor.core.history, like the audit and the status page, so the three agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from exporters.audit import MaintenanceLine, maintenance_lines
from monitor.core.notes import OutageNote, excluded_days, notes_of
from monitor.core.rates import RateRow, for_scope, province_row
from monitor.core.state import NO_CIRCUIT as NO_CIRCUIT  # no TSLCD circuit (address) yet: never probed, not connected

if TYPE_CHECKING:
    from monitor.config import Config, EmailSettings
    from monitor.store import HistoryStore


def report_tz(cfg: Any, settings: EmailSettings | None = None) -> ZoneInfo:
    """The zone of the report's day: always the province's (config ``timezone``).

    Days are rolled up and sealed in that zone; a report cutting them elsewhere would mix
    two definitions of a day. ``email.timezone`` only moves the send time (``send_tz``).
    """
    return ZoneInfo(getattr(cfg, "timezone", "Asia/Ho_Chi_Minh"))


def send_tz(cfg: Any, settings: EmailSettings | None) -> ZoneInfo:
    """The zone of ``email.send_at``: email.timezone, else the config's."""
    return ZoneInfo(settings.timezone) if settings and settings.timezone else report_tz(cfg)



@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` of ``total`` communes (with data, for a measured rate); ``previous`` is the same rate the day
    before (None: no data then). ``rate`` is None when no commune has data: "no data", never 0%."""

    count: int
    total: int
    previous: float | None = None

    @property
    def rate(self) -> float | None:
        return self.count / self.total if self.total else None

    @property
    def change(self) -> float | None:
        return None if self.previous is None or self.rate is None else self.rate - self.previous


@dataclass(frozen=True, slots=True)
class TrendDay:
    """One day of the trend; rates are None when the monitor observed nothing that day."""

    day: date
    connected: float | None
    in_use: float | None
    coverage: float


# Why a commune is listed as not connected.
NOT_OBSERVED = "not_observed"  # the monitor saw none of its day (all unknown or maintenance)
LOW_AVAILABILITY = "low_availability"  # observed, availability below the threshold


@dataclass(frozen=True, slots=True)
class CommuneLine:
    """One commune's day, for the lists (not connected, not in use, partial coverage)."""

    code: str
    name: str
    area: str
    provisioned: bool
    availability: float | None
    down_s: float = 0.0
    unreachable_s: float = 0.0
    unknown_s: float = 0.0
    maintenance_s: float = 0.0
    observed_s: float = 0.0
    traffic_bytes: int | None = None
    reason: str = ""
    carrier: str | None = None  # who provides its circuit (inventory: carrier)

    @property
    def outage_s(self) -> float:
        return self.down_s + self.unreachable_s

    @property
    def coverage(self) -> float:
        total = self.observed_s + self.unknown_s + self.maintenance_s
        return self.observed_s / total if total > 0 else 0.0


@dataclass(frozen=True, slots=True)
class OutageLine:
    """One outage (down or unreachable) of one node on the report's day, clipped to the day.

    ``began`` is when it really started when it went on from the day before; ``ended_by``
    is the state that ended it, or monitor.core.history's "day-end" / "not-observed".
    """

    code: str
    name: str
    kind: str
    area: str
    start: float
    end: float
    down_s: float
    unreachable_s: float
    ended_by: str
    cause_code: str | None = None
    cause_name: str = ""
    began: float | None = None
    why: str | None = None  # the outage's cause (monitor.core.causes), as known when the report was made
    notes: tuple[str, ...] = ()  # what operators said of it (tslcd outage annotate)
    excluded: str | None = None  # an approved exclusion: its reason and approver

    @property
    def duration_s(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class RebootLine:
    """A node whose device restarted during the day (SNMP sysUpTime went back)."""

    code: str
    name: str
    area: str
    reboots: int


@dataclass(frozen=True, slots=True)
class DailyReport:
    """Everything the daily email says about one local day, as plain values."""

    province: str
    day: date
    timezone: str
    generated_at: float
    target: float
    min_availability: float
    in_use_min_bytes: int
    connected: Rate
    in_use: Rate
    provisioned: Rate
    coverage: float  # share of the day the monitor was observing
    traffic_known: bool  # some commune had uplink traffic figures (SNMP) that day
    ipv6: Rate = field(default_factory=lambda: Rate(0, 0))  # communes whose IPv6 address answered, of those with data
    trend: tuple[TrendDay, ...] = ()
    areas: tuple[RateRow, ...] = ()  # the province's areas on the day
    not_connected: tuple[CommuneLine, ...] = ()
    not_in_use: tuple[CommuneLine, ...] = ()
    outages: tuple[OutageLine, ...] = ()
    reboots: tuple[RebootLine, ...] = ()
    partial: tuple[CommuneLine, ...] = ()
    dashboard_url: str = ""
    pages_url: str = ""  # the status page (web.public_url): each commune named links to its page there
    seal_digest: str | None = None  # the day's hash-chain digest once sealed (auditors can verify it)
    connected_x: Rate | None = None  # the connected rate with the approved exclusions (None: none that day)
    exclusions: int = 0
    maintenance: tuple[MaintenanceLine, ...] = ()  # windows with a span on the day, and why

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _main_row(rows: Sequence[RateRow], province: str) -> RateRow | None:
    """The configured province's row; else the first province's (an inventory of another name)."""
    return province_row(rows, province) or next((r for r in rows if r.area == ""), None)


def report_from_store(store: HistoryStore, cfg: Config, day: date, *, settings: EmailSettings | None = None,
                      now: float | None = None, tz: tzinfo | None = None) -> DailyReport:
    """The report on ``day`` from the history store, counted with monitor.core.history (blocking: use a thread)."""
    import time as _time

    from monitor.core.history import (
        ENDED_DAY_END,
        day_rates,
        is_connected,
        is_in_use,
        merge_outages,
    )
    from monitor.store import commune_days

    zone = tz or report_tz(cfg, settings)
    rates_cfg = cfg.rates
    min_av, min_bytes = rates_cfg.connected_min_availability, rates_cfg.in_use_min_bytes
    trend_days = settings.trend_days if settings else 30
    first = day - timedelta(days=trend_days - 1)
    nodes_by_version: dict[int, dict[int, Any]] = {}

    def nodes_of(version: int | None) -> dict[int, Any]:
        if version is None:
            return {}
        if version not in nodes_by_version:
            nodes_by_version[version] = {n.unit: n for n in store.inventory_nodes(version)}
        return nodes_by_version[version]

    hist = {h.day: h for h in store.history(first, day, zone)}
    trend: list[TrendDay] = []
    province_rates: dict[date, Any] = {}
    traffic_on: dict[date, bool] = {}
    for d in sorted(hist):
        h = hist[d]
        cds = commune_days(h, nodes_of(h.inventory_version).values())
        rows = for_scope(day_rates(d, cds, min_availability=min_av, in_use_min_bytes=min_bytes), cfg)
        prov = _main_row(rows, cfg.province)
        seen = h.observed_s > 0 and prov is not None and prov.has_data
        province_rates[d] = prov if seen else None
        # No commune with uplink figures (no SNMP): "in use" was not measured that day, which is not 0%.
        traffic_on[d] = any(c.traffic_bytes is not None for c in cds)
        trend.append(TrendDay(d, prov.connected_rate if seen and prov else None,
                              prov.in_use_rate if seen and prov and traffic_on[d] else None, h.coverage))

    h = hist[day]
    nodes = nodes_of(h.inventory_version)
    communes = commune_days(h, nodes.values())
    rows = for_scope(day_rates(day, communes, min_availability=min_av, in_use_min_bytes=min_bytes), cfg)
    today = _main_row(rows, cfg.province)
    # What operators said of the day's outages; the approved exclusions give the rate a second time, beside it.
    said: dict[Any, list[OutageNote]] = {}
    for said_note in store.outage_notes(h.start, h.end):
        said.setdefault(said_note.unit, []).append(said_note)
    spans = store.exclusion_spans(h.start, h.end)
    maintenance = maintenance_lines(store, cfg, h.start, h.end)
    connected_x: Rate | None = None
    excluded_today = 0
    if spans and today is not None:
        communes_x, excluded_today = excluded_days(communes, h.outages, spans)
        row_x = _main_row(for_scope(day_rates(day, communes_x, min_availability=min_av, in_use_min_bytes=min_bytes),
                                    cfg), cfg.province)
        if row_x is not None and excluded_today:
            connected_x = Rate(row_x.connected, row_x.with_data if row_x.has_data else 0)
            # Counted as exclusions, not pieces: the outages excluded and the windows declared after the fact.
            excluded_today = (sum(1 for xs in said.values() for x in xs if x.is_exclusion)
                              + sum(1 for m in maintenance if m.excluded))
    yesterday_h = hist.get(day - timedelta(days=1))
    before = province_rates.get(day - timedelta(days=1))
    traffic_known = traffic_on.get(day, False)

    total = today.communes if today else len(communes)
    # Measured rates are over the communes with data; a commune not observed that day is neither (docs/design.md).
    measured = today.with_data if today and today.has_data else 0
    connected = Rate(today.connected if today else 0, measured, before.connected_rate if before else None)
    in_use = Rate(today.in_use if today else 0, measured,
                  before.in_use_rate if before and traffic_on.get(day - timedelta(days=1)) else None)
    provisioned = Rate(today.provisioned if today else 0, total, before.provisioned_rate if before else None)
    ipv6 = Rate(today.ipv6_ready if today else 0, measured, before.ipv6_rate if before else None)
    if cfg.national:  # one row per province, its name where a province's email has its area's
        areas = tuple(replace(r, area=r.province) for r in rows if r.area == "" and r.province in cfg.watched)
    else:
        areas = tuple(r for r in rows if r.area and (today is None or r.province == today.province))

    def line(c: Any, reason: str = "") -> CommuneLine:
        s = c.seconds
        return CommuneLine(c.code, c.name, c.area, c.provisioned, s.availability, s.down, s.unreachable, s.unknown,
                           s.maintenance, s.observed, c.traffic_bytes, reason, c.carrier)

    monitor_gap_s = max(0.0, h.day_s - h.observed_s)
    not_connected: list[CommuneLine] = []
    not_in_use: list[CommuneLine] = []
    partial: list[CommuneLine] = []
    for c in communes:
        if not c.provisioned:
            not_connected.append(line(c, NO_CIRCUIT))
            continue
        if not is_connected(c.seconds, min_av):
            not_connected.append(line(c, NOT_OBSERVED if c.seconds.observed <= 0 else LOW_AVAILABILITY))
        elif traffic_known and not is_in_use(c.seconds, c.traffic_bytes, min_availability=min_av,
                                             in_use_min_bytes=min_bytes):
            not_in_use.append(line(c))
        # The monitor's own gaps are stated once (coverage); listed are the communes observed for less
        # of the day than the network as a whole (added mid-day, or out of the probed set for a while).
        if c.seconds.observed > 0 and c.seconds.unknown > monitor_gap_s + 60:
            partial.append(line(c))
    order = {LOW_AVAILABILITY: 0, NOT_OBSERVED: 1, NO_CIRCUIT: 2}
    not_connected.sort(key=lambda x: (order[x.reason], -x.outage_s, x.availability or 0.0, x.area, x.code))
    not_in_use.sort(key=lambda x: (x.traffic_bytes or 0, x.area, x.code))
    partial.sort(key=lambda x: (x.coverage, x.area, x.code))

    # An outage that began the day before shows when it began: join yesterday's pieces with today's.
    by_unit = {n.unit: n for n in nodes.values()}
    code_names = {n.code: n.name for n in nodes.values()}
    pieces = list(h.outages)
    if yesterday_h is not None:
        pieces += [(u, p) for u, p in yesterday_h.outages if p.ended_by == ENDED_DAY_END]
    outages: list[OutageLine] = []
    for o in merge_outages(pieces):
        if o.end <= h.start:
            continue
        mine = next((p for u, p in h.outages if u == o.unit and o.start <= p.start < o.end + 1e-6), None)
        if mine is None:
            continue
        n = by_unit.get(o.unit)
        if n is None:
            continue
        outages.append(OutageLine(n.code, n.name, n.kind, n.area, mine.start, mine.end, mine.down_s,
                                  mine.unreachable_s, mine.ended_by, mine.cause, code_names.get(mine.cause or "", ""),
                                  o.start if o.start < h.start else None, o.why,
                                  tuple(x.note + (f" ({x.ticket})" if x.ticket else "") + f" — {x.by}"
                                        for x in notes_of(said.get(o.unit, ()), o.unit, o.start, o.end)
                                        if not x.is_exclusion),
                                  next((f"{x.note}; {x.approved_by}"
                                        for x in notes_of(said.get(o.unit, ()), o.unit, o.start, o.end)
                                        if x.is_exclusion), None)))
    outages.sort(key=lambda o: (-o.duration_s, o.start, o.code))

    reboots = sorted((RebootLine(n.code, n.name, n.area, int(r.reboots))
                      for u, r in h.rows.items() if r.reboots and (n := by_unit.get(u)) is not None),
                     key=lambda r: (-r.reboots, r.area, r.code))
    dashboard = (settings.dashboard_url if settings and settings.dashboard_url else cfg.web.public_url)
    return DailyReport(
        province=cfg.province, day=day, timezone=str(zone), generated_at=_time.time() if now is None else now,
        target=rates_cfg.target, min_availability=min_av, in_use_min_bytes=min_bytes,
        connected=connected, in_use=in_use, provisioned=provisioned, ipv6=ipv6, coverage=h.coverage,
        traffic_known=traffic_known, trend=tuple(trend), areas=areas, not_connected=tuple(not_connected),
        not_in_use=tuple(not_in_use), outages=tuple(outages), reboots=tuple(reboots), partial=tuple(partial),
        maintenance=maintenance, connected_x=connected_x,
        exclusions=excluded_today,
        dashboard_url=dashboard, pages_url=cfg.web.public_url, seal_digest=h.seal.digest if h.seal else None)


