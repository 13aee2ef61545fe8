"""Communes per carrier now (issue 17, part 4): one count for /metrics and the status page.

A commune counts for the carrier its inventory names (``Node.carrier``) when it has a TSLCD circuit (an
address); one with no carrier named counts under ``NO_CARRIER`` (""), as ``area=""`` is the whole province.
Observed means up, down or unreachable now (``unknown`` and ``maintenance`` are left out, as availability
leaves them out: docs/design.md); cut off means down or unreachable. Over a period, a carrier's availability
is 1 - (commune-time cut off / commune-time observed): the same definition the audit counts from the history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from monitor.core.snapshot import NodeStatus

NO_CARRIER = ""  # the carrier label of communes whose inventory names no carrier
NO_CARRIER_LABEL = "chưa ghi nhà mạng / no carrier recorded"  # how pages and dashboards show it
OBSERVED = frozenset({"up", "down", "unreachable"})
CUT_OFF = frozenset({"down", "unreachable"})


@dataclass(frozen=True, slots=True)
class CarrierRow:
    """The communes with a circuit of one carrier (in one province, or in the whole scope shown)."""

    province: str
    carrier: str
    communes: int  # active communes with a TSLCD circuit
    observed: int  # of them, up, down or unreachable now
    cut_off: int  # of them, down or unreachable now

    @property
    def label(self) -> str:
        """The carrier as a person reads it (``NO_CARRIER_LABEL`` for none named)."""
        return self.carrier or NO_CARRIER_LABEL

    @property
    def available(self) -> float | None:
        """Share of the observed communes not cut off now; None when none is observed."""
        return 1 - self.cut_off / self.observed if self.observed else None


def carrier_rows(statuses: Iterable[NodeStatus], scope: str | None = None) -> tuple[CarrierRow, ...]:
    """Rows per (province, carrier) of the communes with a circuit among ``statuses``, sorted by province then
    carrier (the communes of no carrier first): per each node's own province, or all under ``scope``."""
    counts: dict[tuple[str, str], list[int]] = {}
    for ns in statuses:
        n = ns.node
        if not n.is_commune or not n.provisioned:
            continue
        row = counts.setdefault((n.province if scope is None else scope, n.carrier or NO_CARRIER), [0, 0, 0])
        row[0] += 1
        row[1] += ns.state in OBSERVED
        row[2] += ns.state in CUT_OFF
    return tuple(CarrierRow(p, c, n, seen, cut) for (p, c), (n, seen, cut) in sorted(counts.items()))


def has_carriers(statuses: Iterable[NodeStatus]) -> bool:
    """Some node of the inventory names its carrier (pages show carriers only then)."""
    return any(ns.node.carrier for ns in statuses)
