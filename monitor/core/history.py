"""Rollup arithmetic: observation windows and state changes folded into per-day seconds, and daily and period rates.

Pure: values in, values out (no SQL, no clock). The store feeds it what it recorded;
the recorder, the status page and the audit report all count with these functions,
so a figure on the page and the same figure in a report cannot disagree.

Model (docs/design.md, "Definitions auditors rely on"):

- The monitor observes only inside *windows*: a window opens at a sweep and is
  extended by each later sweep of the same run that comes within the run's maximum
  gap. Outside every window a node's state is ``unknown``, never up or down.
- Inside a window, a node holds the state of its last *change* of the same run at or
  before that time (``unknown`` before its first one): a run restarts every state.
- A *unit* is a node identified by code and validity interval (``unit_key``), never by
  name, so a code reused by another unit after a reform keeps two separate histories.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from monitor.core.rates import RateRow, availability, connected_on_day, count_rows, period_rate
from monitor.core.state import State

# The states, by their one definition (monitor.core.state.State; a StrEnum, so equal to the stored text).
UP, DOWN, UNREACHABLE, UNKNOWN, MAINTENANCE = State.UP, State.DOWN, State.UNREACHABLE, State.UNKNOWN, State.MAINTENANCE
OUTAGE_STATES = frozenset({DOWN, UNREACHABLE})

# The valid_from of a unit whose node has no active_from: unbounded in the past.
UNBOUNDED = date(1, 1, 1)

UnitKey = tuple[str, date]

# How an outage piece ended (the next state, or one of these).
ENDED_DAY_END = "day-end"  # it goes on past the end of the day (merged across days by merge_outages)
ENDED_NOT_OBSERVED = "not-observed"  # the monitor stopped observing while the node was out


def unit_key(code: str, active_from: date | None) -> UnitKey:
    """A unit's identity: its code and the first day of its validity (UNBOUNDED when open)."""
    return (code, active_from or UNBOUNDED)


# -- days ------------------------------------------------------------------------------------------


def day_span(day: date, tz: tzinfo) -> tuple[float, float]:
    """[start, end) of a local calendar day as epoch seconds; 86,400 s long unless the zone has DST."""
    start = datetime.combine(day, time(0), tzinfo=tz).timestamp()
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).timestamp()
    return start, end


def day_of(ts: float, tz: tzinfo) -> date:
    """The local calendar day that contains the instant ``ts``."""
    return datetime.fromtimestamp(ts, tz).date()


def split_by_day(start: float, end: float, tz: tzinfo) -> list[tuple[date, float, float]]:
    """Cut [start, end) at local midnights: one (day, start, end) piece per day it touches."""
    out: list[tuple[date, float, float]] = []
    if end <= start:
        return out
    day = day_of(start, tz)
    # Bounded: one iteration per day touched (days are at least 22 h long in any zone).
    for _ in range(int((end - start) // 79_200) + 2):
        s, e = day_span(day, tz)
        lo, hi = max(s, start), min(e, end)
        if lo < hi:
            out.append((day, lo, hi))
        if e >= end:
            break
        day += timedelta(days=1)
    return out


def days(first: date, last: date) -> Iterator[date]:
    """Every day from ``first`` to ``last``, both included."""
    for i in range((last - first).days + 1):
        yield first + timedelta(days=i)


# -- folding observations ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """A span in which run ``run`` of the monitor was observing (sweeps no further apart than its max gap)."""

    run: int
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Change:
    """A unit entered ``state`` at ``at`` during run ``run``; ``cause`` is the upstream node, for unreachable."""

    run: int
    at: float
    state: str
    cause: str | None = None


@dataclass(frozen=True, slots=True)
class Segment:
    """A span of one unit's timeline in one state (unobserved time is not a segment)."""

    start: float
    end: float
    state: str
    cause: str | None = None


@dataclass(frozen=True, slots=True)
class Seconds:
    """Seconds a unit spent in each state over some span; ``unknown`` includes time nobody observed."""

    up: float = 0.0
    down: float = 0.0
    unreachable: float = 0.0
    unknown: float = 0.0
    maintenance: float = 0.0

    @property
    def observed(self) -> float:
        """The denominator of availability: up + down + unreachable."""
        return self.up + self.down + self.unreachable

    @property
    def total(self) -> float:
        return self.up + self.down + self.unreachable + self.unknown + self.maintenance

    @property
    def outage(self) -> float:
        """Down plus unreachable: time the commune was not connected while observed."""
        return self.down + self.unreachable

    @property
    def availability(self) -> float | None:
        """up / (up + down + unreachable); None when nothing was observed."""
        return availability(self.up, self.down, self.unreachable)

    def __add__(self, other: Seconds) -> Seconds:
        return Seconds(self.up + other.up, self.down + other.down, self.unreachable + other.unreachable,
                       self.unknown + other.unknown, self.maintenance + other.maintenance)

    def rounded(self, span: float) -> Seconds:
        """To the millisecond, with unknown taking the remainder so that the parts add up to ``span`` exactly."""
        up, down, unr, maint = (round(x, 3) for x in (self.up, self.down, self.unreachable, self.maintenance))
        return Seconds(up, down, unr, round(span - up - down - unr - maint, 3), maint)


def timeline(windows: Iterable[Window], changes: Iterable[Change], start: float, end: float) -> list[Segment]:
    """One unit's observed states inside [start, end), in time order.

    ``changes`` are that unit's changes, any run, any order; only those of a window's
    own run count inside it, so a state never carries over a restart of the monitor.
    Only the windows of runs that watched the unit (that recorded a change of it) count
    for it: pollers sharing one store each watch their own nodes, and a poller's
    heartbeats say nothing of the nodes it does not watch (they are unknown when their
    own poller is gone, never the state another poller's time would carry).
    """
    by_run: dict[int, list[Change]] = defaultdict(list)
    for c in changes:
        by_run[c.run].append(c)
    ats: dict[int, list[float]] = {}
    for run, cs in by_run.items():
        cs.sort(key=lambda c: c.at)
        ats[run] = [c.at for c in cs]
    out: list[Segment] = []
    reach = start
    for w in sorted((w for w in windows if w.run in by_run), key=lambda w: (w.start, w.end)):
        # Windows never overlap when one monitor writes the store; if two ever did, the time is counted once.
        s, e = max(w.start, start, reach), min(w.end, end)
        if s >= e:
            continue
        reach = e
        cs = by_run.get(w.run, [])
        i = bisect_right(ats.get(w.run, []), s)
        state, cause = (cs[i - 1].state, cs[i - 1].cause) if i else (UNKNOWN, None)
        t = s
        while i < len(cs) and cs[i].at < e:
            if cs[i].at > t:
                out.append(Segment(t, cs[i].at, state, cause))
                t = cs[i].at
            state, cause = cs[i].state, cs[i].cause
            i += 1
        out.append(Segment(t, e, state, cause))
    return out


def fold(segments: Iterable[Segment], start: float, end: float) -> Seconds:
    """Seconds per state over [start, end); time in no segment is unknown."""
    acc: dict[str, float] = {UP: 0.0, DOWN: 0.0, UNREACHABLE: 0.0, UNKNOWN: 0.0, MAINTENANCE: 0.0}
    seen = 0.0
    for seg in segments:
        d = min(seg.end, end) - max(seg.start, start)
        if d > 0:
            acc[seg.state if seg.state in acc else UNKNOWN] += d
            seen += d
    acc[UNKNOWN] += max(0.0, (end - start) - seen)
    return Seconds(acc[UP], acc[DOWN], acc[UNREACHABLE], acc[UNKNOWN], acc[MAINTENANCE])


def observed_seconds(windows: Iterable[Window], start: float, end: float) -> float:
    """Seconds of [start, end) inside at least one window: the monitor's coverage."""
    spans = sorted((max(w.start, start), min(w.end, end)) for w in windows)
    total, reach = 0.0, start
    for s, e in spans:
        s = max(s, reach)
        if e > s:
            total += e - s
            reach = e
    return total


@dataclass(frozen=True, slots=True)
class OutagePiece:
    """The part inside one day of a span in which a unit was down or unreachable.

    ``ended_by`` is the state that ended it, ENDED_NOT_OBSERVED when the monitor stopped
    observing first, or ENDED_DAY_END when it goes on into the next day.
    """

    start: float
    end: float
    down_s: float
    unreachable_s: float
    ended_by: str
    cause: str | None = None  # the upstream node that was down, for unreachable time
    why: str | None = None  # the outage's cause (monitor.core.causes), when one was recorded

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class CauseNote:
    """What the monitor concluded of one outage of a unit: it began at ``start`` (the change that began it) and
    lasted until ``end`` (None: it was going on when this was noted)."""

    start: float
    end: float | None
    why: str


def with_why(pieces: Sequence[OutagePiece], notes: Sequence[CauseNote]) -> list[OutagePiece]:
    """One unit's outage pieces with the cause of the outage each belongs to: the note that began last at or
    before the piece's start and had not ended before it (a piece that goes on from the day before belongs to an
    outage that began then)."""
    ordered = sorted(notes, key=lambda n: n.start)
    out = []
    for p in pieces:
        why = p.why
        for n in ordered:
            if n.start > p.start + 1e-6:
                break
            if n.end is None or n.end >= p.start - 1e-6:
                why = n.why
        out.append(p if why == p.why else replace(p, why=why))
    return out


def outage_pieces(segments: Sequence[Segment], end: float) -> list[OutagePiece]:
    """Maximal runs of contiguous down/unreachable segments, clipped at ``end`` (the end of the day)."""
    out: list[OutagePiece] = []
    cur: list[Segment] = []

    def close(ended_by: str) -> None:
        cause = next((s.cause for s in cur if s.cause), None)
        out.append(OutagePiece(
            cur[0].start, cur[-1].end,
            round(sum(s.end - s.start for s in cur if s.state == DOWN), 3),
            round(sum(s.end - s.start for s in cur if s.state == UNREACHABLE), 3),
            ended_by, cause))
        cur.clear()

    for seg in segments:
        if cur and seg.start > cur[-1].end:
            close(ENDED_NOT_OBSERVED)
        if seg.state in OUTAGE_STATES:
            cur.append(seg)
        elif cur:
            close(seg.state)
    if cur:
        close(ENDED_DAY_END if cur[-1].end >= end else ENDED_NOT_OBSERVED)
    return out


@dataclass(frozen=True, slots=True)
class Outage:
    """One outage of one unit, merged across the days it spans."""

    unit: Hashable
    start: float
    end: float
    down_s: float
    unreachable_s: float
    ended_by: str
    cause: str | None = None
    why: str | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


def merge_outages(pieces: Iterable[tuple[Hashable, OutagePiece]]) -> list[Outage]:
    """Join each unit's day pieces that continue one another (a piece ended by day-end and the next starting there)."""
    by_unit: dict[Hashable, list[OutagePiece]] = defaultdict(list)
    for unit, p in pieces:
        by_unit[unit].append(p)
    out: list[Outage] = []
    for unit, ps in by_unit.items():
        ps.sort(key=lambda p: p.start)
        cur: Outage | None = None
        for p in ps:
            if cur is not None and cur.ended_by == ENDED_DAY_END and abs(p.start - cur.end) < 1e-6:
                cur = Outage(unit, cur.start, p.end, round(cur.down_s + p.down_s, 3),
                             round(cur.unreachable_s + p.unreachable_s, 3), p.ended_by, cur.cause or p.cause,
                             p.why or cur.why)  # the cause known last: a later day's seal knew more
                continue
            if cur is not None:
                out.append(cur)
            cur = Outage(unit, p.start, p.end, p.down_s, p.unreachable_s, p.ended_by, p.cause, p.why)
        if cur is not None:
            out.append(cur)
    out.sort(key=lambda o: (o.start, str(o.unit)))
    return out


# -- rates ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommuneDay:
    """What a day's rates need to know of one commune active that day."""

    unit: Hashable
    code: str
    name: str
    province: str
    area: str
    provisioned: bool
    seconds: Seconds = field(default_factory=Seconds)
    traffic_bytes: int | None = None  # uplink in + out that day; None when SNMP gave nothing
    carrier: str | None = None  # who provides its circuit (inventory: carrier)
    v6_samples: int | None = None  # sweeps that probed its IPv6 address that day (None: none)
    v6_ok: int | None = None  # of which it answered

    @property
    def ipv6_ready(self) -> bool:
        """Its IPv6 address answered at least once that day."""
        return bool(self.v6_ok)


def has_data(c: CommuneDay) -> bool:
    """Whether the day says anything of the commune: it was observed (up, down or unreachable), or it has no
    circuit (known not connected). A provisioned commune never observed that day is "no data": neither
    connected nor not connected, and out of the day's rates."""
    return not c.provisioned or c.seconds.observed > 0


def is_connected(seconds: Seconds, min_availability: float) -> bool:
    """Connected on a day: availability that day >= the threshold (nothing observed: not connected, and the
    day has no data for the commune: see ``has_data``)."""
    return connected_on_day(seconds.availability, min_availability)


def is_in_use(seconds: Seconds, traffic_bytes: int | None, *, min_availability: float, in_use_min_bytes: int) -> bool:
    """In use on a day: connected, and uplink traffic that day >= the threshold (no traffic data: not in use)."""
    return (is_connected(seconds, min_availability) and traffic_bytes is not None
            and traffic_bytes >= in_use_min_bytes)


def day_rates(day: date, communes: Iterable[CommuneDay], *, min_availability: float,
              in_use_min_bytes: int) -> tuple[RateRow, ...]:
    """One day's rates per province (area "") and per area, sorted by province then area."""
    return count_rows(((c.province, c.area, c.provisioned, is_connected(c.seconds, min_availability),
                        is_in_use(c.seconds, c.traffic_bytes, min_availability=min_availability,
                                  in_use_min_bytes=in_use_min_bytes), has_data(c),
                        c.ipv6_ready and c.seconds.observed > 0)
                       for c in communes), day)


@dataclass(frozen=True, slots=True)
class PeriodRate:
    """A period's rates for one province or area: the mean of its daily rates (docs/design.md).

    The measured rates (connected, in use) are the mean over the days with data (some commune
    observed, or without a circuit), ``days`` of them; ``days_no_data`` days had active communes
    but no data, and are left out (None: no day had data). The provisioned rate, a registration,
    is the mean over every day with active communes.
    """

    province: str
    area: str
    days: int
    provisioned_rate: float
    connected_rate: float | None
    in_use_rate: float | None
    connected_min: float | None
    connected_max: float | None
    days_no_data: int = 0
    ipv6_rate: float | None = None  # IPv6 readiness: the mean of the daily rates of the days with data


def period_rates(daily: Iterable[RateRow]) -> tuple[PeriodRate, ...]:
    """Mean of the daily rates per province and area: measured rates over the days with data, the provisioned
    rate over the days with active communes."""
    groups: dict[tuple[str, str], list[RateRow]] = defaultdict(list)
    for r in daily:  # a row of no commune (a day before any inventory was recorded) is a day without data
        groups[(r.province, r.area)].append(r)
    out = []
    for (p, a), rs in sorted(groups.items()):
        seen = [r for r in rs if r.has_data]
        if not any(r.communes for r in rs):
            continue
        conn = [r.connected_rate for r in seen if r.connected_rate is not None]
        used = [r.in_use_rate for r in seen if r.in_use_rate is not None]
        out.append(PeriodRate(
            p, a, len(seen),
            period_rate([r.provisioned_rate for r in rs if r.communes]) or 0.0,
            period_rate(conn), period_rate(used),
            min(conn, default=None), max(conn, default=None), len(rs) - len(seen),
            period_rate([r.ipv6_rate for r in seen if r.ipv6_rate is not None])))
    return tuple(out)


@dataclass
class CommuneTotals:
    """One unit's figures over a period, accumulated day by day (``add_day``)."""

    unit: Hashable
    code: str
    name: str
    area: str
    first_day: date | None = None
    last_day: date | None = None
    days_active: int = 0
    days_provisioned: int = 0
    days_connected: int = 0
    days_in_use: int = 0
    seconds: Seconds = field(default_factory=Seconds)
    traffic_bytes: int | None = None
    carrier: str | None = None  # as on its last day counted
    days_ipv6: int = 0  # days its IPv6 address answered
    v6_samples: int | None = None  # sweeps that probed its IPv6 address (None: none did)
    v6_ok: int | None = None

    @property
    def ipv6_availability(self) -> float | None:
        """Share of the sweeps that probed its IPv6 address that it answered; None: never probed."""
        return self.v6_ok / self.v6_samples if self.v6_samples and self.v6_ok is not None else None

    def add_day(self, day: date, c: CommuneDay, *, min_availability: float, in_use_min_bytes: int) -> None:
        """Fold one active day in; name, area and carrier follow the latest day (a rename keeps the unit)."""
        self.name, self.area, self.carrier = c.name, c.area, c.carrier
        self.first_day = day if self.first_day is None else min(self.first_day, day)
        self.last_day = day if self.last_day is None else max(self.last_day, day)
        self.days_active += 1
        self.days_provisioned += c.provisioned
        self.days_connected += is_connected(c.seconds, min_availability)
        self.days_in_use += is_in_use(c.seconds, c.traffic_bytes, min_availability=min_availability,
                                      in_use_min_bytes=in_use_min_bytes)
        self.seconds = self.seconds + c.seconds
        if c.traffic_bytes is not None:
            self.traffic_bytes = (self.traffic_bytes or 0) + c.traffic_bytes
        self.days_ipv6 += c.ipv6_ready
        if c.v6_samples is not None:
            self.v6_samples = (self.v6_samples or 0) + c.v6_samples
            self.v6_ok = (self.v6_ok or 0) + (c.v6_ok or 0)

    @property
    def coverage(self) -> float | None:
        """Share of the unit's active time whose state was observed (up, down or unreachable)."""
        total = self.seconds.total
        return None if total <= 0 else self.seconds.observed / total


# -- a period counted on plain values ---------------------------------------------------------------

# One unit's row of one day as the store reads a long period (``SqlStore.history_values``): the unit, its seconds
# up, down, unreachable, unknown and in maintenance, its uplink bytes in and out (None when SNMP gave nothing), and
# the sweeps that probed its IPv6 address and of those the ones it answered (None: none probed).
RowValues = tuple[Hashable, float, float, float, float, float, int | None, int | None, int | None, int | None]


def traffic(bytes_in: int | None, bytes_out: int | None) -> int | None:
    """A day's uplink bytes in + out; None when SNMP gave neither."""
    if bytes_in is None and bytes_out is None:
        return None
    return (bytes_in or 0) + (bytes_out or 0)


@dataclass(frozen=True, slots=True)
class Commune:
    """A commune as an inventory version records it: what counting a day needs of it besides its row."""

    unit: Hashable
    code: str
    name: str
    province: str
    area: str
    provisioned: bool
    carrier: str | None = None  # who provides its circuit, as this version says


class Roster:
    """The communes active on a day (as ``commune_days`` selects them), prepared once for every day they are the
    same (one inventory version, the same ones active): where each counts, and the rows of the day's rates."""

    __slots__ = ("communes", "units", "_entries", "_keys", "_leaves")

    def __init__(self, communes: Iterable[Commune]) -> None:
        self.communes = tuple(communes)
        self.units = frozenset(c.unit for c in self.communes)
        # A leaf is a (province, area) pair, area "" included; count_rows's rows are sums of leaves: a province's
        # row of all its leaves, an area's row of its own.
        leaves = sorted({(c.province, c.area) for c in self.communes})
        leaf_of = {k: i for i, k in enumerate(leaves)}
        self._leaves = len(leaves)
        self._entries = tuple((c.unit, leaf_of[(c.province, c.area)], c.provisioned, c) for c in self.communes)
        communes_in = [0] * len(leaves)
        provisioned_in = [0] * len(leaves)
        for _, leaf, provisioned, _c in self._entries:
            communes_in[leaf] += 1
            provisioned_in[leaf] += provisioned
        keys = sorted({(p, "") for p, _ in leaves} | {(p, a) for p, a in leaves if a})
        rows = []
        for p, a in keys:
            ix = tuple(i for i, (lp, la) in enumerate(leaves) if lp == p and (a == "" or la == a))
            rows.append((p, a, ix, sum(communes_in[i] for i in ix), sum(provisioned_in[i] for i in ix)))
        self._keys = tuple(rows)


class PeriodCount:
    """A period counted day by day on plain values: each day's rates (``add_day``) and each commune's totals
    (``totals``), the very figures ``day_rates`` of ``commune_days`` and ``CommuneTotals.add_day`` give (the same
    float additions in the same order: days must come in order), without an object per commune and day. A year of
    20,000 communes is 7.3 million commune-days; tests/test_audit_fast.py compares the two ways.

    What is the same for every commune of a roster (being active and provisioned that day, the day, the name) is
    counted once per day and given to the roster's communes when the roster changes, or at the end."""

    def __init__(self, *, min_availability: float, in_use_min_bytes: int) -> None:
        self.min_availability = min_availability
        self.in_use_min_bytes = in_use_min_bytes
        # Per unit, in the order units first appear: days connected, days in use, seconds up, down, unreachable,
        # unknown and in maintenance, traffic bytes; then its latest Commune, first day, last day, days active and
        # days provisioned (these two as of the last roster change).
        self._acc: dict[Hashable, list[Any]] = {}
        self._roster: Roster | None = None
        self._entries: tuple[tuple[Hashable, int, bool, list[Any]], ...] = ()
        self._pending = 0  # days of the current roster not given to its communes yet
        self._last: date | None = None
        # Per unit whose carrier changed in the period: (the carrier before, its seconds up to then), at each change.
        self._carrier_marks: dict[Hashable, list[tuple[str | None, tuple[float, ...]]]] = {}

    def _switch(self, roster: Roster, day: date) -> None:
        if roster is self._roster:
            return
        self._settle()
        acc = self._acc
        entries = []
        for unit, leaf, provisioned, c in roster._entries:
            a = acc.get(unit)
            if a is None:
                a = acc[unit] = [0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, None, c, day, day, 0, 0, 0, None, None]
            elif a[8].carrier != c.carrier:  # its circuit changed hands: the time so far is the former carrier's
                self._carrier_marks.setdefault(unit, []).append((a[8].carrier, tuple(a[2:7])))
            entries.append((unit, leaf, provisioned, a))
        self._roster, self._entries = roster, tuple(entries)

    def _settle(self) -> None:
        """Give the days counted since the roster last changed to its communes."""
        n, roster = self._pending, self._roster
        if n and roster is not None:
            for (_u, _leaf, provisioned, c), (*_, a) in zip(roster._entries, self._entries, strict=True):
                a[8], a[10] = c, self._last  # the name and area of its last day
                a[11] += n
                if provisioned:
                    a[12] += n
        self._pending = 0

    def add_day(self, day: date, day_s: float, roster: Roster,
                rows: Mapping[Any, RowValues]) -> tuple[RateRow, ...]:
        """Fold in one day (after every earlier one) of ``day_s`` seconds: the communes of ``roster``, each with its
        row in ``rows`` (none: not observed at all); return the day's rows as ``day_rates`` counts them."""
        n = roster._leaves
        connected = [0] * n
        in_use = [0] * n
        no_data = [0] * n
        ipv6 = [0] * n
        row_of = rows.get
        min_av, min_bytes = self.min_availability, self.in_use_min_bytes
        self._switch(roster, day)
        self._pending += 1
        self._last = day
        for unit, leaf, provisioned, a in self._entries:
            r = row_of(unit)
            if r is None:  # not observed at all that day: all of it unknown (commune_days's Seconds(unknown=day_s))
                a[5] += day_s
                if provisioned:
                    no_data[leaf] += 1
                continue
            _, up, down, unreachable, unknown, maintenance, bytes_in, bytes_out, v6_samples, v6_ok = r
            # Adding a zero never changes a total (totals start at +0.0, so none is ever -0.0): most rows are a
            # day up, and skipping their zeros is a third of the work.
            a[2] += up
            if down:
                a[3] += down
            if unreachable:
                a[4] += unreachable
            if unknown:
                a[5] += unknown
            if maintenance:
                a[6] += maintenance
            if bytes_in is None and bytes_out is None:  # traffic(), inline
                t = None
            else:
                t = (bytes_in or 0) + (bytes_out or 0)
                a[7] = t if a[7] is None else a[7] + t
            observed = up + down + unreachable  # availability(): the same sum, the same division
            if v6_samples is not None:
                a[14] = v6_samples if a[14] is None else a[14] + v6_samples
                a[15] = (v6_ok or 0) if a[15] is None else a[15] + (v6_ok or 0)
                if v6_ok:
                    a[13] += 1
                    if observed > 0:
                        ipv6[leaf] += 1
            if observed > 0:
                if up / observed >= min_av:
                    a[0] += 1
                    connected[leaf] += 1
                    if t is not None and t >= min_bytes:
                        a[1] += 1
                        in_use[leaf] += 1
            elif provisioned:
                no_data[leaf] += 1
        return tuple(RateRow(p, area, communes, provisioned_n, sum(connected[i] for i in ix),
                             sum(in_use[i] for i in ix), sum(no_data[i] for i in ix), day, sum(ipv6[i] for i in ix))
                     for p, area, ix, communes, provisioned_n in roster._keys)

    def carrier_seconds(self) -> dict[str | None, tuple[Seconds, frozenset[Hashable]]]:
        """Seconds per carrier over the days added, and the communes that counted under it: each day of a commune
        counts under the carrier its inventory named that day (a circuit that changed hands is split there)."""
        self._settle()
        out: dict[str | None, tuple[list[float], set[Hashable]]] = {}

        def add(carrier: str | None, unit: Hashable, secs: Sequence[float]) -> None:
            acc, units = out.setdefault(carrier, ([0.0] * 5, set()))
            for i, v in enumerate(secs):
                acc[i] += v
            units.add(unit)

        for unit, a in self._acc.items():
            before: tuple[float, ...] = (0.0,) * 5
            for carrier, mark in self._carrier_marks.get(unit, ()):
                add(carrier, unit, [m - b for m, b in zip(mark, before, strict=True)])
                before = mark
            add(a[8].carrier, unit, [m - b for m, b in zip(a[2:7], before, strict=True)])
        return {c: (Seconds(*acc), frozenset(units)) for c, (acc, units) in out.items()}

    def totals(self) -> dict[Hashable, CommuneTotals]:
        """Each commune's totals over the days added, by unit, in the order they first appeared."""
        self._settle()
        return {unit: CommuneTotals(unit, c.code, c.name, c.area, first, last, active, provisioned, connected, used,
                                    Seconds(up, down, unreachable, unknown, maintenance), traffic_bytes, c.carrier,
                                    days_ipv6, v6_samples, v6_ok)
                for unit, (connected, used, up, down, unreachable, unknown, maintenance, traffic_bytes, c, first, last,
                           active, provisioned, days_ipv6, v6_samples, v6_ok) in self._acc.items()}
