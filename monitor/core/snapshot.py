"""The current state of every node, as one immutable value that exporters read and never change."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from inventory.model import Node
from monitor.core.history import PeriodRate
from monitor.core.rates import R, RateRow, province_row
from monitor.core.snmp import SnmpStatus


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One node after the last sweep. ``state`` is a State value, or "no_circuit" for a commune with no address."""

    node: Node
    state: str
    since: float | None = None
    cause: str | None = None  # unreachable: the upstream node that is down
    changes: int = 0
    last_change: float | None = None
    flapping: bool = False
    rtt_min: float | None = None
    rtt_avg: float | None = None
    rtt_max: float | None = None
    jitter: float | None = None
    loss: float | None = None
    ipv6_ok: bool | None = None
    snmp: SnmpStatus | None = None  # None: no SNMP profile, or not polled yet
    outage_cause: str | None = None  # down or unreachable: why, as far as seen (monitor.core.causes.Cause)


@dataclass(frozen=True, slots=True)
class SweepStats:
    """Self-monitoring of the last sweep."""

    started: float = 0.0
    duration_s: float = 0.0
    ok: int = 0
    failed: int = 0
    overrun: bool = False


@dataclass(frozen=True, slots=True)
class DaySummary:
    """One day's rates per province and area, with the share of the day the monitor observed."""

    day: date
    rates: tuple[RateRow, ...]
    coverage: float
    sealed: bool
    rates_x: tuple[RateRow, ...] | None = None  # with the approved exclusions (None: none touches the day)


@dataclass(frozen=True, slots=True)
class RecentRates:
    """Today so far, and the last complete days (at most 30, since monitoring began), oldest first."""

    computed_at: float
    province: str
    today: DaySummary
    days: tuple[DaySummary, ...]
    period: tuple[PeriodRate, ...]  # mean of the daily rates of ``days``
    period_x: tuple[PeriodRate, ...] | None = None  # the same with the approved exclusions (None: none)

    def province_row(self, rates: Sequence[R]) -> R | None:
        """The whole-province row (area "") of a day or of the period."""
        return province_row(rates, self.province)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a scrape, the status page or the JSON API shows, taken after one sweep."""

    taken_at: float
    province: str
    timezone: str
    target: float
    nodes: tuple[NodeStatus, ...] = ()
    rates: tuple[RateRow, ...] = ()
    sweep: SweepStats = field(default_factory=SweepStats)
    sweeps: int = 0
    history: RecentRates | None = None  # today and the last 30 days, when a store is configured
    standby: str | None = None  # a standby poller (no nodes): which poller is active, as far as it knows

    def province_rate(self, province: str | None = None) -> RateRow:
        """The whole-province row (area ""), or zeros when the province has no commune."""
        province = province or self.province
        return province_row(self.rates, province) or RateRow(province, "", 0, 0, 0)
