"""The monitor's link to its history: one batch per sweep to the store, off the event loop; today's and recent rates.

The service calls ``on_start`` / ``on_sweep`` / ``on_stop``; every SQL statement runs
on one worker thread (so writes are ordered and the event loop never blocks). The
recorder derives state changes from consecutive snapshots, so a node that leaves
the inventory (or loses its address) stops being counted as up: it becomes unknown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, ParamSpec, TypeVar

from exporters.metrics import HistoryCollector
from inventory.model import Inventory
from monitor.config import Config
from monitor.core.causes import OutageCause
from monitor.core.history import UnitKey, day_of, day_rates, day_span, days, period_rates, unit_key
from monitor.core.maintenance import MaintenanceWindow
from monitor.core.notes import excluded_days
from monitor.core.rates import for_scope
from monitor.core.snapshot import DaySummary, RecentRates, Snapshot
from monitor.core.state import NO_CIRCUIT, Event, State
from monitor.errors import Superseded
from monitor.store import (
    CauseRow,
    ChangeRow,
    DayHistory,
    HistoryStore,
    InventoryNode,
    SampleRow,
    SweepBatch,
    commune_days,
    open_store,
)

log = logging.getLogger("tslcd.recorder")

P = ParamSpec("P")
T = TypeVar("T")

RECENT_DAYS = 30
NOT_MONITORED = "not monitored"  # cause of the change to unknown when a node leaves the probed set



def max_gap_s(cfg: Config) -> float:
    """Sweeps further apart than this leave a gap that counts as unknown: three sweep intervals."""
    return 3.0 * cfg.icmp.interval_s


@dataclass(frozen=True, slots=True)
class UplinkCounters:
    """What SNMP saw of a node's uplink since its previous report: byte deltas and reboots (None: not polled)."""

    bytes_in: int | None = None
    bytes_out: int | None = None
    reboots: int | None = None


class Recorder:
    """Writes what the monitor sees to the history store and keeps today's and recent rates at hand."""

    def __init__(self, store: HistoryStore, cfg: Config, *, clock: Callable[[], float] = time.time,
                 today_refresh_s: float = 60.0) -> None:
        self.store = store
        self.cfg = cfg
        self.tz = cfg.tz
        self.settings = cfg.store
        self.max_gap_s = max_gap_s(cfg)
        self.clock = clock
        self.today_refresh_s = today_refresh_s
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tslcd-store")
        self._stopped = False
        # Everything below is touched by the worker thread only.
        self._run: int | None = None
        self._inventory: Inventory | None = None
        self._units: Mapping[UnitKey, int] = {}
        self._codes: dict[int, str] = {}
        self._states: dict[int, str] = {}
        self._pending: list[ChangeRow] = []
        self._pending_causes: list[CauseRow] = []
        self._last_unit: dict[str, int] = {}  # the unit of a node an outage cause was written for
        self._acc: dict[tuple[date, int], list[int | None]] = {}
        self._sweeps_unflushed = 0
        self._sealed_check: date | None = None
        self._nodes: dict[int, tuple[InventoryNode, ...]] = {}
        self._days: dict[date, DaySummary] = {}
        self._exclusions: dict[int, list[tuple[float, float]]] = {}  # approved exclusions of the recent days
        self._recent_at = float("-inf")
        self._refresh_cost_s = 0.0
        # Read from any thread: replaced whole, never mutated.
        self._recent: RecentRates | None = None
        self.maintenance: tuple[MaintenanceWindow, ...] = ()  # declared at run time, as of the last sweep
        self.sealed_through: date | None = None
        self.write_failures = 0
        self.failing_since: float | None = None  # the first of the sweeps whose history write failed in a row
        self.last_write_s = 0.0

    @classmethod
    def open(cls, cfg: Config, **kwargs: Any) -> Recorder:
        """A recorder on the store the config names (opened and migrated now: call before the event loop)."""
        return cls(open_store(cfg), cfg, **kwargs)

    async def _call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    # -- what the service calls ---------------------------------------------------------------------

    async def on_start(self, inventory: Inventory) -> None:
        """Seal the days missed while stopped, record a new run and the inventory (on_sweep does it if not called).

        RunRefused while another live poller watches some of these nodes (it says which)."""
        await self._call(self._start, inventory, self.clock())

    async def on_sweep(self, now: float, snapshot: Snapshot, events: Sequence[Event], inventory: Inventory,
                       counters: Mapping[str, UplinkCounters] | None = None,
                       causes: Sequence[OutageCause] = ()) -> None:
        """Write one sweep (heartbeat, state changes, samples, outage causes) in one transaction, off the event loop.

        ``counters`` (by node code) are SNMP uplink deltas since the previous sweep, when polled; ``causes`` what
        was concluded of outages since the previous sweep (kept and written again with the next sweep when this
        write fails). Superseded when another poller has taken these nodes over (nothing of this sweep is kept).
        """
        if self._stopped:
            return  # a sweep finishing after on_stop: the run is over, its time is not observed
        await self._call(self._sweep, now, snapshot, events, inventory, counters or {}, causes)

    async def on_stop(self) -> None:
        """Flush the sample sums and record a clean stop; the worker thread ends."""
        if self._stopped:
            return
        self._stopped = True
        try:
            await self._call(self._stop, self.clock())
        finally:
            self._pool.shutdown(wait=True)

    def collector(self) -> HistoryCollector:
        """A Prometheus collector of today's and recent rates: ``self_metrics.registry.register(...)``."""
        return HistoryCollector(self)

    def recent(self) -> RecentRates | None:
        """Today's and the last 30 days' rates, as of the last sweep (None before the first)."""
        return self._recent

    def today_and_last_30_days(self) -> RecentRates | None:
        """The same as ``recent()``: what the status page and /metrics show."""
        return self._recent

    def close(self) -> None:
        """Stop the worker and close the store (for callers that never started the loop)."""
        self._pool.shutdown(wait=True)
        self.store.close()

    # -- worker thread -------------------------------------------------------------------------------

    def _start(self, inventory: Inventory, now: float) -> None:
        self._seal(now)
        self._run = self.store.start_run(now, max_gap_s=self.max_gap_s, shard=self.cfg.shard_spec)
        self._states = {}  # a new run: every node starts unknown, as the state machine does
        self._record_inventory(inventory, now)
        log.info("history run started", extra={"run": self._run, "max_gap_s": self.max_gap_s})

    def _record_inventory(self, inventory: Inventory, now: float) -> None:
        rec = self.store.record_inventory(inventory, now)
        self._inventory = inventory
        self._units = rec.units
        self._codes = {u: c for (c, _), u in rec.units.items()}

    def _sweep(self, now: float, snapshot: Snapshot, events: Sequence[Event], inventory: Inventory,
               counters: Mapping[str, UplinkCounters], outage_causes: Sequence[OutageCause] = ()) -> None:
        if self._run is None:
            self._start(inventory, now)
        elif inventory is not self._inventory:
            self._record_inventory(inventory, now)
        assert self._run is not None
        causes = {e.code: e.cause for e in events if e.cause}
        current: dict[int, str] = {}
        day = day_of(now, self.tz)
        noted = {c.code for c in outage_causes}
        unit_of: dict[str, int] = {}
        for ns in snapshot.nodes:
            if ns.state == NO_CIRCUIT:
                continue
            unit = self._units.get(unit_key(ns.node.code, ns.node.active_from))
            if unit is None:
                # The snapshot's node is not in the recorded inventory: record the one the monitor uses now.
                self._record_inventory(inventory, now)
                unit = self._units[unit_key(ns.node.code, ns.node.active_from)]
            current[unit] = ns.state
            if noted and ns.node.code in noted:
                unit_of[ns.node.code] = unit
            self._sample(day, unit, ns.loss, ns.rtt_avg, counters.get(ns.node.code), ns.ipv6_ok)
        changes = list(self._pending)
        # A node no longer in the snapshot (taken out of the inventory) keeps the unit it had in the last sweep.
        cause_rows = list(self._pending_causes) + [
            CauseRow(unit, c.start, c.end, c.why) for c in outage_causes
            if (unit := unit_of.get(c.code, self._last_unit.get(c.code))) is not None]
        self._last_unit.update(unit_of)
        for unit in current.keys() | self._states.keys():
            old = self._states.get(unit, State.UNKNOWN.value)
            new = current.get(unit, State.UNKNOWN.value)
            if old != new:
                cause = causes.get(self._codes.get(unit, "")) if unit in current else NOT_MONITORED
                changes.append(ChangeRow(unit, now, old, new, cause))
        self._sweeps_unflushed += 1
        flush = (self._sweeps_unflushed >= self.settings.samples_flush_sweeps
                 or any(d != day for d, _ in self._acc))
        samples = self._drain_samples() if flush else []
        t0 = time.monotonic()
        try:
            self.store.write_sweep(SweepBatch(self._run, now, changes, samples, cause_rows))
        except Superseded:
            self._superseded()
            raise
        except Exception:
            # The monitor never dies of its history: retry the changes with the next sweep;
            # this sweep's heartbeat is lost, so the time since the last one becomes unknown.
            self.write_failures += 1
            if self.failing_since is None:
                self.failing_since = now
            self._pending = changes
            self._pending_causes = cause_rows
            self._restore_samples(samples)
            log.exception("history write failed", extra={"changes": len(changes)})
        else:
            self.failing_since = None
            self._pending = []
            self._pending_causes = []
            if flush:
                self._sweeps_unflushed = 0
        self.last_write_s = time.monotonic() - t0
        self._states = current
        self._refresh_maintenance(now)
        self._seal(now)
        # At most 1% of the worker's time: today's figures for 20,000 nodes take about a second to count.
        if now - self._recent_at >= max(self.today_refresh_s, 100 * self._refresh_cost_s) or self._recent is None:
            t1 = time.monotonic()
            self._refresh(now)
            self._refresh_cost_s = time.monotonic() - t1

    def _refresh_maintenance(self, now: float) -> None:
        """The windows declared at run time (tslcd maintenance, the HTTP API) that may cover a node before the next
        sweeps: read with every sweep, so that one declared by another process applies without a restart."""
        try:
            self.maintenance = tuple(self.store.maintenance_windows(now - 60, now + 3 * self.max_gap_s))
        except Exception:
            log.exception("maintenance windows could not be read; the last ones read still apply")

    def _superseded(self) -> None:
        """A later run took these nodes over: forget this run and what it had not written (that time is the other
        run's now); ``on_start`` begins a new run when this poller becomes active again."""
        log.warning("history run taken over by another poller", extra={"run": self._run})
        self._run = None
        self._states = {}
        self._pending = []
        self._pending_causes = []
        self._acc = {}
        self._sweeps_unflushed = 0
        self._recent = None
        self.failing_since = None

    def _sample(self, day: date, unit: int, loss: float | None, rtt: float | None,
                up: UplinkCounters | None, ipv6_ok: bool | None = None) -> None:
        if loss is None and rtt is None and up is None and ipv6_ok is None:
            return
        acc = self._acc.setdefault((day, unit), [0, 0, 0, 0, None, None, None, None, None])
        if ipv6_ok is not None:  # its IPv6 address was probed this sweep
            acc[7] = (acc[7] or 0) + 1
            acc[8] = (acc[8] or 0) + ipv6_ok
        if loss is not None:
            acc[0] = (acc[0] or 0) + 1
            acc[3] = (acc[3] or 0) + round(loss * 1e6)
        if rtt is not None:
            acc[1] = (acc[1] or 0) + 1
            acc[2] = (acc[2] or 0) + round(rtt * 1e6)
        if up is not None:
            for i, v in ((4, up.bytes_in), (5, up.bytes_out), (6, up.reboots)):
                if v is not None:
                    acc[i] = (acc[i] or 0) + v

    def _drain_samples(self) -> list[SampleRow]:
        rows = [SampleRow(d, u, *(v or 0 for v in a[:4]), *a[4:]) for (d, u), a in self._acc.items()]
        self._acc = {}
        return rows

    def _restore_samples(self, rows: Sequence[SampleRow]) -> None:
        for r in rows:
            self._acc[(r.day, r.unit)] = [r.samples, r.rtt_samples, r.rtt_sum_us, r.loss_sum_ppm, r.bytes_in,
                                          r.bytes_out, r.reboots, r.v6_samples, r.v6_ok]

    def _stop(self, now: float) -> None:
        if self._run is None:
            return
        try:
            self.store.write_sweep(SweepBatch(self._run, None, self._pending, self._drain_samples()))
            self.store.stop_run(self._run, now)
        except Exception:
            self.write_failures += 1
            log.exception("history flush at stop failed")
        log.info("history run stopped", extra={"run": self._run})

    def _seal(self, now: float) -> None:
        """Seal finished days and purge old raw events, at most once per new day."""
        due = day_of(now - self.max_gap_s, self.tz)
        if self._sealed_check == due:
            return
        try:
            sealed = self.store.seal_due(now, self.tz, self.max_gap_s)
            self.store.purge_events(now - self.settings.events_retention_days * 86_400.0, self.tz)
        except Exception:
            self.write_failures += 1
            log.exception("sealing finished days failed; will retry")
            return
        self._sealed_check = due
        head = self.store.chain_head()
        self.sealed_through = head.day if head else None
        if sealed:
            self._recent_at = float("-inf")  # yesterday changed from computed to sealed

    def _summary(self, h: DayHistory) -> DaySummary:
        version = h.inventory_version
        nodes: tuple[InventoryNode, ...] = ()
        if version is not None:
            if version not in self._nodes:
                self._nodes[version] = self.store.inventory_nodes(version)
            nodes = self._nodes[version]
        communes = commune_days(h, nodes)
        rates = for_scope(day_rates(h.day, communes, min_availability=self.cfg.rates.connected_min_availability,
                                    in_use_min_bytes=self.cfg.rates.in_use_min_bytes), self.cfg)
        rates_x = None
        spans = self._exclusions
        if spans:  # approved exclusions: the same day counted again beside it (monitor.core.notes)
            communes_x, touched = excluded_days(communes, h.outages, spans)
            if touched:
                rates_x = for_scope(day_rates(h.day, communes_x,
                                              min_availability=self.cfg.rates.connected_min_availability,
                                              in_use_min_bytes=self.cfg.rates.in_use_min_bytes), self.cfg)
        return DaySummary(h.day, rates, h.coverage, h.seal is not None, rates_x)

    def _refresh(self, now: float) -> None:
        """Recompute today's rates; the past days' only once they are sealed (they no longer change)."""
        try:
            today = day_of(now, self.tz)
            first = self.store.first_day(self.tz) or today
            start = max(first, today - timedelta(days=RECENT_DAYS))
            for d in list(self._days):
                if d < start:
                    del self._days[d]
            yesterday = today - timedelta(days=1)
            # Approved exclusions may be added to any past day (re-sealing it): a change forgets the cached days.
            spans = self.store.exclusion_spans(day_span(start, self.tz)[0], now)
            if spans != self._exclusions:
                self._exclusions = spans
                self._days.clear()
            computed: dict[date, DaySummary] = {}
            past = [d for d in days(start, yesterday) if d not in self._days] if start < today else []
            if past:
                for h in list(self.store.history(past[0], past[-1], self.tz)):
                    if h.day not in self._days:
                        s = computed[h.day] = self._summary(h)
                        if s.sealed:  # a day not sealed yet (just after midnight) may still change
                            self._days[h.day] = s
            recent = [self._days.get(d) or computed[d] for d in days(start, yesterday)] if start < today else []
            (h_today,) = list(self.store.history(today, today, self.tz))
            elapsed = max(0.0, min(now, h_today.end) - h_today.start)
            t = self._summary(h_today)
            t = DaySummary(t.day, t.rates, h_today.observed_s / elapsed if elapsed > 0 else 0.0, False, t.rates_x)
            done = tuple(recent)
            self._recent = RecentRates(now, self.cfg.province, t, done,
                                       period_rates(r for s in done for r in s.rates),
                                       period_rates(r for s in done for r in (s.rates_x or s.rates))
                                       if any(s.rates_x for s in done) else None)
            self._recent_at = now
        except Exception:
            log.exception("computing recent rates failed")
