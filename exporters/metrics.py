"""Every metric name, the snapshot Collector, and the cached exposition that /metrics serves."""

from __future__ import annotations

import gzip
import threading
from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, tzinfo
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

from monitor.core.history import PeriodRate, day_span
from monitor.core.rates import RateRow
from monitor.core.snapshot import NodeStatus, RecentRates, Snapshot
from monitor.core.snmp import REASONS
from monitor.core.state import STATES

# Per node, labelled by code only; names and grouping come from NODE_INFO (docs/design.md).
NODE_INFO = "tslcd_node_info"
NODE_UP = "tslcd_node_up"
NODE_STATE = "tslcd_node_state"
NODE_STATE_CHANGES = "tslcd_node_state_changes_total"
NODE_LAST_CHANGE = "tslcd_node_last_change_timestamp_seconds"
NODE_FLAPPING = "tslcd_node_flapping"
NODE_IPV6_UP = "tslcd_node_ipv6_up"
NODE_UNREACHABLE_CAUSE = "tslcd_node_unreachable_cause"
ICMP_RTT = "tslcd_icmp_rtt_seconds"
ICMP_RTT_MIN = "tslcd_icmp_rtt_min_seconds"
ICMP_RTT_MAX = "tslcd_icmp_rtt_max_seconds"
ICMP_JITTER = "tslcd_icmp_jitter_seconds"
ICMP_LOSS = "tslcd_icmp_packet_loss_ratio"
# Per province and area (area "" = the whole province).
COMMUNES = "tslcd_communes"
COMMUNES_PROVISIONED = "tslcd_communes_provisioned"
COMMUNES_CONNECTED = "tslcd_communes_connected"
CONNECTION_RATE = "tslcd_connection_rate_ratio"
CONNECTION_TARGET = "tslcd_connection_target_ratio"
# Day and period rates from the history store (monitor/recorder.py).
RATE_CONNECTED = "tslcd_connected_day_rate_ratio"
RATE_IN_USE = "tslcd_in_use_day_rate_ratio"
RATE_PROVISIONED = "tslcd_provisioned_day_rate_ratio"
MONITOR_COVERAGE = "tslcd_monitor_coverage_ratio"
HISTORY_SEALED = "tslcd_history_sealed_through_timestamp_seconds"
HISTORY_WRITE_FAILURES = "tslcd_history_write_failures_total"
HISTORY_WRITE_DURATION = "tslcd_history_write_duration_seconds"
# The daily email (monitor/mailer.py).
EMAIL_FAILURES = "tslcd_email_failures_total"
EMAIL_LAST_SUCCESS = "tslcd_email_last_success_timestamp_seconds"
# Self-monitoring.
SWEEP_DURATION = "tslcd_sweep_duration_seconds"
SWEEP_LAST = "tslcd_sweep_last_timestamp_seconds"
SWEEP_INTERVAL = "tslcd_sweep_interval_seconds"
PROBES = "tslcd_probes_total"
INVENTORY_NODES = "tslcd_inventory_nodes"
INVENTORY_RELOAD_OK = "tslcd_inventory_last_reload_success"
INVENTORY_WARNINGS = "tslcd_inventory_warnings"

# SNMP, per node (monitor/probes/snmp polls; snmp_families below exports).
SNMP_UP = "tslcd_snmp_up"
SNMP_REASON = "tslcd_snmp_reason"
SNMP_PING_ONLY = "tslcd_snmp_ping_only"
SNMP_LAST_POLL = "tslcd_snmp_last_poll_timestamp_seconds"
SNMP_SYS_UPTIME = "tslcd_snmp_sys_uptime_seconds"
NODE_REBOOTS = "tslcd_node_reboots_total"
NODE_LAST_REBOOT = "tslcd_node_last_reboot_timestamp_seconds"
UPLINK_OPER_UP = "tslcd_uplink_oper_up"
UPLINK_RX = "tslcd_uplink_receive_bytes_total"
UPLINK_TX = "tslcd_uplink_transmit_bytes_total"
UPLINK_ERRORS = "tslcd_uplink_errors_total"
UPLINK_TODAY = "tslcd_uplink_traffic_today_bytes"
SNMP_NODES = "tslcd_snmp_nodes"

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class SnapshotCollector:
    """Turns one immutable Snapshot into metric families; it reads, it never probes."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snap = snapshot

    def describe(self) -> list[Metric]:
        # Registration does no work (collect() is not called at register time).
        return []

    def collect(self) -> Iterator[Metric]:
        snap = self._snap
        info = GaugeMetricFamily(NODE_INFO, "Node identity; join on code for names and areas.",
                                 labels=["code", "name", "kind", "province", "area", "address", "parent",
                                         "lat", "lon"])
        up = GaugeMetricFamily(NODE_UP, "1 when the node is up (0 for any other state, or no circuit).",
                               labels=["code"])
        state = GaugeMetricFamily(NODE_STATE, "1 for the node's current state, 0 for the others.",
                                  labels=["code", "state"])
        changes = CounterMetricFamily(NODE_STATE_CHANGES, "Changes of state since the monitor started.",
                                      labels=["code"])
        last = GaugeMetricFamily(NODE_LAST_CHANGE, "When the node last changed state.", labels=["code"])
        flap = GaugeMetricFamily(NODE_FLAPPING, "1 when the node changed state too often recently.",
                                 labels=["code"])
        cause = GaugeMetricFamily(NODE_UNREACHABLE_CAUSE, "1 for an unreachable node, labelled with the "
                                  "topmost upstream node that is down (count by cause: communes cut off "
                                  "behind it).", labels=["code", "cause"])
        v6 = GaugeMetricFamily(NODE_IPV6_UP, "1 when the node's IPv6 address answers (dual-stack nodes).",
                               labels=["code"])
        rtt = GaugeMetricFamily(ICMP_RTT, "Mean echo round trip of the last sweep.", labels=["code"])
        rtt_min = GaugeMetricFamily(ICMP_RTT_MIN, "Minimum echo round trip of the last sweep.", labels=["code"])
        rtt_max = GaugeMetricFamily(ICMP_RTT_MAX, "Maximum echo round trip of the last sweep.", labels=["code"])
        jitter = GaugeMetricFamily(ICMP_JITTER, "Mean difference of consecutive round trips.", labels=["code"])
        loss = GaugeMetricFamily(ICMP_LOSS, "Share of echoes lost in the last sweep.", labels=["code"])
        for ns in snap.nodes:
            n = ns.node
            code = [n.code]
            info.add_metric([n.code, n.name, n.kind, n.province, n.area, n.address, n.parent or "",
                             "" if n.lat is None else repr(n.lat), "" if n.lon is None else repr(n.lon)], 1.0)
            up.add_metric(code, 1.0 if ns.state == "up" else 0.0)
            if ns.state == "no_circuit":
                continue
            for s in STATES:
                state.add_metric([n.code, s.value], 1.0 if ns.state == s.value else 0.0)
            changes.add_metric(code, float(ns.changes))
            if ns.last_change is not None:
                last.add_metric(code, ns.last_change)
            flap.add_metric(code, 1.0 if ns.flapping else 0.0)
            if ns.state == "unreachable" and ns.cause:
                cause.add_metric([n.code, ns.cause], 1.0)
            if ns.ipv6_ok is not None:
                v6.add_metric(code, 1.0 if ns.ipv6_ok else 0.0)
            if ns.loss is not None:
                loss.add_metric(code, ns.loss)
            if ns.rtt_avg is not None:
                rtt.add_metric(code, ns.rtt_avg)
                rtt_min.add_metric(code, ns.rtt_min or 0.0)
                rtt_max.add_metric(code, ns.rtt_max or 0.0)
                jitter.add_metric(code, ns.jitter or 0.0)
        yield from (info, up, state, changes, last, flap, cause, v6, rtt, rtt_min, rtt_max, jitter, loss)

        labels = ["province", "area"]
        communes = GaugeMetricFamily(COMMUNES, "Communes active in the inventory today.", labels=labels)
        prov = GaugeMetricFamily(COMMUNES_PROVISIONED, "Active communes with a TSLCD circuit.", labels=labels)
        conn = GaugeMetricFamily(COMMUNES_CONNECTED, "Active communes up now.", labels=labels)
        rate = GaugeMetricFamily(CONNECTION_RATE, "Connected / active communes (area \"\" = province).",
                                 labels=labels)
        for r in snap.rates:
            key = [r.province, r.area]
            communes.add_metric(key, r.communes)
            prov.add_metric(key, r.provisioned)
            conn.add_metric(key, r.connected)
            rate.add_metric(key, r.rate)
        yield from (communes, prov, conn, rate)
        yield GaugeMetricFamily(CONNECTION_TARGET, "The plan's target connection rate.", value=snap.target)
        yield from snmp_families(snap.nodes)


@dataclass(frozen=True, slots=True)
class Exposition:
    """One rendered text exposition, plain and gzipped."""

    text: bytes
    gzipped: bytes


def render_snapshot(snapshot: Snapshot) -> Exposition:
    """Render the per-node families once per snapshot (CPU-heavy: call it from a worker thread)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    text = generate_latest(registry)
    return Exposition(text, gzip.compress(text, compresslevel=5))


class SelfMetrics:
    """The monitor's own small, live metrics; rendered on every scrape (cheap)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.sweep_duration = Gauge(SWEEP_DURATION, "Wall time of the last sweep.", ["probe"],
                                    registry=self.registry)
        self.sweep_last = Gauge(SWEEP_LAST, "When the last sweep finished.", ["probe"], registry=self.registry)
        self.sweep_interval = Gauge(SWEEP_INTERVAL, "Configured seconds between sweep starts.", ["probe"],
                                    registry=self.registry)
        self.probes = Counter(PROBES, "Probes sent, by result.", ["probe", "result"], registry=self.registry)
        self.inventory_nodes = Gauge(INVENTORY_NODES, "Nodes in the loaded inventory.", registry=self.registry)
        self.reload_ok = Gauge(INVENTORY_RELOAD_OK, "1 when the last inventory (re)load succeeded.",
                               registry=self.registry)
        self.inventory_warnings = Gauge(INVENTORY_WARNINGS, "Warnings of the loaded inventory (e.g. commune codes "
                                        "the bundled list of units lacks); its nodes are monitored all the same.",
                                        registry=self.registry)
        ProcessCollector(registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsCache:
    """Holds the latest rendered exposition; a scrape costs a memory copy, not a render."""

    def __init__(self, self_metrics: SelfMetrics) -> None:
        self._lock = threading.Lock()
        self._nodes = Exposition(b"", gzip.compress(b""))
        self.self_metrics = self_metrics

    def update(self, exposition: Exposition) -> None:
        with self._lock:
            self._nodes = exposition

    def body(self, *, gzipped: bool) -> bytes:
        """The whole exposition: cached node families, then the live self-monitoring ones.

        Two gzip members concatenated are one valid gzip stream, so the big part is
        compressed once per snapshot, not once per scrape.
        """
        with self._lock:
            nodes = self._nodes
        live = self.self_metrics.render()
        if gzipped:
            return nodes.gzipped + gzip.compress(live, compresslevel=5)
        return nodes.text + live


def snmp_families(nodes: Iterable[NodeStatus]) -> Iterator[Metric]:
    """The SNMP metric families of a snapshot's nodes (those with an ``snmp`` status); labels: code only,
    plus the bounded ``reason`` and ``direction``. For ``SnapshotCollector.collect``: ``yield from``."""
    code = ["code"]
    up = GaugeMetricFamily(SNMP_UP, "1 when the node's last SNMP poll read everything asked.", labels=code)
    reason = GaugeMetricFamily(SNMP_REASON, "1 for the outcome of the node's last SNMP poll (reason=\"ok\" "
                                            "when up); a bounded set of reasons.", labels=["code", "reason"])
    ping_only = GaugeMetricFamily(SNMP_PING_ONLY, "1 when the node answers ping but not SNMP.", labels=code)
    last = GaugeMetricFamily(SNMP_LAST_POLL, "When the node was last polled over SNMP.", labels=code)
    uptime = GaugeMetricFamily(SNMP_SYS_UPTIME, "The agent's sysUpTime (wraps of the 32-bit TimeTicks undone).",
                               labels=code)
    reboots = CounterMetricFamily(NODE_REBOOTS, "Agent restarts seen (sysUpTime went back) since the monitor "
                                                "started.", labels=code)
    last_reboot = GaugeMetricFamily(NODE_LAST_REBOOT, "When the agent last restarted, by the monitor's clock.",
                                    labels=code)
    oper = GaugeMetricFamily(UPLINK_OPER_UP, "1 when the uplink's ifOperStatus is up(1).", labels=code)
    rx = CounterMetricFamily(UPLINK_RX, "Bytes received on the uplink (never decreasing across agent reboots "
                                        "and counter wraps).", labels=code)
    tx = CounterMetricFamily(UPLINK_TX, "Bytes sent on the uplink (never decreasing across agent reboots and "
                                        "counter wraps).", labels=code)
    errors = CounterMetricFamily(UPLINK_ERRORS, "Uplink packets with errors (ifInErrors, ifOutErrors).",
                                 labels=["code", "direction"])
    today = GaugeMetricFamily(UPLINK_TODAY, "Uplink bytes in + out since local midnight (docs/design.md: in use).",
                              labels=code)
    tally: Tally[str] = Tally()
    for ns in nodes:
        s = ns.snmp
        if s is None:
            continue
        c = [ns.node.code]
        tally[s.reason] += 1
        up.add_metric(c, 1.0 if s.up else 0.0)
        reason.add_metric([ns.node.code, s.reason], 1.0)
        ping_only.add_metric(c, 1.0 if ns.state == "up" and not s.up else 0.0)
        if s.polled_at is not None:
            last.add_metric(c, s.polled_at)
        if s.uptime_s is not None:
            uptime.add_metric(c, s.uptime_s)
        reboots.add_metric(c, float(s.reboots))
        if s.last_reboot_at is not None:
            last_reboot.add_metric(c, s.last_reboot_at)
        if s.uplink_oper_up is not None:
            oper.add_metric(c, 1.0 if s.uplink_oper_up else 0.0)
        if s.rx_bytes_total is not None and s.tx_bytes_total is not None:
            rx.add_metric(c, float(s.rx_bytes_total))
            tx.add_metric(c, float(s.tx_bytes_total))
        if s.rx_errors_total is not None:
            errors.add_metric([ns.node.code, "receive"], float(s.rx_errors_total))
        if s.tx_errors_total is not None:
            errors.add_metric([ns.node.code, "transmit"], float(s.tx_errors_total))
        if s.bytes_today is not None:
            today.add_metric(c, float(s.bytes_today))
    yield from (up, reason, ping_only, last, uptime, reboots, last_reboot, oper, rx, tx, errors, today)
    nodes_by_reason = GaugeMetricFamily(SNMP_NODES, "Nodes by the outcome of their last SNMP poll.",
                                        labels=["reason"])
    for r in REASONS:
        nodes_by_reason.add_metric([r.value], float(tally.get(r.value, 0)))
    yield nodes_by_reason


class HistorySource(Protocol):
    """What the history collector reads of the recorder (monitor.runtime.recorder.Recorder): cached values only."""

    @property
    def tz(self) -> tzinfo: ...

    sealed_through: date | None
    write_failures: int
    last_write_s: float

    def recent(self) -> RecentRates | None: ...


class HistoryCollector:
    """Day rates (today, yesterday, last 30 days), coverage and store health; reads cached values only."""

    def __init__(self, source: HistorySource) -> None:
        self._rec = source

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        rec = self._rec
        labels = ["province", "area", "period"]
        conn = GaugeMetricFamily(RATE_CONNECTED, "Share of active communes connected (availability that day >= "
                                 "rates.connected_min_availability); last_30d is the mean of daily rates.",
                                 labels=labels)
        used = GaugeMetricFamily(RATE_IN_USE, "Share of active communes connected and with uplink traffic >= "
                                 "rates.in_use_min_bytes that day.", labels=labels)
        prov = GaugeMetricFamily(RATE_PROVISIONED, "Share of active communes with a TSLCD circuit that day.",
                                 labels=labels)
        cov = GaugeMetricFamily(MONITOR_COVERAGE, "Share of the period the monitor was observing.",
                                labels=["period"])
        recent = rec.recent()
        if recent is not None:
            periods: list[tuple[str, Sequence[RateRow] | Sequence[PeriodRate], float | None]] = [
                ("today", recent.today.rates, recent.today.coverage)]
            if recent.days:
                y = recent.days[-1]
                periods.append(("yesterday", y.rates, y.coverage))
                periods.append(("last_30d", recent.period,
                                sum(s.coverage for s in recent.days) / len(recent.days)))
            for period, rates, coverage in periods:
                if not coverage:
                    # Nothing observed yet (just started): a rate of 0 would be a false alarm.
                    rates = ()
                for r in rates:
                    key = [r.province, r.area, period]
                    # No data (nothing of the group observed): no series, never a 0 that would alarm.
                    if r.connected_rate is not None:
                        conn.add_metric(key, r.connected_rate)
                    if r.in_use_rate is not None:
                        used.add_metric(key, r.in_use_rate)
                    prov.add_metric(key, r.provisioned_rate)
                if coverage is not None:
                    cov.add_metric([period], coverage)
        yield from (conn, used, prov, cov)
        if rec.sealed_through is not None:
            yield GaugeMetricFamily(HISTORY_SEALED, "End of the last day sealed into the hash chain.",
                                    value=day_span(rec.sealed_through, rec.tz)[1])
        yield CounterMetricFamily(HISTORY_WRITE_FAILURES, "History writes that failed (retried with the next "
                                  "sweep).", value=rec.write_failures)
        yield GaugeMetricFamily(HISTORY_WRITE_DURATION, "Wall time of the last sweep's history write.",
                                value=rec.last_write_s)
