"""What operators say of an outage (issue 17, part 2): notes, tickets, causes, and approved exclusions. Pure.

An outage is named by its unit's code and its start, in the province's time: ``24133@2026-11-02T08:00:00``.
An **exclusion** takes one outage out of availability, but only with a named approver, and never silently:
reports give each figure it changes twice, as measured and with the approved exclusions (docs/design.md,
"Definitions auditors rely on"). The history itself is never rewritten: exclusions live beside it, and the
counting with exclusions moves each excluded outage's down and unreachable time to time left out of
availability (as maintenance is).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from typing import Any

from monitor.core.history import CommuneDay, Seconds
from monitor.core.maintenance import union

NOTE = "note"
EXCLUSION = "exclusion"
_ID_FORMAT = "%Y-%m-%dT%H:%M:%S"


@dataclass(frozen=True, slots=True)
class OutageNote:
    """One row of what was said of an outage of ``unit`` (``code``) that began at ``start``."""

    id: int
    unit: int
    code: str
    start: float
    end: float
    kind: str  # NOTE or EXCLUSION
    note: str
    ticket: str | None = None
    cause: str | None = None
    by: str = ""
    approved_by: str | None = None
    at: float = 0.0

    @property
    def is_exclusion(self) -> bool:
        return self.kind == EXCLUSION and bool(self.approved_by)


def outage_id(code: str, start: float, tz: tzinfo) -> str:
    """The name people use for an outage: its code and local start, to the second."""
    return f"{code}@{datetime.fromtimestamp(start, tz).strftime(_ID_FORMAT)}"


def parse_outage_id(text: str, tz: tzinfo) -> tuple[str, float]:
    """(code, start) of ``CODE@YYYY-MM-DDTHH:MM:SS``; ValueError says what is expected."""
    code, sep, when = text.strip().rpartition("@")
    try:
        if not sep or not code:
            raise ValueError
        start = datetime.strptime(when, _ID_FORMAT).replace(tzinfo=tz).timestamp()
    except ValueError:
        raise ValueError(f"{text!r} is not an outage id (expected CODE@YYYY-MM-DDTHH:MM:SS, as `tslcd outage "
                         "list` prints)") from None
    return code, start


def notes_of(notes: Iterable[OutageNote], unit: Any, start: float, end: float) -> list[OutageNote]:
    """The notes of ``unit``'s outage over [start, end): those of the same unit whose outage overlaps it (a
    report of a period that begins inside an outage sees only its part)."""
    return [n for n in notes if n.unit == unit and n.start < end + 1e-6 and n.end > start - 1e-6]


def excluded_spans(notes: Iterable[OutageNote]) -> dict[int, list[tuple[float, float]]]:
    """Per unit, the spans of its outages that approved exclusions take out of availability."""
    out: dict[int, list[tuple[float, float]]] = {}
    for n in notes:
        if n.is_exclusion:
            out.setdefault(n.unit, []).append((n.start, n.end))
    return out


def excluded_time(pieces: Iterable[tuple[Any, Any]], spans: Mapping[Any, Sequence[tuple[float, float]]]) -> tuple[
        dict[Any, tuple[float, float]], int]:
    """Per unit, the down and unreachable seconds of its outage pieces inside the excluded ``spans`` (a piece
    partly inside, in proportion: a piece is outage time throughout); and how many pieces that touched."""
    moved: dict[Any, tuple[float, float]] = {}
    n = 0
    for unit, p in pieces:
        sp = spans.get(unit)
        if not sp or p.end <= p.start:
            continue
        inside = sum(max(0.0, min(p.end, e) - max(p.start, s)) for s, e in union(sp))
        if inside <= 0:
            continue
        share = min(1.0, inside / (p.end - p.start))
        d, u = moved.get(unit, (0.0, 0.0))
        moved[unit] = (d + p.down_s * share, u + p.unreachable_s * share)
        n += 1
    return moved, n


def with_exclusions(rows: Mapping[Any, Sequence[Any]], pieces: Iterable[tuple[Any, Any]],
                    spans: Mapping[int, Sequence[tuple[float, float]]]) -> tuple[dict[Any, tuple[Any, ...]], int]:
    """A day's rows (``RowValues``: unit, up, down, unreachable, unknown, maintenance, ...) with the excluded
    outage time (``excluded_time``) moved to time left out of availability (the maintenance column); and how many
    pieces were touched. Rows of other units are the same objects."""
    moved, n = excluded_time(pieces, spans)
    out: dict[Any, tuple[Any, ...]] = {k: tuple(v) for k, v in rows.items()}
    for unit, (d, u) in moved.items():
        r = out.get(unit)
        if r is not None:
            down, unreachable = max(0.0, r[2] - d), max(0.0, r[3] - u)
            out[unit] = (r[0], r[1], down, unreachable, r[4], r[5] + (r[2] - down) + (r[3] - unreachable), *r[6:])
    return out, n


def excluded_days(communes: Sequence[CommuneDay], pieces: Iterable[tuple[Any, Any]],
                  spans: Mapping[Any, Sequence[tuple[float, float]]]) -> tuple[list[CommuneDay], int]:
    """``with_exclusions`` on one day's ``CommuneDay`` values (the status page, the email)."""
    moved, n = excluded_time(pieces, spans)
    out = []
    for c in communes:
        m = moved.get(c.unit)
        if m is None:
            out.append(c)
            continue
        sec = c.seconds
        down, unreachable = max(0.0, sec.down - m[0]), max(0.0, sec.unreachable - m[1])
        out.append(replace(c, seconds=Seconds(sec.up, down, unreachable, sec.unknown,
                                              sec.maintenance + (sec.down - down) + (sec.unreachable - unreachable))))
    return out, n
