"""SNMP readings, and what the service folds from them: reasons, tracks, deltas, status. Pure: no pysnmp, no I/O.

A poll (monitor.probes.snmp) returns one ``SnmpReading`` per node; the service folds readings
into ``SnmpTrack``s with monitor.core.counters (reboots, monotonic totals, daily traffic), takes
the uplink deltas the history store records, and shows each node's ``SnmpStatus``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from enum import StrEnum
from typing import TYPE_CHECKING

from monitor.core import counters
from monitor.core.counters import NodeCounters, Sample

if TYPE_CHECKING:
    from inventory.model import Node

OPER_STATUS = {1: "up", 2: "down", 3: "testing", 4: "unknown", 5: "dormant", 6: "notPresent", 7: "lowerLayerDown"}

class Reason(StrEnum):
    """Why a poll failed (a bounded label value: tslcd_snmp_reason{reason})."""

    OK = "ok"
    TIMEOUT = "timeout"  # nothing answered (for v2c, a wrong community looks exactly like this)
    WRONG_COMMUNITY = "wrong_community"  # v2c: the agent answers v3 discovery but ignores our community
    AUTH_FAILURE = "auth_failure"  # v3: usmStatsWrongDigests (wrong auth key or protocol)
    UNKNOWN_USER = "unknown_user"  # v3: usmStatsUnknownUserNames
    PRIVACY_FAILURE = "privacy_failure"  # v3: usmStatsDecryptionErrors, or silence after discovery (authPriv)
    V3_REPORT = "v3_report"  # v3: another USM report (unsupported security level, time window, engine ID)
    NO_SUCH_OBJECT = "no_such_object"  # a required object is noSuchObject/noSuchInstance/endOfMibView
    UPLINK_NOT_FOUND = "uplink_not_found"  # no ifName/ifAlias/ifDescr is the node's uplink
    UNEXPECTED_TYPE = "unexpected_type"  # e.g. sysUpTime that is not TimeTicks
    AGENT_ERROR = "agent_error"  # the agent answered an error-status (authorizationError, genErr, tooBig...)
    LOCAL_ERROR = "local_error"  # our side: no profile, bad address, ciphering unavailable
    NOT_POLLED = "not_polled"  # the service did not poll it (e.g. the node does not answer ping)


REASONS: tuple[Reason, ...] = tuple(Reason)

@dataclass(frozen=True, slots=True)
class UplinkReading:
    """The uplink interface as read in one poll."""

    name: str  # the inventory's uplink name
    if_index: int
    matched_by: str  # ifName, ifAlias or ifDescr
    oper_status: int
    bits: int  # 64 (ifHC*Octets) or 32 (ifIn/OutOctets)
    in_octets: int
    out_octets: int
    in_errors: int | None = None
    out_errors: int | None = None

    @property
    def oper_up(self) -> bool:
        return self.oper_status == 1

    @property
    def oper_text(self) -> str:
        return OPER_STATUS.get(self.oper_status, str(self.oper_status))


@dataclass(frozen=True, slots=True)
class SnmpReading:
    """One node's poll: what was read, or why it failed (``reason`` and a precise, secret-free ``detail``).

    A failed reading may still carry what was read before the failure (e.g. sysUpTime
    when the uplink is not found).
    """

    code: str
    at: float
    reason: Reason
    detail: str = ""
    uptime_ticks: int | None = None
    sys_name: str | None = None
    sys_descr: str | None = None  # only when (re)read by this poll
    sys_object_id: str | None = None  # idem
    uplink: UplinkReading | None = None
    requests: int = 0
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.reason is Reason.OK

    def sample(self) -> Sample | None:
        """The plain values monitor.core.counters folds, or None when sysUpTime was not read."""
        if self.uptime_ticks is None:
            return None
        u = self.uplink
        if u is None:
            return Sample(self.at, self.uptime_ticks)
        return Sample(self.at, self.uptime_ticks, u.if_index, u.bits, u.in_octets, u.out_octets,
                      u.in_errors, u.out_errors)

    @classmethod
    def not_polled(cls, code: str, at: float, why: str) -> SnmpReading:
        return cls(code, at, Reason.NOT_POLLED, why)



# ---------------------------------------------------------------- folding readings (pure)


@dataclass(frozen=True, slots=True)
class Reboot:
    """An agent restart seen by sysUpTime (an event for the log and the store)."""

    code: str
    at: float  # when it was noticed
    booted_at: float  # when the agent started again, by our clock
    uptime_s: float


@dataclass(frozen=True, slots=True)
class SnmpTrack:
    """One node's SNMP history the service keeps between polls."""

    counters: NodeCounters = field(default_factory=NodeCounters)
    last: SnmpReading | None = None
    last_ok_at: float | None = None
    sys_name: str | None = None
    sys_descr: str | None = None
    sys_object_id: str | None = None
    uplink: UplinkReading | None = None  # from the last poll that read it


def fold_reading(track: SnmpTrack | None, reading: SnmpReading, tz: tzinfo) -> tuple[SnmpTrack, Reboot | None]:
    """Fold one reading into a node's track; return it and the reboot it revealed, if any. Pure."""
    track = track or SnmpTrack()
    c, reboot = track.counters, None
    sample = reading.sample()
    if sample is not None:
        c, rebooted = counters.fold_sample(c, sample, tz)
        if rebooted and c.uptime is not None:
            reboot = Reboot(reading.code, reading.at, c.uptime.booted_at, c.uptime.seconds)
    return SnmpTrack(
        counters=c,
        last=reading,
        last_ok_at=reading.at if reading.ok else track.last_ok_at,
        sys_name=reading.sys_name if reading.sys_name is not None else track.sys_name,
        sys_descr=reading.sys_descr if reading.sys_descr is not None else track.sys_descr,
        sys_object_id=reading.sys_object_id if reading.sys_object_id is not None else track.sys_object_id,
        uplink=reading.uplink if reading.uplink is not None else track.uplink,
    ), reboot


def fold_readings(tracks: Mapping[str, SnmpTrack], readings: Iterable[SnmpReading],
                  tz: tzinfo) -> tuple[dict[str, SnmpTrack], list[Reboot]]:
    """Fold a poll's readings into the tracks (a new dict; tracks of nodes not read are kept). Pure."""
    out = dict(tracks)
    reboots: list[Reboot] = []
    for r in readings:
        out[r.code], reboot = fold_reading(out.get(r.code), r, tz)
        if reboot:
            reboots.append(reboot)
    return out, reboots


Delta = tuple[int | None, int | None, int]  # bytes in, bytes out (None: no uplink counters), reboots


def uplink_deltas(before: Mapping[str, SnmpTrack], after: Mapping[str, SnmpTrack]) -> dict[str, Delta]:
    """What each node polled between ``before`` and ``after`` added: uplink bytes in and out, reboots. Pure.

    For the history store's per-sweep counters (monitor.runtime.recorder.UplinkCounters). The first
    reading of a counter is a baseline, not traffic: it adds 0.
    """
    out: dict[str, Delta] = {}
    for code, t in after.items():
        b = before.get(code)
        if t.last is None or (b is not None and b.last is t.last):
            continue  # not polled in between
        bc = b.counters if b is not None else NodeCounters()
        c = t.counters
        if c.rx.raw is None:
            out[code] = (None, None, c.reboots - bc.reboots)
            continue
        rx = c.rx.total - bc.rx.total if bc.rx.raw is not None else 0
        tx = c.tx.total - bc.tx.total if bc.tx.raw is not None else 0
        out[code] = (rx, tx, c.reboots - bc.reboots)
    return out


def add_deltas(pending: Mapping[str, Delta], more: Mapping[str, Delta]) -> dict[str, Delta]:
    """Sum deltas (an SNMP poll every 60 s, history written every 30 s sweep: keep them until written)."""
    out = dict(pending)
    for code, (rx, tx, rb) in more.items():
        if code not in out:
            out[code] = (rx, tx, rb)
            continue
        prx, ptx, prb = out[code]
        out[code] = (None if prx is None and rx is None else (prx or 0) + (rx or 0),
                     None if ptx is None and tx is None else (ptx or 0) + (tx or 0), prb + rb)
    return out


@dataclass(frozen=True, slots=True)
class SnmpStatus:
    """What the status page, the JSON API and /metrics show of a node's SNMP (plain values)."""

    up: bool
    reason: str  # a Reason value
    detail: str
    polled_at: float | None
    last_ok_at: float | None
    sys_name: str | None
    sys_descr: str | None
    sys_object_id: str | None
    uptime_s: float | None
    reboots: int
    last_reboot_at: float | None
    uplink_name: str | None
    uplink_if_index: int | None
    uplink_oper_up: bool | None
    uplink_oper_status: str | None
    uplink_counter_bits: int | None
    rx_bytes_total: int | None
    tx_bytes_total: int | None
    rx_errors_total: int | None
    tx_errors_total: int | None
    bytes_today: int | None


def snmp_status(track: SnmpTrack | None, now: float, tz: tzinfo) -> SnmpStatus | None:
    """The node's SNMP status for the snapshot, None when it was never polled."""
    return status_on(track, datetime.fromtimestamp(now, tz).date())


def status_on(track: SnmpTrack | None, today: date) -> SnmpStatus | None:
    """``snmp_status`` on the local day ``today`` (the only thing of the time it depends on)."""
    if track is None or track.last is None:
        return None
    r, c, u = track.last, track.counters, track.uplink
    has_octets = c.rx.raw is not None
    return SnmpStatus(
        up=r.ok, reason=r.reason.value, detail=r.detail,
        polled_at=r.at, last_ok_at=track.last_ok_at,
        sys_name=track.sys_name, sys_descr=track.sys_descr, sys_object_id=track.sys_object_id,
        uptime_s=c.uptime.seconds if c.uptime else None, reboots=c.reboots, last_reboot_at=c.last_reboot_at,
        uplink_name=u.name if u else None, uplink_if_index=u.if_index if u else None,
        uplink_oper_up=u.oper_up if u is not None and r.ok else None,
        uplink_oper_status=u.oper_text if u else None, uplink_counter_bits=u.bits if u else None,
        rx_bytes_total=c.rx.total if has_octets else None, tx_bytes_total=c.tx.total if has_octets else None,
        rx_errors_total=c.in_errors.total if c.in_errors.raw is not None else None,
        tx_errors_total=c.out_errors.total if c.out_errors.raw is not None else None,
        bytes_today=c.traffic.on(today).total if has_octets else None,
    )


class SnmpStatuses:
    """Each node's ``SnmpStatus``, made once per poll (its track) and local day, and shared by every snapshot
    until either changes. A sweep used to make 20,000 new ones every 30 s, identical to the last snapshot's
    until the next poll: about 6 MB of them alive beside that snapshot's own at 20,000 nodes, and their CPU."""

    def __init__(self) -> None:
        self._kept: dict[str, tuple[SnmpTrack, date, SnmpStatus | None]] = {}

    def of(self, code: str, track: SnmpTrack | None, today: date) -> SnmpStatus | None:
        """``status_on(track, today)``: the object made for this track and day, if there is one."""
        if track is None:
            self._kept.pop(code, None)
            return None
        kept = self._kept.get(code)
        if kept is not None and kept[0] is track and kept[1] == today:
            return kept[2]
        status = status_on(track, today)
        self._kept[code] = (track, today, status)
        return status

    def forget(self, codes: Iterable[str]) -> None:
        """Drop what is kept of nodes no longer polled."""
        for code in codes:
            self._kept.pop(code, None)

    def __len__(self) -> int:
        return len(self._kept)


SKIP_STATES = frozenset({"down", "unreachable"})


def plan_poll(nodes: Iterable[Node], states: Mapping[str, str], at: float, *,
              skip_states: frozenset[str] = SKIP_STATES, down_max: int = 0,
              polled_at: Mapping[str, float | None] | None = None) -> tuple[list[Node], list[SnmpReading]]:
    """The nodes to poll now, and NOT_POLLED readings for the ones skipped. Pure.

    Polled: nodes with an address and an ``snmp`` profile, except those whose state
    (``states``: code -> ICMP state) is in ``skip_states`` (down or unreachable): they would
    mostly time out, holding request slots (2,000 dead nodes x 2 s x 2 tries = 8,000 slot-seconds).
    Yet a down node's answer or silence says why it is cut off (monitor.core.causes): up to
    ``down_max`` down nodes a poll are polled all the same, those polled longest ago first
    (``polled_at``: code -> the last poll during their outage), so that a province-wide outage
    costs a bounded share of the poll. Unreachable nodes never are: their cause is upstream.
    """
    poll: list[Node] = []
    skipped: list[SnmpReading] = []
    down: list[Node] = []
    for n in nodes:
        if not n.address or not n.snmp:
            continue
        state = states.get(n.code, "unknown")
        if state == "down" and down_max > 0:
            down.append(n)
        elif state in skip_states:
            skipped.append(SnmpReading.not_polled(n.code, at, f"not polled: the node is {state} (ping)"))
        else:
            poll.append(n)
    if down:
        last = polled_at or {}
        down.sort(key=lambda n: last.get(n.code) or 0.0)  # never polled during the outage first
        poll += down[:down_max]
        skipped += [SnmpReading.not_polled(n.code, at, f"not polled this time: the node is down (ping), and at most "
                                           f"{down_max} down nodes are polled a poll") for n in down[down_max:]]
    return poll, skipped
