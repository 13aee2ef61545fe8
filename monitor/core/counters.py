"""SNMP counter arithmetic: reboots from sysUpTime, monotonic totals, daily traffic. Pure: no I/O, no clock.

Timestamps (``at``) are seconds since the epoch passed in by the caller; the local day
boundaries come from the ``tz`` passed in.

- **Reboots.** sysUpTime is TimeTicks: centiseconds modulo 2^32, so it wraps to 0 after
  about 497 days without any reboot. A reading is a restart of the agent when sysUpTime
  went backwards further than a wrap explains, or when the agent has been up for less
  time than has passed since the previous reading (it restarted in between, even if its
  uptime is larger than before). Both compare with the time elapsed on our clock, with a
  tolerance for polling jitter (a step back smaller than the tolerance is not a reboot).
  Within ``tolerance_s`` of a wrap a reboot and a wrap look the same; that is read as a wrap.
- **Counters** are exported as totals that never go backwards. The first reading sets the
  total to the device's own count; after that each reading adds its increase: the
  difference modulo 2^32 for 32-bit counters (a wrap); for 64-bit counters the difference
  when it is positive, modulo 2^64 when the counter was near the top (a wrap), else the
  new value itself (the counter was cleared: counted from zero). After a restart of the
  agent the new value is all new bytes. When the uplink moves to another ifIndex, or
  its counters change width (64-bit counters gone), the total is kept and the next
  increase is counted from the new baseline.
- **Daily traffic** (bytes in and out per local day, for docs/design.md's "in use") spreads
  the increase between two readings over the days they span, in proportion to time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo

TICKS_MODULUS = 2**32  # TimeTicks: centiseconds, wraps after 497.1 days
TICKS_PER_S = 100
KEEP_DAYS = 8  # daily traffic kept per node: today and the week before


# ---------------------------------------------------------------- sysUpTime and reboots


@dataclass(frozen=True, slots=True)
class Uptime:
    """The last sysUpTime of an agent: the raw TimeTicks, when it was read, and since boot without wraps."""

    ticks: int
    at: float
    total_ticks: int  # ticks since the agent started, wraps undone

    @property
    def seconds(self) -> float:
        return self.total_ticks / TICKS_PER_S

    @property
    def booted_at(self) -> float:
        """When the agent started, by our clock."""
        return self.at - self.seconds


def restarted(prev: Uptime | None, ticks: int, at: float, *, tolerance_s: float = 30.0) -> bool:
    """True when the agent restarted between ``prev`` and this reading of ``ticks`` at ``at``."""
    if prev is None:
        return False
    if not 0 <= ticks < TICKS_MODULUS:
        raise ValueError(f"TimeTicks out of range: {ticks}")
    elapsed = max(0.0, at - prev.at) * TICKS_PER_S
    tolerance = tolerance_s * TICKS_PER_S
    if ticks < prev.ticks - tolerance:
        forward = (ticks - prev.ticks) % TICKS_MODULUS  # how far it went if it wrapped
        return forward > elapsed + tolerance
    # Up for less time than has passed since the last reading: it restarted in between.
    # (A step back within the tolerance is an agent's clock being adjusted, not a reboot.)
    return ticks + tolerance < elapsed


def next_uptime(prev: Uptime | None, ticks: int, at: float, *, tolerance_s: float = 30.0) -> tuple[Uptime, bool]:
    """Fold one sysUpTime reading in; return the new Uptime and whether the agent restarted."""
    if prev is None:
        return Uptime(ticks, at, ticks), False
    if restarted(prev, ticks, at, tolerance_s=tolerance_s):
        return Uptime(ticks, at, ticks), True
    delta = (ticks - prev.ticks) % TICKS_MODULUS  # forward, across a wrap if there was one
    if ticks < prev.ticks <= ticks + tolerance_s * TICKS_PER_S:
        delta = ticks - prev.ticks  # a small step back (a clock adjustment), not a wrap
    return Uptime(ticks, at, prev.total_ticks + delta), False


# ---------------------------------------------------------------- counters


@dataclass(frozen=True, slots=True)
class Counter:
    """A device counter exported as a total that never goes backwards."""

    raw: int | None = None  # the last reading, None before the first
    bits: int = 64
    total: int = 0


def count(c: Counter, raw: int, bits: int, *, restart: bool = False, rebase: bool = False) -> tuple[Counter, int]:
    """Fold one reading in; return the new counter and the increase it adds.

    ``restart``: the agent restarted since the last reading, so the counter started again
    at zero and all of ``raw`` is new. ``rebase``: the reading is of another counter than
    the last one (the uplink moved to another ifIndex): keep the total, count from here.
    """
    if bits not in (32, 64):
        raise ValueError(f"counters are 32 or 64 bits, not {bits}")
    if not 0 <= raw < 2**bits:
        raise ValueError(f"{bits}-bit counter out of range: {raw}")
    if c.raw is None:
        return Counter(raw, bits, c.total or raw), 0
    if restart:
        return Counter(raw, bits, c.total + raw), raw
    if rebase or bits != c.bits:
        return Counter(raw, bits, c.total), 0
    delta = raw - c.raw
    if delta < 0:
        if bits == 32:
            delta += 2**32  # a wrap: at 1 Gb/s a 32-bit octet counter wraps every 34 s
        elif -delta > 2**63:
            delta += 2**64  # a wrap of a counter close to 2^64
        else:
            delta = raw  # a 64-bit counter does not wrap in centuries: it was cleared
    return Counter(raw, bits, c.total + delta), delta


# ---------------------------------------------------------------- daily traffic


@dataclass(frozen=True, slots=True)
class DayTraffic:
    """Uplink bytes counted on one local day."""

    day: date
    rx: int = 0
    tx: int = 0

    @property
    def total(self) -> int:
        return self.rx + self.tx


@dataclass(frozen=True, slots=True)
class Traffic:
    """Per-day uplink traffic of one node, oldest day first, at most KEEP_DAYS days."""

    days: tuple[DayTraffic, ...] = ()

    def on(self, day: date) -> DayTraffic:
        for d in self.days:
            if d.day == day:
                return d
        return DayTraffic(day)


def _midnight_after(day: date, tz: tzinfo) -> float:
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).timestamp()


def _shares(start: float, end: float, tz: tzinfo, keep_days: int) -> list[tuple[date | None, float]]:
    """The seconds from ``start`` to ``end`` on each local day; those before the last ``keep_days`` days under None."""
    last = datetime.fromtimestamp(end, tz).date()
    if end <= start:
        return [(last, 1.0)]
    first = last - timedelta(days=keep_days - 1)
    window = datetime.combine(first, time(0), tzinfo=tz).timestamp()
    out: list[tuple[date | None, float]] = []
    if start < window:
        out.append((None, window - start))
    else:
        first = datetime.fromtimestamp(start, tz).date()
    day, t = first, max(start, window)
    for _ in range(keep_days + 1):  # bounded: one step per local day
        edge = min(end, _midnight_after(day, tz))
        out.append((day, max(0.0, edge - t)))
        if edge >= end:
            break
        day, t = day + timedelta(days=1), edge
    return out


def _split(amount: int, weights: list[float]) -> list[int]:
    """Split ``amount`` in proportion to ``weights``, exactly (largest remainders get the leftovers)."""
    total = sum(weights)
    exact = [amount * w / total for w in weights]
    parts = [int(x) for x in exact]
    left = amount - sum(parts)
    for i in sorted(range(len(exact)), key=lambda i: exact[i] - parts[i], reverse=True)[:left]:
        parts[i] += 1
    return parts


def add_traffic(t: Traffic, rx: int, tx: int, start: float, end: float, tz: tzinfo, *,
                keep_days: int = KEEP_DAYS) -> Traffic:
    """Add the bytes counted between two readings (``start`` .. ``end``), spread over the local days they span.

    Days older than ``keep_days`` before the day of ``end`` are dropped (and any share of
    a longer gap that falls on them).
    """
    if rx < 0 or tx < 0:
        raise ValueError("traffic increases are never negative")
    shares = _shares(start, end, tz, keep_days)
    weights = [s for _, s in shares]
    by_day = {d.day: d for d in t.days}
    for (day, _), r, x in zip(shares, _split(rx, weights), _split(tx, weights), strict=True):
        if day is None:
            continue
        old = by_day.get(day, DayTraffic(day))
        by_day[day] = DayTraffic(day, old.rx + r, old.tx + x)
    newest = max(by_day)
    kept = sorted(d for d in by_day if d > newest - timedelta(days=keep_days))
    return Traffic(tuple(by_day[d] for d in kept))


# ---------------------------------------------------------------- one node


@dataclass(frozen=True, slots=True)
class Sample:
    """What one SNMP poll read of a node, as plain values (None: not read)."""

    at: float
    uptime_ticks: int
    if_index: int | None = None
    bits: int = 64  # width of rx/tx
    rx: int | None = None
    tx: int | None = None
    in_errors: int | None = None
    out_errors: int | None = None


@dataclass(frozen=True, slots=True)
class NodeCounters:
    """Everything counted for one node across polls."""

    uptime: Uptime | None = None
    reboots: int = 0
    last_reboot_at: float | None = None  # the agent's boot time, by our clock, at the last reboot seen
    if_index: int | None = None
    rx: Counter = field(default_factory=Counter)
    tx: Counter = field(default_factory=Counter)
    in_errors: Counter = field(default_factory=Counter)
    out_errors: Counter = field(default_factory=Counter)
    traffic: Traffic = field(default_factory=Traffic)
    traffic_at: float | None = None  # when the octet counters were last read


def fold_sample(state: NodeCounters, s: Sample, tz: tzinfo, *,
                tolerance_s: float = 30.0) -> tuple[NodeCounters, bool]:
    """Fold one poll's sample into a node's counters; return them and whether the agent rebooted."""
    uptime, rebooted = next_uptime(state.uptime, s.uptime_ticks, s.at, tolerance_s=tolerance_s)
    moved = s.if_index is not None and state.if_index is not None and s.if_index != state.if_index

    def step(c: Counter, raw: int | None, bits: int) -> tuple[Counter, int]:
        if raw is None:
            return c, 0
        return count(c, raw, bits, restart=rebooted, rebase=moved)

    rx, rx_inc = step(state.rx, s.rx, s.bits)
    tx, tx_inc = step(state.tx, s.tx, s.bits)
    in_errors, _ = step(state.in_errors, s.in_errors, 32)
    out_errors, _ = step(state.out_errors, s.out_errors, 32)
    traffic, traffic_at = state.traffic, state.traffic_at
    if s.rx is not None or s.tx is not None:
        if traffic_at is not None and (rx_inc or tx_inc):
            traffic = add_traffic(traffic, rx_inc, tx_inc, traffic_at, s.at, tz)
        traffic_at = s.at
    return NodeCounters(
        uptime=uptime,
        reboots=state.reboots + rebooted,
        last_reboot_at=uptime.booted_at if rebooted else state.last_reboot_at,
        if_index=s.if_index if s.if_index is not None else state.if_index,
        rx=rx, tx=tx, in_errors=in_errors, out_errors=out_errors,
        traffic=traffic, traffic_at=traffic_at,
    ), rebooted


def in_use(traffic: Traffic, day: date, min_bytes: int) -> bool:
    """docs/design.md's traffic half of "in use on day D": uplink bytes (in + out) on D >= ``min_bytes``."""
    return traffic.on(day).total >= min_bytes
