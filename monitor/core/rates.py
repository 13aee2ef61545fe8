"""Availability and connection rates by docs/design.md's definitions. Pure: values in, values out."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from monitor.config import Config


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
    ipv6_up: bool = False  # its IPv6 address (address6) answered the last sweep


@dataclass(frozen=True, slots=True)
class RateRow:
    """Counts of the communes of one province (area "") or one area of it: now (``day`` None) or on one day.

    ``no_data`` counts the provisioned communes of which nothing was observed (that day): they
    are neither connected nor not connected. The connected and in-use rates are over the
    communes with data (observed, or without a circuit: known not connected), None when no
    commune has data; the provisioned rate, a registration, is over every active commune
    (docs/design.md, "Definitions auditors rely on").
    """

    province: str
    area: str
    communes: int
    provisioned: int
    connected: int
    in_use: int = 0
    no_data: int = 0
    day: date | None = None
    ipv6_ready: int = 0  # communes whose IPv6 address answered (now; on the day: at least once)

    @property
    def with_data(self) -> int:
        """Active communes with data: observed, or without a circuit (known not connected)."""
        return self.communes - self.no_data

    @property
    def has_data(self) -> bool:
        """Some commune with a circuit was observed (or there is none to observe): the measured rates exist."""
        return self.communes > 0 and (self.provisioned > self.no_data or self.provisioned == 0)

    @property
    def connected_rate(self) -> float | None:
        """Connected / active communes with data (provisioned or not); None without data (``has_data``)."""
        return self.connected / self.with_data if self.has_data else None

    @property
    def in_use_rate(self) -> float | None:
        """Connected and in use / active communes with data; None without data (``has_data``)."""
        return self.in_use / self.with_data if self.has_data else None

    @property
    def ipv6_rate(self) -> float | None:
        """IPv6 readiness: IPv6 ready / active communes with data, the connection rate's denominator and "no data"
        rules; None without data."""
        return self.ipv6_ready / self.with_data if self.has_data else None

    @property
    def rate(self) -> float:
        """The connection rate now (rows of now have no ``no_data``): 0 when there is no commune."""
        return self.connected_rate or 0.0

    @property
    def provisioned_rate(self) -> float:
        """Provisioned / all active communes: a registration, known whether observed or not."""
        return self.provisioned / self.communes if self.communes else 0.0

    @property
    def data_coverage(self) -> float:
        """Share of the active communes with data (1.0 when there is no commune)."""
        return self.with_data / self.communes if self.communes else 1.0


# province, area, provisioned, connected, in use, has data, IPv6 ready
CommuneFacts = tuple[str, str, bool, bool, bool, bool, bool]


def count_rows(communes: Iterable[CommuneFacts], day: date | None = None) -> tuple[RateRow, ...]:
    """Rows per province (area "") and per area, sorted by province then area, from one
    (province, area, provisioned, connected, in use, has data, IPv6 ready) per active commune."""
    counts: dict[tuple[str, str], list[int]] = {}
    for province, area, provisioned, connected, in_use, has_data, ipv6 in communes:
        for key in ((province, ""), (province, area)) if area else ((province, ""),):
            row = counts.setdefault(key, [0, 0, 0, 0, 0, 0])
            row[0] += 1
            row[1] += provisioned
            row[2] += connected
            row[3] += in_use
            row[4] += not has_data
            row[5] += ipv6
    return tuple(RateRow(p, a, n, prov, conn, used, none, day, v6)
                 for (p, a), (n, prov, conn, used, none, v6) in sorted(counts.items()))


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
    return count_rows((c.province, c.area, c.provisioned, c.provisioned and c.up, False, True,
                       c.provisioned and c.ipv6_up) for c in communes)


def with_national(rows: Sequence[RateRow], name: str, watched: Collection[str]) -> tuple[RateRow, ...]:
    """``rows`` after the national row ``name``: the sums of the watched provinces' rows (area ""), so that the
    provinces' figures add up to it, and its rates are those of all their communes together."""
    provinces = [r for r in rows if r.area == "" and r.province in watched]
    national = RateRow(name, "", sum(r.communes for r in provinces), sum(r.provisioned for r in provinces),
                       sum(r.connected for r in provinces), sum(r.in_use for r in provinces),
                       sum(r.no_data for r in provinces), rows[0].day if rows else None,
                       sum(r.ipv6_ready for r in provinces))
    return (national, *rows)


def for_scope(rows: Sequence[RateRow], cfg: Config) -> tuple[RateRow, ...]:
    """The rows a deployment shows: as counted, and first the national row when it watches several provinces."""
    return with_national(rows, cfg.province, cfg.watched) if cfg.national else tuple(rows)
