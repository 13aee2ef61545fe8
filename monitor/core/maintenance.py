"""Maintenance windows declared at run time (issue 17, part 3). Pure: values in, values out.

A window names nodes (codes, areas) and a span; it may recur (daily or weekly, from its first span, until a
date). It covers the nodes it names **and every node behind them** (a window on an aggregation node keeps
its communes out of availability too: the works are upstream of them). Inside a window a covered node is in
state ``maintenance``, whatever its echoes say, and maintenance time is left out of availability
(docs/design.md, "Maintenance windows").

The monitor applies the windows live (``covered``); the history lays a window declared in time over what
was recorded too (``overlay``: a sweep in flight when it began). A window declared after it began is an
approved exclusion instead (monitor.core.notes): counted beside the measured figures, never in them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, tzinfo
from typing import Literal

from monitor.core.history import Segment

Recur = Literal["daily", "weekly"]
RECURRENCES: tuple[Recur, ...] = ("daily", "weekly")
_STEP = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}
MAINTENANCE = "maintenance"
RECUR_HORIZON_S = 400 * 86_400  # how far ahead an open range looks for a recurring window's spans
_OBSERVED = frozenset({"up", "down", "unreachable"})


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """A maintenance window as the store keeps it: ``start``/``end`` are its first span (epoch seconds);
    ``recur`` repeats that span every day or week (local time) until the end of ``until``; ``ended_at`` is set
    when an operator ended it early (no span goes past it)."""

    id: int
    start: float
    end: float
    codes: tuple[str, ...] = ()
    areas: tuple[str, ...] = ()
    reason: str = ""
    declared_by: str = ""
    declared_at: float = 0.0
    recur: Recur | None = None
    until: date | None = None
    approved_by: str | None = None  # required when it was declared after its start (an exclusion)
    ended_at: float | None = None
    ended_by: str | None = None

    @property
    def after_the_fact(self) -> bool:
        """Declared after it had begun (more than a minute): it changes figures already recorded."""
        return self.declared_at > self.start + 60

    def spans(self, lo: float, hi: float, tz: tzinfo) -> Iterator[tuple[float, float]]:
        """Its spans that overlap [lo, hi), clipped to when it was ended; in order. Bounded: a recurring window
        is stepped from its first span, at most one step per day of the range plus one."""
        stop = self.ended_at if self.ended_at is not None else float("inf")
        if self.recur is None:
            s, e = self.start, min(self.end, stop)
            if s < hi and e > lo and e > s:
                yield s, e
            return
        step = _STEP[self.recur]
        first_s = datetime.fromtimestamp(self.start, tz)
        length = timedelta(seconds=self.end - self.start)
        last_day = self.until
        # At most RECUR_HORIZON_S of spans from where the range (or the window) begins: open ranges stay bounded.
        lo = max(lo, self.start)
        hi = min(hi, lo + RECUR_HORIZON_S)
        # Skip to the first occurrence that may overlap lo (local arithmetic keeps the hour across DST changes).
        k = max(0, int((lo - self.end) // step.total_seconds()))
        for _ in range(int((hi - lo) // step.total_seconds()) + 3):
            s_local = first_s + k * step
            if last_day is not None and s_local.date() > last_day:
                return
            s = s_local.timestamp()
            e = min((s_local + length).timestamp(), stop)
            if s >= hi or s >= stop:
                return
            if e > lo and e > s:
                yield s, e
            k += 1

    def names(self, code: str, area: str) -> bool:
        return code in self.codes or (bool(area) and area in self.areas)


def behind(named: Iterable[str], parents: Mapping[str, str | None]) -> frozenset[str]:
    """``named`` and every node whose chain of parents reaches one of them (bounded by the number of nodes)."""
    named = set(named)
    out = set(named)
    for code in parents:
        seen = {code}
        p = parents.get(code)
        while p is not None and p not in seen:
            if p in named:
                out.add(code)
                break
            seen.add(p)
            p = parents.get(p)
    return frozenset(out)


def covered(windows: Iterable[MaintenanceWindow], nodes: Iterable[tuple[str, str, str | None]], at: float,
            tz: tzinfo) -> frozenset[str]:
    """The codes in maintenance at ``at``: named by a window open then (code or area), and the nodes behind them.
    ``nodes``: (code, area, parent)."""
    nodes = list(nodes)
    named: set[str] = set()
    for w in windows:
        if any(True for _ in w.spans(at, at + 1e-6, tz)):
            named.update(code for code, area, _ in nodes if w.names(code, area))
    if not named:
        return frozenset()
    return behind(named, {code: parent for code, _, parent in nodes})


def union(spans: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Spans merged where they overlap or touch, in order."""
    out: list[tuple[float, float]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def overlay(segments: Sequence[Segment], spans: Sequence[tuple[float, float]]) -> list[Segment]:
    """A unit's timeline with every observed moment (up, down, unreachable) inside ``spans`` in maintenance, as
    the live monitor would have had it; unobserved time stays unknown, and the parts left as they were keep their
    cause."""
    if not spans:
        return list(segments)
    merged = union(spans)
    out: list[Segment] = []
    for seg in segments:
        if seg.state not in _OBSERVED:
            out.append(seg)
            continue
        t = seg.start
        for ws, we in merged:
            if we <= t or ws >= seg.end:
                continue
            if ws > t:
                out.append(replace(seg, start=t, end=ws))
            out.append(Segment(max(t, ws), min(seg.end, we), MAINTENANCE))
            t = min(seg.end, we)
        if t < seg.end:
            out.append(replace(seg, start=t))
    return out
