"""Why a node is cut off: the cause of an outage, from what ICMP and SNMP saw of it. Pure.

An outage starts when a node leaves ``up``. While it lasts, the SNMP poller keeps asking the
router (bounded: ``snmp.down_nodes_max`` a poll), and each answer or silence is evidence; the
first SNMP answer after it ends may show that the router restarted. The rule table, first match
wins (docs/design.md, "Outage causes"):

=========  ===========================================================================
cause      when
=========  ===========================================================================
upstream   the node is ``unreachable``: a node it depends on is down (that one has the cause)
power      the router restarted during the outage or right after it (sysUpTime counted from
           a boot time between ``BOOT_BEFORE_S`` before the outage's start and ``BOOT_SLACK_S``
           after its end)
line       its uplink's ifOperStatus was read down during the outage (the router answered
           SNMP over another path), or ICMP and SNMP were both lost while its parent was up
filtered   the router answered SNMP with its uplink up while echoes were lost: something
           between drops ICMP
unknown    not enough evidence: no SNMP profile, or not polled during the outage
=========  ===========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class Cause(StrEnum):
    """The cause of an outage: a bounded label value (``tslcd_node_outage_cause{cause}``)."""

    UPSTREAM = "upstream"
    POWER = "power"
    LINE = "line"
    FILTERED = "filtered"
    UNKNOWN = "unknown"


CAUSES: tuple[Cause, ...] = tuple(Cause)
# The rule table in words, in its order (first match wins): every report prints it.
RULES: tuple[tuple[Cause, str], ...] = (
    (Cause.UPSTREAM, "the commune was unreachable: a node it depends on was down (that node has the cause)"),
    (Cause.POWER, "its router restarted during the outage or right after it (sysUpTime counted from a boot between "
                  "(states.down_after + 1) ICMP intervals before the outage began and 10 minutes after it ended)"),
    (Cause.LINE, "its uplink's ifOperStatus was read down during the outage (the router answered SNMP over another "
                 "path), or ICMP and SNMP were both lost while its parent was up"),
    (Cause.FILTERED, "the router answered SNMP with its uplink up while echoes were lost: something on the way "
                     "drops ICMP"),
    (Cause.UNKNOWN, "not enough evidence: no SNMP profile, or not polled during the outage"),
)
BOOT_SLACK_S = 600.0  # a boot this long after the outage's end still explains it (the router came back, then ping)
BOOT_BEFORE_S = 120.0  # or this long before its start (the loss began sweeps before the state turned down; the
# monitor passes its own: (states.down_after + 1) ICMP intervals)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What was seen of one node since its outage began at ``since``."""

    since: float
    snmp_answered: bool = False  # an SNMP poll got an answer while the node was down
    snmp_lost: bool = False  # an SNMP poll timed out while the node was down
    uplink_down: bool = False  # the uplink's ifOperStatus was read down during the outage
    booted_at: float | None = None  # a boot time (poll time - sysUpTime) read during the outage or after it
    polled_at: float | None = None  # the last SNMP poll of the node during the outage


@dataclass(frozen=True, slots=True)
class OutageCause:
    """What was concluded of one node's outage that began at ``start``: ``end`` None while it lasts (the
    conclusion may still change), else when it ended. Recorded in the history with the outage."""

    code: str
    start: float
    end: float | None
    why: str


def observe(ev: Evidence, *, at: float, answered: bool, timed_out: bool, uplink_up: bool | None,
            uptime_s: float | None) -> Evidence:
    """``ev`` with one SNMP reading of the node added (``answered``: the agent answered at all, even with an
    error; ``timed_out``: nothing came back; ``uplink_up``: the uplink's ifOperStatus when read)."""
    return replace(
        ev,
        snmp_answered=ev.snmp_answered or answered,
        snmp_lost=ev.snmp_lost or timed_out,
        uplink_down=ev.uplink_down or uplink_up is False,
        booted_at=at - uptime_s if uptime_s is not None else ev.booted_at,
        polled_at=at,
    )


def classify(state: str, ev: Evidence | None, *, ended_at: float | None = None,
             boot_before_s: float = BOOT_BEFORE_S) -> Cause:
    """The cause of the outage ``ev`` describes, for a node now in ``state`` (its state during the outage when
    ``ended_at`` is given: the outage is over)."""
    if state == "unreachable":
        return Cause.UPSTREAM
    if ev is None:
        return Cause.UNKNOWN
    if ev.booted_at is not None:
        end = ended_at if ended_at is not None else float("inf")
        if ev.since - boot_before_s <= ev.booted_at <= end + BOOT_SLACK_S:
            return Cause.POWER
    if ev.uplink_down:
        return Cause.LINE
    if ev.snmp_answered:
        return Cause.FILTERED
    if ev.snmp_lost:
        return Cause.LINE
    return Cause.UNKNOWN
