"""Node states: hysteresis, upstream parents, maintenance and flapping. Pure: no I/O, no clock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class State(StrEnum):
    """The states of docs/design.md. A commune with no address has none of them (see ``NO_CIRCUIT``)."""

    UP = "up"
    DOWN = "down"
    UNREACHABLE = "unreachable"
    UNKNOWN = "unknown"
    MAINTENANCE = "maintenance"


STATES: tuple[State, ...] = tuple(State)
NO_CIRCUIT = "no_circuit"


@dataclass(frozen=True, slots=True)
class Link:
    """What a node's own probes say, after hysteresis, before parents and maintenance.

    ``ok`` is None until the first decision: a node starts ``unknown``, goes up on its
    first success and down after ``down_after`` consecutive failures.
    """

    ok: bool | None = None
    fails: int = 0
    oks: int = 0


def observe(link: Link, success: bool, *, down_after: int, up_after: int) -> Link:
    """Fold one probe cycle's result into the link, with hysteresis in both directions."""
    if success:
        oks = link.oks + 1
        ok = link.ok
        if ok is None or (ok is False and oks >= up_after):
            ok = True
        return Link(ok=ok, fails=0, oks=oks)
    fails = link.fails + 1
    ok = link.ok
    if ok is not False and fails >= down_after:
        ok = False
    return Link(ok=ok, fails=fails, oks=0)


@dataclass(frozen=True, slots=True)
class Resolved:
    """A node's state after parents and maintenance, with the upstream node to blame."""

    state: State
    cause: str | None = None  # for UNREACHABLE: the topmost upstream node that is down


def resolve(
    links: Mapping[str, Link],
    parents: Mapping[str, str | None],
    maintenance: frozenset[str] = frozenset(),
) -> dict[str, Resolved]:
    """Resolve every probed node's state.

    A node whose own link is down is ``unreachable`` when an upstream node is down,
    unreachable or in maintenance (the nearest upstream failure is reported as the
    topmost failed ancestor: that is the link to fix). A node that answers is ``up``
    whatever its parents say. ``links`` holds the probed nodes; a parent missing from it
    (no circuit, not probed) never blocks its children.
    """
    out: dict[str, Resolved] = {}

    def own(code: str) -> State:
        if code in maintenance:
            return State.MAINTENANCE
        ok = links[code].ok
        return State.UNKNOWN if ok is None else (State.UP if ok else State.DOWN)

    def blocker(code: str) -> str | None:
        """The topmost failed ancestor of ``code``, or None. Bounded by the number of nodes."""
        top: str | None = None
        seen = {code}
        parent = parents.get(code)
        while parent is not None and parent in links and parent not in seen:
            seen.add(parent)
            if own(parent) in (State.DOWN, State.MAINTENANCE):
                top = parent
            parent = parents.get(parent)
        return top

    for code in links:
        state = own(code)
        if state is State.DOWN:
            cause = blocker(code)
            out[code] = Resolved(State.UNREACHABLE, cause) if cause else Resolved(State.DOWN)
        else:
            out[code] = Resolved(state)
    return out


@dataclass(frozen=True, slots=True)
class Event:
    """A change of state, at a timestamp (seconds since the epoch)."""

    code: str
    at: float
    old: State
    new: State
    cause: str | None = None


@dataclass(frozen=True, slots=True)
class History:
    """Per-node change history kept for flapping detection and the exported counters."""

    state: State = State.UNKNOWN
    since: float | None = None
    changes: int = 0
    recent: tuple[float, ...] = field(default=())  # the last ``flap_changes`` change times, oldest first


def advance(
    hist: History,
    code: str,
    new: Resolved,
    now: float,
    *,
    flap_changes: int,
) -> tuple[History, Event | None]:
    """Move a node's history to ``new``; return the event when the state changed.

    O(1) per node and sweep: an unchanged state returns ``hist`` itself, and a change keeps only the
    last ``flap_changes`` change times, all that ``is_flapping`` needs.
    """
    if hist.since is None:
        # The first resolution only starts the clock: "unknown" before it is not an outage.
        return History(new.state, now, hist.changes, hist.recent), (
            Event(code, now, hist.state, new.state, new.cause) if new.state is not hist.state else None
        )
    if new.state is hist.state:
        return hist, None
    return (
        History(new.state, now, hist.changes + 1, (*hist.recent, now)[-max(1, flap_changes):]),
        Event(code, now, hist.state, new.state, new.cause),
    )


def is_flapping(hist: History, now: float, *, flap_window_s: float, flap_changes: int) -> bool:
    """Many changes within the window (``flap_changes`` or more): flagged, never hidden. Change times only
    grow, so that is the ``flap_changes``-th latest change being inside the window: one comparison."""
    return len(hist.recent) >= flap_changes > 0 and now - hist.recent[-flap_changes] < flap_window_s
