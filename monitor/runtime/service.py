"""The running monitor: sweeps on a schedule, folds results into states, publishes snapshots."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from exporters.metrics import PARTS, MetricsCache, SelfMetrics, ping_only, render_snapshot
from exporters.web import start_server
from inventory.load import InventoryError
from inventory.model import Inventory, Node
from monitor.config import Config
from monitor.core.causes import BOOT_SLACK_S, Evidence, OutageCause, classify
from monitor.core.causes import observe as observe_cause
from monitor.core.hourly import Hourly, HourPoint
from monitor.core.maintenance import MaintenanceWindow, behind, covered
from monitor.core.rates import CommuneNow, current_rates, for_scope
from monitor.core.snapshot import NodeStatus, Snapshot, SweepStats
from monitor.core.snmp import (
    Delta,
    Reason,
    SnmpReading,
    SnmpStatuses,
    SnmpTrack,
    add_deltas,
    fold_readings,
    plan_poll,
    uplink_deltas,
)
from monitor.core.state import (
    NO_CIRCUIT,
    Event,
    History,
    Link,
    Resolved,
    State,
    advance,
    is_flapping,
    observe,
    resolve,
)
from monitor.errors import RunRefused, Superseded
from monitor.procs import trim_malloc
from monitor.runtime import loader
from monitor.runtime.mailer import Mailer
from monitor.runtime.recorder import Recorder, UplinkCounters
from monitor.runtime.snmp_worker import SnmpWorkers
from monitor.store.model import HistoryStore

if TYPE_CHECKING:  # pysnmp (30 MB) is imported in the main process only when it polls there (snmp.worker false)
    from monitor.probes.snmp import SnmpPoller

log = logging.getLogger("tslcd.service")

# A watched inventory file that shrinks below this share of the nodes in use waits for SIGHUP (small ones never
# do): 105 nodes to 3 (a truncated copy) waits, 105 to 50 (a province's own edit) loads.
SHRINK_RATIO = 0.25
SHRINK_MIN_NODES = 10


class PingStats(Protocol):
    """What the service reads of one ICMP result (monitor.probes.icmp.PingResult)."""

    @property
    def reachable(self) -> bool: ...
    @property
    def loss_ratio(self) -> float: ...
    @property
    def rtt_min(self) -> float | None: ...
    @property
    def rtt_avg(self) -> float | None: ...
    @property
    def rtt_max(self) -> float | None: ...
    @property
    def jitter(self) -> float | None: ...


class Sweeper(Protocol):
    """The ICMP engine as the service uses it (monitor.probes.icmp.IcmpEngine)."""

    async def sweep(self, addresses: Sequence[str], *, count: int, timeout_s: float, pps: int,
                    interval_s: float) -> dict[str, PingStats]: ...

    def close(self) -> None: ...


def maintenance_codes(cfg: Config, nodes: Iterable[Node], now: float,
                      declared: Sequence[MaintenanceWindow] = ()) -> frozenset[str]:
    """Codes inside a maintenance window at ``now`` (config.yaml's, or ``declared`` at run time), with every node
    behind them (monitor.core.maintenance); naive config window times are in the province timezone."""
    nodes = list(nodes)
    at = datetime.fromtimestamp(now, cfg.tz)
    named: set[str] = set()
    for w in cfg.maintenance:
        start = w.start if w.start.tzinfo else w.start.replace(tzinfo=cfg.tz)
        end = w.end if w.end.tzinfo else w.end.replace(tzinfo=cfg.tz)
        if start <= at < end:
            named.update(n.code for n in nodes if n.code in w.codes or (n.area and n.area in w.areas))
    if declared:
        named |= covered(declared, ((n.code, n.area, n.parent) for n in nodes), now, cfg.tz)
    return behind(named, {n.code: n.parent for n in nodes}) if named else frozenset()


@dataclass
class _NodeTrack:
    link: Link = field(default_factory=Link)
    hist: History = field(default_factory=History)
    ping: PingStats | None = None
    ipv6_ok: bool | None = None
    hourly: Hourly = field(default_factory=Hourly)  # the last 24 hours, for the commune's page


class Monitor:
    """State of the whole network between sweeps. One instance per process.

    ``sweep_once`` is the unit of work (tests call it directly); ``run`` adds the
    schedule, the HTTP server and signals.
    """

    def __init__(self, cfg: Config, inventory: Inventory, engine: Sweeper, *,
                 clock: Callable[[], float] = time.time,
                 inventory_path: Path | None = None,
                 self_metrics: SelfMetrics | None = None,
                 recorder: Recorder | None = None,
                 mailer: Mailer | None = None,
                 reload_check: Callable[[Inventory], list[str]] | None = None) -> None:
        self.cfg = cfg
        self.inventory = inventory
        self.engine = engine
        self.clock = clock
        self.inventory_path = inventory_path
        self._inventory_mtime = self._mtime()
        self.self_metrics = self_metrics or SelfMetrics()
        self.metrics = MetricsCache(self.self_metrics)
        self.self_metrics.inventory_nodes.set(len(inventory.nodes))
        self.self_metrics.reload_ok.set(1)
        self.self_metrics.inventory_warnings.set(len(inventory.warnings))
        self.self_metrics.sweep_interval.labels("icmp").set(cfg.icmp.interval_s)
        if cfg.snmp_profiles:
            self.self_metrics.sweep_interval.labels("snmp").set(cfg.snmp.interval_s)
        self._tracks: dict[str, _NodeTrack] = {}
        self.event_sinks: list[Callable[[Sequence[Event]], None]] = []
        # Outage causes concluded since the last sweep (monitor.core.causes), given with each sweep.
        self.cause_sinks: list[Callable[[Sequence[OutageCause]], None]] = []
        self.recorder = recorder  # history store; None: nothing is kept
        self.mailer = mailer  # the daily email; None: none is sent
        self.reload_check = reload_check  # problems that refuse a reloaded inventory (the sandbox: loopback only)
        self.snmp: SnmpPoller | SnmpWorkers | None = None
        if cfg.snmp_profiles and cfg.snmp.worker:
            self.snmp = SnmpWorkers(cfg.snmp_profiles, count=cfg.snmp.workers, max_in_flight=cfg.snmp.max_in_flight,
                                    log_level=cfg.log_level, deadline_s=3 * cfg.snmp.interval_s,
                                    on_restart=self.self_metrics.snmp_worker_restarts.inc)
        elif cfg.snmp_profiles:
            from monitor.probes.snmp import SnmpPoller

            self.snmp = SnmpPoller(cfg.snmp_profiles, max_in_flight=cfg.snmp.max_in_flight)
        self._snmp: dict[str, SnmpTrack] = {}
        self._snmp_statuses = SnmpStatuses()  # each node's SNMP status, one per poll, shared by the snapshots
        # Active (probing and writing) or a standby (config: standby) waiting for the active poller's heartbeats
        # to stop; a poller whose run another one took over becomes a standby too.
        self.active = True
        self._standby_of: str | None = None  # the active poller, as the store names it
        self._standby_checked: float | None = None  # the standby's last look at the store
        self._scheduler: AsyncIOScheduler | None = None
        self._snmp_pending: dict[str, Delta] = {}  # uplink deltas not yet written to the history
        # Outages followed for their cause (monitor.core.causes): evidence while a node is down or unreachable
        # (and whether it was ever down, not only behind a failed node), then, once it is up again, until an
        # SNMP answer shows whether it restarted (or BOOT_SLACK_S passes).
        self._evidence: dict[str, tuple[Evidence, str]] = {}
        self._ended: dict[str, tuple[Evidence, str, float]] = {}
        self.explained: dict[str, tuple[float, float, str]] = {}  # each node's last finished outage: since, end, cause
        # The cause last written for each outage going on, and what is still to be written (with the next sweep).
        self._noted: dict[str, tuple[float, str]] = {}
        self._causes_pending: list[OutageCause] = []
        # A boot this long before the state turned down still explains it: the loss began sweeps earlier.
        self._boot_before_s = (cfg.states.down_after + 1) * cfg.icmp.interval_s
        self.snapshot = self._build(self.clock(), SweepStats(), sweeps=0)
        for part in PARTS:
            self.metrics.update(render_snapshot(self.snapshot, part), part)
        self._snmp_rendered_for = inventory  # the inventory whose nodes the "snmp" part of /metrics lists
        # Who answered ping only (up, SNMP failing) when the "nodes" part of /metrics was rendered: the codes,
        # not that snapshot (a second snapshot of 20,000 nodes kept alive between polls).
        self._ping_only_rendered = ping_only(self.snapshot)
        self._sweeps = 0
        self._cap_warned: int | None = None  # the number of addresses icmp.pps was last found too low for
        self._sweeping: asyncio.Task[None] | None = None

    # -- inventory -----------------------------------------------------------------------------

    def _mtime(self) -> float | None:
        try:
            return self.inventory_path.stat().st_mtime if self.inventory_path else None
        except OSError:
            return None

    def today(self, now: float | None = None) -> date:
        return datetime.fromtimestamp(self.clock() if now is None else now, self.cfg.tz).date()

    async def reload_inventory(self, *, confirmed: bool = True) -> bool:
        """Load the inventory file again (in a thread, or a process of its own for a large file: 20,000 nodes take
        seconds); a bad file keeps the last good.

        Not ``confirmed`` (a change of the file seen by the watch): a file with less than a quarter of
        the nodes of the one in use is not loaded (a truncated copy, a half-saved file) until an operator
        confirms it with SIGHUP (``systemctl reload tslcd``).
        """
        if self.inventory_path is None:
            return False
        self._inventory_mtime = self._mtime()
        try:
            inv = await loader.load_async(self.inventory_path, snmp_profiles=set(self.cfg.snmp_profiles),
                                          default_province=self.cfg.default_province, province=self.cfg.watched)
            if self.cfg.strict_inventory and inv.warnings:
                raise InventoryError(inv.warnings)
            if self.reload_check is not None and (refused := self.reload_check(inv)):
                raise InventoryError(refused)
            before = len(self.inventory.nodes)
            if not confirmed and before >= SHRINK_MIN_NODES and len(inv.nodes) < before * SHRINK_RATIO:
                raise InventoryError([f"{self.inventory_path}: it has {len(inv.nodes)} nodes, the inventory in use "
                                      f"{before}: not loaded, in case the file is truncated or half-saved; if the "
                                      "change is meant, confirm it with SIGHUP (systemctl reload tslcd, or kill -HUP "
                                      f"{os.getpid()})"])
        except (InventoryError, OSError) as e:
            self.self_metrics.reload_ok.set(0)
            log.error("inventory reload failed; keeping the last good inventory",
                      extra={"path": str(self.inventory_path), "problems": str(e)})
            return False
        except Exception:  # a reload never takes the monitor down, and never passes for a success
            self.self_metrics.reload_ok.set(0)
            log.exception("inventory reload failed; keeping the last good inventory",
                          extra={"path": str(self.inventory_path)})
            return False
        self.inventory = inv
        for w in inv.warnings:
            log.warning("inventory", extra={"problem": w})
        self.self_metrics.inventory_warnings.set(len(inv.warnings))
        self.self_metrics.reload_ok.set(1)
        self.self_metrics.inventory_nodes.set(len(inv.nodes))
        log.info("inventory reloaded", extra={"path": str(self.inventory_path), "nodes": len(inv.nodes)})
        return True

    async def reload_if_changed(self) -> None:
        if self.inventory_path is not None and self._mtime() != self._inventory_mtime:
            await self.reload_inventory(confirmed=False)

    def commune_hours(self, code: str) -> list[HourPoint] | None:
        """The node's last 24 hours of round trips and loss (since start), None when it is not probed."""
        track = self._tracks.get(code)
        return None if track is None else track.hourly.points(self.clock())

    def history_store(self) -> HistoryStore | None:
        """The history store (read from the web server's threads), None without one."""
        return None if self.recorder is None else self.recorder.store

    def health_problem(self) -> str | None:
        """What /healthz reports beside stale sweeps: history that cannot be written (None: healthy)."""
        if not self.active:
            checked, limit = self._standby_checked, 3 * self.cfg.standby.check_s + 10
            if checked is None or self.clock() - checked > limit:
                return "the standby cannot read the active poller's heartbeats in the history store (see the log)"
            return None
        since = self.recorder.failing_since if self.recorder is not None else None
        if since is None:
            return None
        return f"history not written since {max(0.0, self.clock() - since):.0f} s ago (see the log)"

    def _watched(self, now: float) -> Sequence[Node]:
        """The nodes active today that this poller probes and shows (its shard, when pollers share a store; the
        recorder still records the whole inventory, so that the history's figures cover every shard)."""
        active = self.inventory.active(self.today(now))
        return active if self.cfg.shard is None else [n for n in active if self.cfg.owns(n)]

    # -- sweeps --------------------------------------------------------------------------------

    def _check_cap(self, targets: int) -> None:
        """Warn (once per inventory size) when a configured ``icmp.pps`` leaves a sweep too little time."""
        icmp = self.cfg.icmp
        sending = icmp.sending_s(targets)
        if icmp.pps is None or sending <= 0.8 * icmp.interval_s or self._cap_warned == targets:
            return
        self._cap_warned = targets
        log.warning("icmp.pps is too low for this inventory: sending a sweep's echoes takes most of its interval",
                    extra={"addresses": targets, "count": icmp.count, "pps": icmp.pps,
                           "sending_s": round(sending, 1), "interval_s": icmp.interval_s,
                           "hint": "raise icmp.pps, or remove it so that it follows the inventory"})

    async def sweep_once(self) -> Snapshot:
        """Probe every active node with an address once, fold results into states, publish."""
        started = self.clock()
        active = self._watched(started)
        probed = [n for n in active if n.address]
        addresses = sorted({a for n in probed for a in (n.address, n.address6) if a})
        icmp = self.cfg.icmp
        results: dict[str, PingStats] = {}
        if addresses:
            self._check_cap(len(addresses))
            results = await self.engine.sweep(addresses, count=icmp.count, timeout_s=icmp.timeout_s,
                                              pps=icmp.pps_for(len(addresses)), interval_s=icmp.echo_interval_s)
        now = self.clock()
        st = self.cfg.states
        ok = failed = 0
        for code in set(self._tracks) - {n.code for n in probed}:
            del self._tracks[code]  # left the inventory or lost its address
        for n in probed:
            track = self._tracks.setdefault(n.code, _NodeTrack())
            r = results.get(n.address)
            success = bool(r and r.reachable)
            ok += success
            failed += not success
            track.link = observe(track.link, success, down_after=st.down_after, up_after=st.up_after)
            track.ping = r
            track.hourly.add(now, r.rtt_avg if r is not None and r.reachable else None,
                             r.loss_ratio if r is not None else None)
            r6 = results.get(n.address6) if n.address6 else None
            track.ipv6_ok = None if r6 is None else r6.reachable
        links = {code: t.link for code, t in self._tracks.items()}
        parents = {n.code: n.parent for n in probed}
        declared = self.recorder.maintenance if self.recorder is not None else ()
        resolved = resolve(links, parents, maintenance_codes(self.cfg, active, now, declared))
        events: list[Event] = []
        for code, res in resolved.items():
            track = self._tracks[code]
            track.hist, ev = advance(track.hist, code, res, now, flap_changes=st.flap_changes)
            if ev is not None:
                events.append(ev)
        duration = max(0.0, now - started)
        overrun = duration > icmp.interval_s
        self._sweeps += 1
        stats = SweepStats(started=started, duration_s=duration, ok=ok, failed=failed, overrun=overrun)
        self._follow_outages(resolved, now)
        snap = self._build(now, stats, sweeps=self._sweeps, resolved=resolved)
        sm = self.self_metrics
        sm.sweep_duration.labels("icmp").set(duration)
        sm.sweep_last.labels("icmp").set(now)
        sm.probes.labels("icmp", "success").inc(ok)
        sm.probes.labels("icmp", "failure").inc(failed)
        if overrun:
            log.warning("sweep overran its interval", extra={"probe": "icmp", "duration_s": round(duration, 3),
                                                            "interval_s": icmp.interval_s})
        first = 0
        for ev in events:
            # A node's first state after start is not news; 20,000 lines of it would drown the log.
            initial = ev.old is State.UNKNOWN and self._tracks[ev.code].hist.changes == 0
            first += initial
            log.log(logging.DEBUG if initial else logging.INFO, "state change",
                    extra={"code": ev.code, "old": ev.old.value, "new": ev.new.value, "cause": ev.cause})
        if first:
            counts = {s.value: sum(1 for r in resolved.values() if r.state is s) for s in State}
            log.info("first states", extra={"nodes": first, **{k: v for k, v in counts.items() if v}})
        for sink in self.event_sinks:
            sink(events)
        noted, self._causes_pending = self._causes_pending, []  # the recorder retries them if its write fails
        for cause_sink in self.cause_sinks:
            cause_sink(noted)
        if self.recorder is not None:
            pending, self._snmp_pending = self._snmp_pending, {}
            try:
                await self.recorder.on_sweep(now, snap, events, self.inventory,
                                             counters={c: UplinkCounters(*d) for c, d in pending.items()},
                                             causes=noted)
            except Superseded as e:
                log.warning("another poller took these nodes over; this one is now its standby",
                            extra={"active": e.active})
                await self._to_standby(e.active)
                return self.snapshot
            except Exception:
                # The store failed: states are still published; the traffic waits for the next write.
                self._snmp_pending = add_deltas(pending, self._snmp_pending)
                log.exception("history write failed; states are still published", extra={"probe": "icmp"})
            snap = replace(snap, history=self.recorder.recent())
        self.snapshot = snap
        # Rendering 10^5 samples costs a tenth of a second of CPU: never in the event loop (docs/benchmarks.md).
        # A sweep renders the "nodes" part; the "snmp" part changes with a poll, or with the inventory.
        self.metrics.update(await asyncio.to_thread(render_snapshot, snap, "nodes"), "nodes")
        self._ping_only_rendered = ping_only(snap)
        if self._snmp_rendered_for is not self.inventory:
            self._snmp_rendered_for = self.inventory
            self.metrics.update(await asyncio.to_thread(render_snapshot, snap, "snmp"), "snmp")
        await asyncio.to_thread(trim_malloc)  # what the sweep and its render freed, back to the kernel
        return snap

    def _follow_outages(self, resolved: dict[str, Resolved], now: float) -> None:
        """Open an outage's evidence when a node leaves up for down or unreachable; move it aside when the node is
        up again (an SNMP answer may still show a restart); drop what is no longer probed."""
        snmp_codes: frozenset[str] | None = None

        def asked(now: float) -> frozenset[str]:
            """The nodes the SNMP poller asks (read once, when an outage ends)."""
            nonlocal snmp_codes
            if snmp_codes is None:
                snmp_codes = frozenset() if self.snmp is None else frozenset(
                    n.code for n in self._watched(now) if n.snmp is not None)
            return snmp_codes

        for code, res in resolved.items():
            state = res.state
            if state is State.DOWN or state is State.UNREACHABLE:
                held = self._evidence.get(code)
                if held is None:
                    self._ended.pop(code, None)  # back down before its restart was seen: a new outage
                    self._evidence[code] = (Evidence(now), state.value)
                elif state is State.DOWN and held[1] != "down":
                    self._evidence[code] = (held[0], "down")  # down on its own at some point: its own cause
            elif code in self._evidence:
                ev, was = self._evidence.pop(code)
                self._ended[code] = (ev, was, now)
                # No restart to wait for: into maintenance or unknown, only ever behind a failed node (upstream
                # whatever its uptime says), or a node SNMP does not ask.
                if state is not State.UP or was == State.UNREACHABLE.value or code not in asked(now):
                    self._outage_explained(code, ev, was, now)
        for code in [c for c in self._evidence if c not in resolved]:
            ev, was = self._evidence.pop(code)
            self._ended[code] = (ev, was, now)
            self._outage_explained(code, ev, was, now)  # no longer probed: its outage ends here in the history
        for code, (ev, was, ended) in list(self._ended.items()):
            if code not in resolved or now - ended > BOOT_SLACK_S:
                self._outage_explained(code, ev, was, ended)
        # What is concluded of each outage going on is written when it changes, so that a day sealed while it
        # lasts carries the cause known then.
        for code, (ev, was) in self._evidence.items():
            cause = classify(was, ev, boot_before_s=self._boot_before_s).value
            if self._noted.get(code) != (ev.since, cause):
                self._noted[code] = (ev.since, cause)
                self._note(OutageCause(code, ev.since, None, cause))

    def _outage_explained(self, code: str, ev: Evidence, was: str, ended: float) -> None:
        del self._ended[code]
        cause = classify(was, ev, ended_at=ended, boot_before_s=self._boot_before_s).value
        self.explained[code] = (ev.since, ended, cause)
        self._noted.pop(code, None)
        self._note(OutageCause(code, ev.since, ended, cause))
        log.info("outage cause", extra={"code": code, "since": round(ev.since, 1), "ended": round(ended, 1),
                                        "cause": cause})

    def _note(self, cause: OutageCause) -> None:
        self._causes_pending.append(cause)  # given to cause_sinks and the recorder with the next sweep

    def _cause(self, code: str, state: State | str) -> str | None:
        """Why a node that is down or unreachable is (None for any other state)."""
        value = state.value if isinstance(state, State) else state
        if value not in ("down", "unreachable"):
            return None
        held = self._evidence.get(code)
        return classify(value, held[0] if held is not None else None, boot_before_s=self._boot_before_s).value

    def _observe_outages(self, readings: Sequence[SnmpReading]) -> None:
        """Add what an SNMP poll saw of nodes in an outage to their evidence; for a node just out of one, the first
        sysUpTime read tells whether it restarted (nothing else seen after the outage counts)."""
        for r in readings:
            if r.reason is Reason.NOT_POLLED or r.reason is Reason.LOCAL_ERROR:
                continue
            uptime_s = r.uptime_ticks / 100 if r.uptime_ticks is not None else None
            held = self._evidence.get(r.code)
            if held is not None:
                seen = observe_cause(held[0], at=r.at, answered=r.reason is not Reason.TIMEOUT,
                                     timed_out=r.reason is Reason.TIMEOUT,
                                     uplink_up=r.uplink.oper_up if r.uplink is not None else None, uptime_s=uptime_s)
                self._evidence[r.code] = (seen, held[1])
                continue
            ended = self._ended.get(r.code)
            if ended is not None and uptime_s is not None:  # its restart, or not, is known now
                self._outage_explained(r.code, replace(ended[0], booted_at=r.at - uptime_s), ended[1], ended[2])

    def _build(self, now: float, stats: SweepStats, *, sweeps: int,
               resolved: dict[str, Resolved] | None = None) -> Snapshot:
        if not self.active:  # a standby shows no node and no rate: the active poller's are the figures
            return Snapshot(taken_at=now, province=self.cfg.province, timezone=self.cfg.timezone,
                            target=self.cfg.rates.target, sweeps=sweeps, standby=self._standby_of or "?")
        active = self._watched(now)
        st = self.cfg.states
        today = self.today(now)
        statuses: list[NodeStatus] = []
        communes: list[CommuneNow] = []
        for n in active:
            track = self._tracks.get(n.code)
            if not n.address:
                status = NodeStatus(node=n, state=NO_CIRCUIT)
            elif track is None:
                status = NodeStatus(node=n, state=State.UNKNOWN.value)
            else:
                p = track.ping
                res = (resolved or {}).get(n.code)
                status = NodeStatus(
                    node=n,
                    state=track.hist.state.value,
                    since=track.hist.since,
                    cause=res.cause if res else None,
                    changes=track.hist.changes,
                    last_change=track.hist.since if track.hist.changes else None,
                    flapping=is_flapping(track.hist, now, flap_window_s=st.flap_window_s,
                                         flap_changes=st.flap_changes),
                    rtt_min=p.rtt_min if p else None,
                    rtt_avg=p.rtt_avg if p else None,
                    rtt_max=p.rtt_max if p else None,
                    jitter=p.jitter if p else None,
                    loss=p.loss_ratio if p else None,
                    ipv6_ok=track.ipv6_ok,
                    snmp=self._snmp_statuses.of(n.code, self._snmp.get(n.code), today),
                    outage_cause=self._cause(n.code, track.hist.state),
                )
            statuses.append(status)
            if n.is_commune:
                communes.append(CommuneNow(n.province, n.area, n.provisioned, status.state == "up",
                                           status.ipv6_ok is True))
        return Snapshot(taken_at=now, province=self.cfg.province, timezone=self.cfg.timezone,
                        target=self.cfg.rates.target, nodes=tuple(statuses),
                        rates=for_scope(current_rates(communes), self.cfg), sweep=stats, sweeps=sweeps)

    # -- the service ---------------------------------------------------------------------------

    async def run(self, listen: str | None = None, *, ready: Callable[[str], None] | None = None,
                  stop: asyncio.Event | None = None) -> None:
        """Serve HTTP, sweep on schedule, reload on SIGHUP or file change, stop on SIGTERM/SIGINT.

        A store that cannot start (StoreError) or an address that cannot be bound (ListenError)
        raise before anything runs, and whatever was started is stopped again.
        """
        loop = asyncio.get_running_loop()
        stop = stop or asyncio.Event()
        installed: list[signal.Signals] = []
        runner = None
        scheduler = AsyncIOScheduler(timezone=self.cfg.tz)
        reloads: set[asyncio.Task[bool]] = set()

        def on_hup() -> None:
            task = asyncio.ensure_future(self.reload_inventory())
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        try:
            for sig, handler in ((signal.SIGTERM, stop.set), (signal.SIGINT, stop.set), (signal.SIGHUP, on_hup)):
                try:
                    loop.add_signal_handler(sig, handler)
                    installed.append(sig)
                except (RuntimeError, ValueError):  # not the main thread: the caller stops us
                    pass
            if self.recorder is not None:
                try:
                    await self.recorder.on_start(self.inventory)
                except RunRefused as e:
                    if not self.cfg.standby.enabled:
                        raise
                    log.warning("another poller watches these nodes; this one waits as its standby",
                                extra={"active": e.active, "check_s": self.cfg.standby.check_s})
                    self._standby_checked = self.clock()
                    await self._to_standby(e.active)
            runner, url = await start_server(self, listen or self.cfg.web.listen)
            self._scheduler = scheduler
            scheduler.add_job(self._sweep_job, "interval", seconds=self.cfg.icmp.interval_s, id="icmp-sweep",
                              max_instances=1, coalesce=True, next_run_time=datetime.now(self.cfg.tz),
                              misfire_grace_time=None)
            scheduler.add_job(self.reload_if_changed, "interval", seconds=5, id="inventory-watch",
                              max_instances=1, coalesce=True)
            if self.recorder is not None:
                scheduler.add_job(self.standby_check, "interval", seconds=self.cfg.standby.check_s,
                                  id="standby-check", max_instances=1, coalesce=True)
            if self.snmp is not None:
                # The first poll after the first sweep, so that nodes known down are not polled.
                first = datetime.fromtimestamp(self.clock() + self.cfg.icmp.interval_s / 2, self.cfg.tz)
                scheduler.add_job(self._snmp_job, "interval", seconds=self.cfg.snmp.interval_s, id="snmp-poll",
                                  max_instances=1, coalesce=True, next_run_time=first, misfire_grace_time=None)
            if self.mailer is not None:
                self.mailer.attach(scheduler)
            scheduler.start()
            log.info("monitor running", extra={"url": url, "nodes": len(self.inventory.nodes), "pid": os.getpid()})
            if ready:
                ready(url)
            await stop.wait()
        finally:
            log.info("stopping")
            if scheduler.running:
                # Pause first: shutting the scheduler down cancels the jobs it is running, and
                # a sweep in progress should finish and count.
                scheduler.pause()
                await self._finish_sweep()
                scheduler.shutdown(wait=False)
            await asyncio.gather(*reloads, return_exceptions=True)
            if self.recorder is not None:
                await self.recorder.on_stop()
                self.recorder.store.close()
            if self.snmp is not None:
                self.snmp.close()
            if runner is not None:
                await runner.cleanup()
            for sig in installed:
                loop.remove_signal_handler(sig)
            self.engine.close()

    async def _to_standby(self, active: str) -> None:
        """Stop probing and showing nodes (the active poller does), until ``standby_check`` finds it gone."""
        self.active = False
        self._standby_of = active
        self._tracks = {}
        self._snmp = {}
        self._snmp_pending = {}
        self._evidence = {}
        self._ended = {}
        self._noted = {}
        self._causes_pending = []
        self.self_metrics.poller_active.set(0)
        await self._publish_empty()

    async def _publish_empty(self) -> None:
        self.snapshot = self._build(self.clock(), SweepStats(), sweeps=self._sweeps)
        for part in PARTS:
            self.metrics.update(await asyncio.to_thread(render_snapshot, self.snapshot, part), part)
        self._ping_only_rendered = ping_only(self.snapshot)

    async def standby_check(self) -> bool:
        """A standby's look at the store: take over (a new run, probing at once) when no live poller watches
        these nodes any more; return whether this poller is active."""
        if self.active or self.recorder is None:
            return self.active
        try:
            await self.recorder.on_start(self.inventory)
        except RunRefused as e:
            self._standby_checked = self.clock()
            if e.active != self._standby_of:
                self._standby_of = e.active
                await self._publish_empty()
            return False
        except Exception:  # the store is out of reach: stay a standby; /healthz says so in time
            log.exception("standby: cannot check the active poller in the history store")
            return False
        log.warning("taking over: the active poller's heartbeats stopped", extra={"was": self._standby_of})
        self.active = True
        self._standby_of = None
        self._standby_checked = None
        self.self_metrics.poller_active.set(1)
        await self._publish_empty()
        if self._scheduler is not None and self._scheduler.get_job("icmp-sweep") is not None:
            self._scheduler.modify_job("icmp-sweep", next_run_time=datetime.now(self.cfg.tz))
        return True

    async def _sweep_job(self) -> None:
        if not self.active:
            return  # a standby does not probe
        self._sweeping = asyncio.current_task()
        try:
            await self.sweep_once()
        except asyncio.CancelledError:
            log.info("sweep interrupted by stop", extra={"probe": "icmp"})
        except Exception:  # a failed sweep is logged and the next one runs: the monitor never dies of it
            log.exception("sweep failed", extra={"probe": "icmp"})
        finally:
            self._sweeping = None

    async def poll_snmp_once(self) -> Snapshot:
        """Poll every active node with an SNMP profile (not those ping says are down), fold, publish."""
        assert self.snmp is not None
        started = self.clock()
        active = self._watched(started)
        todo, skipped = plan_poll(active, {s.node.code: s.state for s in self.snapshot.nodes}, started,
                                  down_max=self.cfg.snmp.down_nodes_max,
                                  polled_at={c: ev.polled_at for c, (ev, _) in self._evidence.items()})
        readings = await self.snmp.poll(todo, spread_s=self.cfg.snmp.spread * self.cfg.snmp.interval_s)
        now = self.clock()
        before = self._snmp
        tracks, reboots = fold_readings(before, [*readings, *skipped], self.cfg.tz)
        gone = set(tracks) - {n.code for n in active if n.snmp and n.address}
        for code in gone:
            del tracks[code]
        if gone:
            self.snmp.forget(gone)
            self._snmp_statuses.forget(gone)
        self._snmp = tracks
        self._observe_outages(readings)
        self._snmp_pending = add_deltas(self._snmp_pending, uplink_deltas(before, tracks))
        for rb in reboots:
            log.info("router rebooted", extra={"code": rb.code, "booted_at": round(rb.booted_at, 1)})
        ok = sum(1 for r in readings if r.ok)
        sm = self.self_metrics
        sm.sweep_duration.labels("snmp").set(now - started)
        sm.sweep_last.labels("snmp").set(now)
        sm.probes.labels("snmp", "success").inc(ok)
        sm.probes.labels("snmp", "failure").inc(len(readings) - ok)
        if now - started > self.cfg.snmp.interval_s:
            log.warning("poll overran its interval", extra={"probe": "snmp", "duration_s": round(now - started, 3),
                                                           "interval_s": self.cfg.snmp.interval_s})
        snap = self.snapshot
        today = self.today(now)
        snap = replace(snap, nodes=tuple(
            replace(ns, snmp=self._snmp_statuses.of(ns.node.code, tracks.get(ns.node.code), today),
                    outage_cause=self._cause(ns.node.code, ns.state)) for ns in snap.nodes))
        self.snapshot = snap
        self.metrics.update(await asyncio.to_thread(render_snapshot, snap, "snmp"), "snmp")
        now_ping_only = ping_only(snap)
        if now_ping_only != self._ping_only_rendered:  # the "nodes" part says who answers ping only
            self._ping_only_rendered = now_ping_only
            self.metrics.update(await asyncio.to_thread(render_snapshot, snap, "nodes"), "nodes")
        await asyncio.to_thread(trim_malloc)  # what the poll's folding and its render freed, back to the kernel
        return snap

    async def _snmp_job(self) -> None:
        if not self.active:
            return
        try:
            await self.poll_snmp_once()
        except asyncio.CancelledError:
            log.info("poll interrupted by stop", extra={"probe": "snmp"})
        except Exception:  # a failed poll is logged and the next one runs
            log.exception("poll failed", extra={"probe": "snmp"})

    async def _finish_sweep(self) -> None:
        """On stop, let a sweep in progress finish (its results count), within a bounded grace."""
        task = self._sweeping
        if task is None or task.done():
            return
        icmp = self.cfg.icmp
        grace = (icmp.count - 1) * icmp.echo_interval_s + icmp.timeout_s + 2.0
        _, pending = await asyncio.wait({task}, timeout=grace)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
