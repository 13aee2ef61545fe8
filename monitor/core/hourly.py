"""The last 24 hours of one node's round trips and loss, in hourly buckets: constant space, O(1) per sweep.

What a commune's page draws for "the last 24 hours" (the store keeps daily sums; this keeps the
hours of the running monitor, so after a restart the chart starts at the restart). Pure: the
caller gives the time.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

HOURS = 24
_FIELDS = 5  # hour number, rtt sum, rtt count, loss sum, loss count


@dataclass(frozen=True, slots=True)
class HourPoint:
    """One hour: its start (seconds since the epoch), mean round trip and mean loss; None when not measured."""

    start: float
    rtt_s: float | None
    loss: float | None


class Hourly:
    """Ring of ``HOURS`` hourly buckets in one array of single-precision floats (about 0.5 KB a node: 10 MB at
    20,000 nodes; hour numbers stay exact to the year 3884, sums of a chart's hour need no more digits)."""

    __slots__ = ("_a",)

    def __init__(self) -> None:
        self._a = array("f", [-1.0, 0.0, 0.0, 0.0, 0.0] * HOURS)

    def add(self, at: float, rtt_s: float | None, loss: float | None) -> None:
        """Count one sweep's result at ``at``: its mean round trip (None: no echo came back) and loss ratio."""
        hour = at // 3600
        i = int(hour) % HOURS * _FIELDS
        a = self._a
        if a[i] != hour:  # the slot held an hour a day old (or none): start it afresh
            a[i], a[i + 1], a[i + 2], a[i + 3], a[i + 4] = hour, 0.0, 0.0, 0.0, 0.0
        if rtt_s is not None:
            a[i + 1] += rtt_s
            a[i + 2] += 1
        if loss is not None:
            a[i + 3] += loss
            a[i + 4] += 1

    def points(self, now: float) -> list[HourPoint]:
        """The ``HOURS`` hours up to and including the current one, oldest first."""
        current = now // 3600
        out = []
        for k in range(HOURS - 1, -1, -1):
            hour = current - k
            i = int(hour) % HOURS * _FIELDS
            a = self._a
            if a[i] == hour:
                out.append(HourPoint(hour * 3600, a[i + 1] / a[i + 2] if a[i + 2] else None,
                                     a[i + 3] / a[i + 4] if a[i + 4] else None))
            else:
                out.append(HourPoint(hour * 3600, None, None))
        return out
