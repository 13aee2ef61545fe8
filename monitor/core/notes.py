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
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

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


def excluded_spans(notes: Iterable[OutageNote]) -> dict[int, list[tuple[float, float]]]:
    """Per unit, the spans of its outages that approved exclusions take out of availability."""
    out: dict[int, list[tuple[float, float]]] = {}
    for n in notes:
        if n.is_exclusion:
            out.setdefault(n.unit, []).append((n.start, n.end))
    return out


def with_exclusions(rows: Mapping[Any, Sequence[Any]], pieces: Iterable[tuple[Any, Any]],
                    spans: Mapping[int, Sequence[tuple[float, float]]]) -> tuple[dict[Any, tuple[Any, ...]], int]:
    """A day's rows (``RowValues``: unit, up, down, unreachable, unknown, maintenance, ...) with the down and
    unreachable time of every excluded outage piece moved to time left out of availability (the maintenance
    column); and how many pieces were excluded. Rows of other units are the same objects."""
    out: dict[Any, tuple[Any, ...]] = {k: tuple(v) for k, v in rows.items()}
    n = 0
    for unit, p in pieces:
        for s, e in spans.get(unit, ()):
            if s - 1e-6 <= p.start < e + 1e-6:
                r = out.get(unit)
                if r is not None:
                    down, unreachable = max(0.0, r[2] - p.down_s), max(0.0, r[3] - p.unreachable_s)
                    moved = (r[2] - down) + (r[3] - unreachable)
                    out[unit] = (r[0], r[1], down, unreachable, r[4], r[5] + moved, *r[6:])
                    n += 1
                break
    return out, n
