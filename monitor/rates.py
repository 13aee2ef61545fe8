"""Availability and connection rates by DESIGN.md's definitions. Pure: values in, values out."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def availability(up_s: float, down_s: float, unreachable_s: float) -> float | None:
    """up / (up + down + unreachable); unknown and maintenance time are not in it. None: nothing observed."""
    observed = up_s + down_s + unreachable_s
    return None if observed <= 0 else up_s / observed


def connected_on_day(avail: float | None, min_availability: float) -> bool:
    """A commune is connected on a day when its availability reaches the threshold."""
    return avail is not None and avail >= min_availability


def period_rate(daily: Sequence[float]) -> float | None:
    """A period's rate is the mean of its daily rates (DESIGN.md)."""
    return None if not daily else sum(daily) / len(daily)


@dataclass(frozen=True, slots=True)
class CommuneNow:
    """What the rate needs to know of one active commune right now."""

    province: str
    area: str
    provisioned: bool
    up: bool


@dataclass(frozen=True, slots=True)
class AreaRate:
    """Counts for one province (area "") or one area of it."""

    province: str
    area: str
    communes: int
    provisioned: int
    connected: int

    @property
    def rate(self) -> float:
        """Connected / all active communes (provisioned or not); 0 when there are none."""
        return self.connected / self.communes if self.communes else 0.0

    @property
    def provisioned_rate(self) -> float:
        return self.provisioned / self.communes if self.communes else 0.0


def current_rates(communes: Iterable[CommuneNow]) -> tuple[AreaRate, ...]:
    """Connection rate now, per province (area "") and per area, sorted by province then area."""
    counts: dict[tuple[str, str], list[int]] = {}
    for c in communes:
        for key in ((c.province, ""), (c.province, c.area)) if c.area else ((c.province, ""),):
            row = counts.setdefault(key, [0, 0, 0])
            row[0] += 1
            row[1] += c.provisioned
            row[2] += c.provisioned and c.up
    return tuple(AreaRate(p, a, *row) for (p, a), row in sorted(counts.items()))
