"""Availability and connection rates by docs/design.md's definitions. Pure: values in, values out."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol, TypeVar


def availability(up_s: float, down_s: float, unreachable_s: float) -> float | None:
    """up / (up + down + unreachable); unknown and maintenance time are not in it. None: nothing observed."""
    observed = up_s + down_s + unreachable_s
    return None if observed <= 0 else up_s / observed


def connected_on_day(avail: float | None, min_availability: float) -> bool:
    """A commune is connected on a day when its availability reaches the threshold."""
    return avail is not None and avail >= min_availability


def period_rate(daily: Sequence[float]) -> float | None:
    """A period's rate is the mean of its daily rates (docs/design.md)."""
    return None if not daily else sum(daily) / len(daily)


@dataclass(frozen=True, slots=True)
class CommuneNow:
    """What the rate needs to know of one active commune right now."""

    province: str
    area: str
    provisioned: bool
    up: bool


@dataclass(frozen=True, slots=True)
class RateRow:
    """Counts of the communes of one province (area "") or one area of it: now (``day`` None) or on one day.

    The denominator is every active commune, provisioned or not (docs/design.md).
    """

    province: str
    area: str
    communes: int
    provisioned: int
    connected: int
    in_use: int = 0
    day: date | None = None

    @property
    def connected_rate(self) -> float:
        """Connected / all active communes (provisioned or not); 0 when there are none."""
        return self.connected / self.communes if self.communes else 0.0

    @property
    def rate(self) -> float:
        """The connection rate: ``connected_rate``."""
        return self.connected_rate

    @property
    def provisioned_rate(self) -> float:
        return self.provisioned / self.communes if self.communes else 0.0

    @property
    def in_use_rate(self) -> float:
        return self.in_use / self.communes if self.communes else 0.0


def count_rows(communes: Iterable[tuple[str, str, bool, bool, bool]], day: date | None = None) -> tuple[RateRow, ...]:
    """Rows per province (area "") and per area, sorted by province then area, from one
    (province, area, provisioned, connected, in use) per active commune."""
    counts: dict[tuple[str, str], list[int]] = {}
    for province, area, provisioned, connected, in_use in communes:
        for key in ((province, ""), (province, area)) if area else ((province, ""),):
            row = counts.setdefault(key, [0, 0, 0, 0])
            row[0] += 1
            row[1] += provisioned
            row[2] += connected
            row[3] += in_use
    return tuple(RateRow(p, a, n, prov, conn, used, day) for (p, a), (n, prov, conn, used) in sorted(counts.items()))


class AreaKeyed(Protocol):
    """A row of a province (area "") or of one of its areas: a RateRow, or a period's PeriodRate."""

    @property
    def province(self) -> str: ...
    @property
    def area(self) -> str: ...


R = TypeVar("R", bound=AreaKeyed)


def province_row(rows: Iterable[R], province: str) -> R | None:
    """The whole-province row (area "") of ``province`` among ``rows``, or None."""
    return next((r for r in rows if r.province == province and r.area == ""), None)


def current_rates(communes: Iterable[CommuneNow]) -> tuple[RateRow, ...]:
    """Connection rate now, per province (area "") and per area, sorted by province then area."""
    return count_rows((c.province, c.area, c.provisioned, c.provisioned and c.up, False) for c in communes)
