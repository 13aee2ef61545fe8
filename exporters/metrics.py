"""Every metric name, the snapshot Collector, and the cached exposition that /metrics serves."""

from __future__ import annotations

import gzip
import io
import math
import threading
import zlib
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, tzinfo
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.utils import floatToGoString

from exporters.carriers import carrier_rows
from monitor.core.history import PeriodRate, day_span
from monitor.core.rates import RateRow
from monitor.core.snapshot import NodeStatus, RecentRates, Snapshot
from monitor.core.snmp import REASONS

# Per node, labelled by code only; names and grouping come from NODE_INFO (docs/design.md).
NODE_INFO = "tslcd_node_info"
NODE_UP = "tslcd_node_up"
NODE_STATE = "tslcd_node_state"
NODE_STATE_CHANGES = "tslcd_node_state_changes_total"
NODE_LAST_CHANGE = "tslcd_node_last_change_timestamp_seconds"
NODE_FLAPPING = "tslcd_node_flapping"
NODE_IPV6_UP = "tslcd_node_ipv6_up"
NODE_UNREACHABLE_CAUSE = "tslcd_node_unreachable_cause"
NODE_OUTAGE_CAUSE = "tslcd_node_outage_cause"
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
COMMUNES_IPV6_READY = "tslcd_communes_ipv6_ready"
IPV6_READINESS = "tslcd_ipv6_readiness_ratio"
# Per province and carrier (exporters/carriers.py; carrier "" = none named in the inventory).
CARRIER_COMMUNES = "tslcd_carrier_communes"
CARRIER_OBSERVED = "tslcd_carrier_communes_observed"
CARRIER_CUT_OFF = "tslcd_carrier_communes_cut_off"
# Day and period rates from the history store (monitor/recorder.py).
RATE_CONNECTED = "tslcd_connected_day_rate_ratio"
RATE_IN_USE = "tslcd_in_use_day_rate_ratio"
RATE_PROVISIONED = "tslcd_provisioned_day_rate_ratio"
RATE_IPV6 = "tslcd_ipv6_readiness_day_rate_ratio"
RATE_CONNECTED_X = "tslcd_connected_day_rate_with_exclusions_ratio"
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
POLLER_ACTIVE = "tslcd_poller_active"
SNMP_WORKER_RESTARTS = "tslcd_snmp_worker_restarts_total"

# SNMP, per node (monitor/probes/snmp polls; snmp_samples below exports).
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


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: a dict key on every sample
class Family:
    """One metric family of the snapshot: name, type, help and label names (spelled once, here)."""

    name: str
    kind: str  # "gauge" or "counter"
    help: str
    labels: tuple[str, ...] = ("code",)

    def header(self) -> str:
        """The family's ``# HELP`` and ``# TYPE`` lines, as prometheus_client writes them."""
        text = self.help.replace("\\", r"\\").replace("\n", r"\n")
        return f"# HELP {self.name} {text}\n# TYPE {self.name} {self.kind}\n"

    def empty(self) -> GaugeMetricFamily | CounterMetricFamily:
        """The family as prometheus_client's type, to add samples to (the reference collector)."""
        cls = CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily
        return cls(self.name, self.help, labels=list(self.labels))


F_INFO = Family(NODE_INFO, "gauge", "Node identity; join on code for names and areas.",
                ("code", "name", "kind", "province", "area", "address", "parent", "lat", "lon"))
F_UP = Family(NODE_UP, "gauge", "1 when the node is up (0 for any other state, or no circuit).")
F_STATE = Family(NODE_STATE, "gauge", "1 for the node's current state; the other states have no series.",
                 ("code", "state"))
F_CHANGES = Family(NODE_STATE_CHANGES, "counter", "Changes of state since the monitor started.")
F_LAST = Family(NODE_LAST_CHANGE, "gauge", "When the node last changed state.")
F_FLAP = Family(NODE_FLAPPING, "gauge", "1 when the node changed state too often recently.")
F_CAUSE = Family(NODE_UNREACHABLE_CAUSE, "gauge", "1 for an unreachable node, labelled with the topmost upstream "
                 "node that is down (count by cause: communes cut off behind it).", ("code", "cause"))
F_OUTAGE = Family(NODE_OUTAGE_CAUSE, "gauge", "1 for a node that is down or unreachable, labelled with why as far as "
                  "ICMP and SNMP tell: power, line, filtered, upstream or unknown (docs/design.md).", ("code", "cause"))
F_V6 = Family(NODE_IPV6_UP, "gauge", "1 when the node's IPv6 address answers (dual-stack nodes).")
F_RTT = Family(ICMP_RTT, "gauge", "Mean echo round trip of the last sweep.")
F_RTT_MIN = Family(ICMP_RTT_MIN, "gauge", "Minimum echo round trip of the last sweep.")
F_RTT_MAX = Family(ICMP_RTT_MAX, "gauge", "Maximum echo round trip of the last sweep.")
F_JITTER = Family(ICMP_JITTER, "gauge", "Mean difference of consecutive round trips.")
F_LOSS = Family(ICMP_LOSS, "gauge", "Share of echoes lost in the last sweep.")
_AREA = ("province", "area")
F_COMMUNES = Family(COMMUNES, "gauge", "Communes active in the inventory today.", _AREA)
F_PROVISIONED = Family(COMMUNES_PROVISIONED, "gauge", "Active communes with a TSLCD circuit.", _AREA)
F_CONNECTED = Family(COMMUNES_CONNECTED, "gauge", "Active communes up now.", _AREA)
F_RATE = Family(CONNECTION_RATE, "gauge", "Connected / active communes (area \"\" = province).", _AREA)
F_TARGET = Family(CONNECTION_TARGET, "gauge", "The plan's target connection rate.", ())
F_IPV6_READY = Family(COMMUNES_IPV6_READY, "gauge", "Active communes whose IPv6 address (address6) answered the "
                      "last sweep.", _AREA)
F_IPV6_RATE = Family(IPV6_READINESS, "gauge", "IPv6 readiness now: communes whose IPv6 address answered / active "
                     "communes (docs/design.md).", _AREA)
_CARRIER = ("province", "carrier")
F_CARRIER = Family(CARRIER_COMMUNES, "gauge", "Active communes with a TSLCD circuit, by the carrier the inventory "
                   "names (carrier \"\" = none named).", _CARRIER)
F_CARRIER_OBSERVED = Family(CARRIER_OBSERVED, "gauge", "Of them, those observed now: up, down or unreachable "
                            "(unknown and maintenance are not).", _CARRIER)
F_CARRIER_CUT_OFF = Family(CARRIER_CUT_OFF, "gauge", "Of them, those cut off now: down or unreachable. A carrier's "
                           "availability over a period: 1 - sum_over_time(cut off) / sum_over_time(observed).",
                           _CARRIER)
F_SNMP_UP = Family(SNMP_UP, "gauge", "1 when the node's last SNMP poll read everything asked.")
F_SNMP_REASON = Family(SNMP_REASON, "gauge", "1 for the outcome of the node's last SNMP poll (reason=\"ok\" "
                       "when up); a bounded set of reasons.", ("code", "reason"))
F_PING_ONLY = Family(SNMP_PING_ONLY, "gauge", "1 when the node answers ping but not SNMP.")
F_SNMP_LAST = Family(SNMP_LAST_POLL, "gauge", "When the node was last polled over SNMP.")
F_UPTIME = Family(SNMP_SYS_UPTIME, "gauge", "The agent's sysUpTime (wraps of the 32-bit TimeTicks undone).")
F_REBOOTS = Family(NODE_REBOOTS, "counter", "Agent restarts seen (sysUpTime went back) since the monitor started.")
F_LAST_REBOOT = Family(NODE_LAST_REBOOT, "gauge", "When the agent last restarted, by the monitor's clock.")
F_OPER = Family(UPLINK_OPER_UP, "gauge", "1 when the uplink's ifOperStatus is up(1).")
F_RX = Family(UPLINK_RX, "counter", "Bytes received on the uplink (never decreasing across agent reboots and "
              "counter wraps).")
F_TX = Family(UPLINK_TX, "counter", "Bytes sent on the uplink (never decreasing across agent reboots and counter "
              "wraps).")
F_ERRORS = Family(UPLINK_ERRORS, "counter", "Uplink packets with errors (ifInErrors, ifOutErrors).",
                  ("code", "direction"))
F_TODAY = Family(UPLINK_TODAY, "gauge", "Uplink bytes in + out since local midnight (docs/design.md: in use).")
F_SNMP_NODES = Family(SNMP_NODES, "gauge", "Nodes by the outcome of their last SNMP poll.", ("reason",))

# The exposition comes in two parts, each rendered when its data changes: "nodes" after every ICMP sweep
# (states, round trips, rates, and ping-only, which needs the state), "snmp" after every SNMP poll.
NODE_FAMILIES = (F_INFO, F_UP, F_STATE, F_CHANGES, F_LAST, F_FLAP, F_CAUSE, F_OUTAGE, F_V6, F_RTT, F_RTT_MIN,
                 F_RTT_MAX, F_JITTER, F_LOSS, F_PING_ONLY, F_COMMUNES, F_PROVISIONED, F_CONNECTED, F_RATE, F_TARGET,
                 F_IPV6_READY, F_IPV6_RATE, F_CARRIER, F_CARRIER_OBSERVED, F_CARRIER_CUT_OFF)
SNMP_FAMILIES = (F_SNMP_UP, F_SNMP_REASON, F_SNMP_LAST, F_UPTIME, F_REBOOTS, F_LAST_REBOOT, F_OPER, F_RX, F_TX,
                 F_ERRORS, F_TODAY, F_SNMP_NODES)
PARTS = ("nodes", "snmp")

Sample = tuple[Family, tuple[str, ...], float]


def _lat_lon(v: float | None) -> str:
    return "" if v is None else repr(v)


def snapshot_samples(snap: Snapshot) -> Iterator[Sample]:
    """Every sample of the snapshot's families, in exposition order within each family (one definition of what
    /metrics says; both renderers below take it from here)."""
    yield from node_samples(snap)
    yield from snmp_samples(snap.nodes)


def ping_only(snap: Snapshot) -> frozenset[str]:
    """Codes of the nodes up over ICMP whose last SNMP poll failed (``tslcd_snmp_ping_only`` 1, in the "nodes"
    part since it follows the state): a poll that changes this set renders that part again."""
    return frozenset(ns.node.code for ns in snap.nodes if ns.snmp is not None and ns.state == "up" and not ns.snmp.up)


def node_samples(snap: Snapshot) -> Iterator[Sample]:
    """The samples of the "nodes" part. ``tslcd_node_state`` has one series per node: its current state (the
    dashboards and rules select it by the value of ``state``; the other states carried only zeros)."""
    for ns in snap.nodes:
        n = ns.node
        code = (n.code,)
        yield F_INFO, (n.code, n.name, n.kind, n.province, n.area, n.address, n.parent or "", _lat_lon(n.lat),
                       _lat_lon(n.lon)), 1.0
        yield F_UP, code, 1.0 if ns.state == "up" else 0.0
        if ns.snmp is not None:
            yield F_PING_ONLY, code, 1.0 if ns.state == "up" and not ns.snmp.up else 0.0
        if ns.state == "no_circuit":
            continue
        yield F_STATE, (n.code, ns.state), 1.0
        yield F_CHANGES, code, float(ns.changes)
        if ns.last_change is not None:
            yield F_LAST, code, ns.last_change
        yield F_FLAP, code, 1.0 if ns.flapping else 0.0
        if ns.state == "unreachable" and ns.cause:
            yield F_CAUSE, (n.code, ns.cause), 1.0
        if ns.outage_cause is not None:
            yield F_OUTAGE, (n.code, ns.outage_cause), 1.0
        if ns.ipv6_ok is not None:
            yield F_V6, code, 1.0 if ns.ipv6_ok else 0.0
        if ns.loss is not None:
            yield F_LOSS, code, ns.loss
        if ns.rtt_avg is not None:
            yield F_RTT, code, ns.rtt_avg
            yield F_RTT_MIN, code, ns.rtt_min or 0.0
            yield F_RTT_MAX, code, ns.rtt_max or 0.0
            yield F_JITTER, code, ns.jitter or 0.0
    for r in snap.rates:
        key = (r.province, r.area)
        yield F_COMMUNES, key, float(r.communes)
        yield F_PROVISIONED, key, float(r.provisioned)
        yield F_CONNECTED, key, float(r.connected)
        yield F_RATE, key, r.rate
        yield F_IPV6_READY, key, float(r.ipv6_ready)
        if r.ipv6_rate is not None:
            yield F_IPV6_RATE, key, r.ipv6_rate
    yield F_TARGET, (), snap.target
    # A standby's snapshot has no node: no carrier series either (the active poller's are the figures).
    for c in carrier_rows(snap.nodes):
        key = (c.province, c.carrier)
        yield F_CARRIER, key, float(c.communes)
        yield F_CARRIER_OBSERVED, key, float(c.observed)
        yield F_CARRIER_CUT_OFF, key, float(c.cut_off)


def snmp_samples(nodes: Iterable[NodeStatus]) -> Iterator[Sample]:
    """The SNMP samples of a snapshot's nodes (those with an ``snmp`` status); labels: code only, plus the
    bounded ``reason`` and ``direction``."""
    tally: Tally[str] = Tally()
    for ns in nodes:
        s = ns.snmp
        if s is None:
            continue
        code = ns.node.code
        c = (code,)
        tally[s.reason] += 1
        yield F_SNMP_UP, c, 1.0 if s.up else 0.0
        yield F_SNMP_REASON, (code, s.reason), 1.0
        if s.polled_at is not None:
            yield F_SNMP_LAST, c, s.polled_at
        if s.uptime_s is not None:
            yield F_UPTIME, c, s.uptime_s
        yield F_REBOOTS, c, float(s.reboots)
        if s.last_reboot_at is not None:
            yield F_LAST_REBOOT, c, s.last_reboot_at
        if s.uplink_oper_up is not None:
            yield F_OPER, c, 1.0 if s.uplink_oper_up else 0.0
        if s.rx_bytes_total is not None and s.tx_bytes_total is not None:
            yield F_RX, c, float(s.rx_bytes_total)
            yield F_TX, c, float(s.tx_bytes_total)
        if s.rx_errors_total is not None:
            yield F_ERRORS, (code, "receive"), float(s.rx_errors_total)
        if s.tx_errors_total is not None:
            yield F_ERRORS, (code, "transmit"), float(s.tx_errors_total)
        if s.bytes_today is not None:
            yield F_TODAY, c, float(s.bytes_today)
    for r in REASONS:
        yield F_SNMP_NODES, (r.value,), float(tally.get(r.value, 0))


_ORDER = (*NODE_FAMILIES, *SNMP_FAMILIES)


class SnapshotCollector:
    """The snapshot's families through prometheus_client's own types: the reference that ``render_snapshot``
    is tested against, and the way peers render (bench/metrics_scrape.py). The monitor itself renders
    with ``render_snapshot``."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snap = snapshot

    def describe(self) -> list[Metric]:
        # Registration does no work (collect() is not called at register time).
        return []

    def collect(self) -> Iterator[Metric]:
        families = {f: f.empty() for f in _ORDER}
        for family, labels, value in snapshot_samples(self._snap):
            if family is F_TARGET:
                families[family].add_sample(family.name, {}, value)
            else:
                families[family].add_metric(list(labels), value)
        yield from families.values()


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


_ONE, _ZERO = " 1.0\n", " 0.0\n"
_LOOK = 4096  # samples between looks at the families' buffers (Renderer._format)
_CHUNK = 1 << 16  # characters a family's buffer holds before it hands them on
_WBITS = 16 + 13  # gzip framing (16), an 8 KB window (13): a compressor per family, 64 KB of memory each
_CODE = ("code",)


class Renderer:
    """Writes the text exposition of a snapshot straight into one buffer: each node's label sets escaped once
    and kept (its ``{code="..."}`` and its info line change only with the inventory), values formatted as
    prometheus_client formats them, no intermediate objects. The output equals prometheus_client's rendering
    of ``SnapshotCollector`` (a test checks) at a fraction of its cost (bench/metrics_scrape.py)."""

    def __init__(self) -> None:
        self._labels: dict[tuple[str, ...], str] = {}  # label sets of the other families (node info, areas...)
        self._code_sets: dict[str, str] = {}  # code -> '{code="..."}'
        self._code_pairs: dict[str, str] = {}  # code -> 'code="..."', for families labelled by code and one more
        self._pairs: dict[tuple[str, str], str] = {}  # (family, value of its other label) -> 'name="value"'

    def _label_set(self, family: Family, values: tuple[str, ...], key: tuple[str, ...]) -> str:
        if not values:
            text = ""
        else:
            pairs = sorted(zip(family.labels, values, strict=True))  # by name, as prometheus_client writes them
            text = "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"
        self._labels[key] = text
        return text

    def render(self, snap: Snapshot, part: str | None = None) -> bytes:
        """The exposition of the snapshot's families: all of them, or those of one of PARTS."""
        return b"".join(self.texts(snap, part))

    def _of(self, snap: Snapshot, part: str | None) -> tuple[Iterable[Sample], Sequence[Family]]:
        """The samples and families of the snapshot, or of one of PARTS."""
        if len(self._labels) + len(self._code_sets) > 4 * (len(snap.nodes) + 100):  # nodes long gone: afresh
            self._labels.clear()
            self._code_sets.clear()
            self._code_pairs.clear()
            self._pairs.clear()
        if part == "nodes":
            return node_samples(snap), NODE_FAMILIES
        if part == "snmp":
            return snmp_samples(snap.nodes), SNMP_FAMILIES
        return snapshot_samples(snap), _ORDER

    def texts(self, snap: Snapshot, part: str | None = None) -> Iterator[bytes]:
        """``render``, one family at a time (``family_texts``)."""
        return self.family_texts(*self._of(snap, part))

    def gzipped(self, snap: Snapshot, part: str | None = None) -> bytes:
        """``render`` gzipped, compressed as it is written: one gzip member per family (members concatenated
        are one gzip stream), each family's text handed to its compressor a chunk at a time.

        The samples come node by node, each node's in every family; a buffer per family held the whole plain
        text (14 MB of the nodes part at 20,000 nodes) and its copies until the end: 45 MB above the monitor's
        steady memory at every render. Now a family holds about a chunk of text, and a compressor with an
        8 KB window (``_WBITS``: about 64 KB each; it compresses these lines as well as a 32 KB one): 3.7 MB."""
        members: dict[Family, list[bytes]] = {}
        compressors: dict[Family, Any] = {}

        def hand_on(family: Family, text: str) -> None:
            z = compressors.get(family)
            if z is None:
                z = compressors[family] = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, _WBITS, 6)
                members[family] = [z.compress(family.header().encode())]
            members[family].append(z.compress(text.encode()))

        samples, families = self._of(snap, part)
        self._format(samples, families, hand_on)
        out: list[bytes] = []
        for family in families:
            out += members.pop(family)
            out.append(compressors.pop(family).flush())
        return b"".join(out)

    def render_samples(self, samples: Iterable[Sample], families: Sequence[Family] = _ORDER) -> bytes:
        """The exposition of ``families`` (a header each, also without samples) with these samples."""
        return b"".join(self.family_texts(samples, families))

    def family_texts(self, samples: Iterable[Sample], families: Sequence[Family] = _ORDER) -> Iterator[bytes]:
        """The exposition of ``families``, one family at a time (its header, then its samples), as UTF-8."""
        texts: dict[Family, list[str]] = {f: [f.header()] for f in families}  # also for a family without samples
        self._format(samples, families, lambda family, text: texts[family].append(text))
        for family in families:
            yield "".join(texts.pop(family)).encode()

    def _format(self, samples: Iterable[Sample], families: Sequence[Family],
                hand_on: Callable[[Family, str], None]) -> None:
        """Format the samples, each family's lines into a StringIO of its own (one growing buffer, not a string
        per line); every ``_LOOK`` samples a family with more than ``_CHUNK`` characters hands them on
        (``hand_on(family, text)``) and starts a new buffer, and at the end every family hands on the rest
        (possibly empty), in the order of ``families``."""
        bufs: dict[Family, io.StringIO] = {f: io.StringIO() for f in families}
        writers = {f: b.write for f, b in bufs.items()}
        look = _LOOK
        cached = self._labels.get
        code_sets, code_pairs, pairs = self._code_sets, self._code_pairs, self._pairs
        for family, values, value in samples:
            # One ``{code="..."}`` per node for every family labelled by code only; a family labelled by code
            # and one bounded label (state, reason, cause, direction) joins the node's ``code="..."`` and the
            # other label's pair, both kept, rather than keeping a label set per node and value.
            labels = family.labels
            if labels == _CODE:
                label_set = code_sets.get(values[0])
                if label_set is None:
                    label_set = code_sets[values[0]] = '{code="' + _escape(values[0]) + '"}'
            elif len(labels) == 2 and labels[0] == "code":
                code_pair = code_pairs.get(values[0])
                if code_pair is None:
                    code_pair = code_pairs[values[0]] = 'code="' + _escape(values[0]) + '"'
                other = pairs.get((family.name, values[1]))
                if other is None:
                    other = pairs[(family.name, values[1])] = f'{labels[1]}="{_escape(values[1])}"'
                # by name, as prometheus_client writes them ("cause" before "code")
                label_set = ("{" + other + "," + code_pair + "}" if labels[1] < "code"
                             else "{" + code_pair + "," + other + "}")
            else:
                key = (family.name, *values)
                label_set = cached(key)
                if label_set is None:
                    label_set = self._label_set(family, values, key)
            if value == 1.0:
                v = _ONE
            elif value == 0.0 and math.copysign(1.0, value) > 0:
                v = _ZERO
            else:
                text = repr(value)
                if text[-1] in "fn":  # inf, -inf, nan
                    text = floatToGoString(value)  # type: ignore[no-untyped-call]
                elif value > 0 and (dot := text.find(".")) > 6:  # Go's exponent from 1e6 up, as prometheus_client
                    text = f"{text[0]}.{text[1:dot]}{text[dot + 1:]}".rstrip("0.") + f"e+{dot - 1:02d}"
                v = f" {text}\n"
            writers[family](family.name + label_set + v)
            look -= 1
            if not look:
                look = _LOOK
                for f, buf in bufs.items():
                    if buf.tell() > _CHUNK:
                        hand_on(f, buf.getvalue())
                        bufs[f] = buf = io.StringIO()
                        writers[f] = buf.write
        del writers
        for family in families:
            hand_on(family, bufs.pop(family).getvalue())


_RENDERER = Renderer()
_RENDER_LOCK = threading.Lock()
GZIP_LEVEL = 1  # compressed once per render, not per scrape; level 1 costs half of level 5 for ~15 % more bytes


@dataclass(frozen=True, slots=True)
class Exposition:
    """One rendered text exposition, kept gzipped only (Prometheus asks for gzip; the 27 MB of plain text of
    20,000 nodes are made again, by decompressing, for the rare scrape that does not)."""

    gzipped: bytes

    @property
    def text(self) -> bytes:
        return gzip.decompress(self.gzipped)


def render_snapshot(snapshot: Snapshot, part: str | None = None) -> Exposition:
    """Render the snapshot's families, or one part of them (PARTS), once per publication, in a worker thread:
    20,000 nodes take a fraction of a second (docs/benchmarks.md), never a scrape's time."""
    with _RENDER_LOCK:
        return Exposition(_RENDERER.gzipped(snapshot, part))


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
        self.poller_active = Gauge(POLLER_ACTIVE, "1 when this poller probes and writes its nodes; 0 for a standby "
                                   "(config: standby), which exports no node series until it takes over.",
                                   registry=self.registry)
        self.poller_active.set(1)
        self.snmp_worker_restarts = Counter(SNMP_WORKER_RESTARTS.removesuffix("_total"),
                                            "SNMP worker processes started again after one died or overran (config: "
                                            "snmp.worker).", registry=self.registry)
        ProcessCollector(registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsCache:
    """Holds the latest rendered parts of the exposition; a scrape costs a memory copy, not a render."""

    def __init__(self, self_metrics: SelfMetrics) -> None:
        self._lock = threading.Lock()
        empty = Exposition(gzip.compress(b""))
        self._parts = {part: empty for part in PARTS}
        self.self_metrics = self_metrics

    def update(self, exposition: Exposition, part: str) -> None:
        """Keep ``exposition`` as one of the PARTS."""
        with self._lock:
            self._parts[part] = exposition

    def body(self, *, gzipped: bool) -> bytes:
        """The whole exposition: the cached parts, then the live self-monitoring families.

        Gzip members concatenated are one valid gzip stream, so each part is compressed once per
        render, not once per scrape.
        """
        with self._lock:
            parts = list(self._parts.values())
        live = self.self_metrics.render()
        if gzipped:
            return b"".join(p.gzipped for p in parts) + gzip.compress(live, compresslevel=GZIP_LEVEL)
        return b"".join(gzip.decompress(p.gzipped) for p in parts) + live


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
        ipv6 = GaugeMetricFamily(RATE_IPV6, "IPv6 readiness: share of active communes whose IPv6 address answered "
                                 "that day (no series without data); last_30d is the mean of daily rates.",
                                 labels=labels)
        conn_x = GaugeMetricFamily(RATE_CONNECTED_X, "The connected rate counted again with the approved exclusions "
                                   "(docs/design.md); only for periods an exclusion touches, beside the measured one.",
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
                    if r.ipv6_rate is not None:
                        ipv6.add_metric(key, r.ipv6_rate)
                if coverage is not None:
                    cov.add_metric([period], coverage)
            for period, rates_x in (("today", recent.today.rates_x if recent.today.coverage else None),
                                    ("yesterday", recent.days[-1].rates_x if recent.days else None),
                                    ("last_30d", recent.period_x)):
                for rx in rates_x or ():
                    if rx.connected_rate is not None:
                        conn_x.add_metric([rx.province, rx.area, period], rx.connected_rate)
        yield from (conn, used, prov, ipv6, conn_x, cov)
        if rec.sealed_through is not None:
            yield GaugeMetricFamily(HISTORY_SEALED, "End of the last day sealed into the hash chain.",
                                    value=day_span(rec.sealed_through, rec.tz)[1])
        yield CounterMetricFamily(HISTORY_WRITE_FAILURES, "History writes that failed (retried with the next "
                                  "sweep).", value=rec.write_failures)
        yield GaugeMetricFamily(HISTORY_WRITE_DURATION, "Wall time of the last sweep's history write.",
                                value=rec.last_write_s)
