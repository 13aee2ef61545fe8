"""Nodes and inventories: plain frozen data, no I/O (fields as in docs/design.md)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

Kind = Literal["commune", "core", "aggregation"]
KINDS: tuple[Kind, ...] = ("commune", "core", "aggregation")


class NodeFacts:
    """What any record of a node can tell (a loaded ``Node``, or the store's ``InventoryNode``): one definition
    of "commune", "provisioned" and "active on a day" for both."""

    __slots__ = ()
    kind: str
    address: str
    active_from: date | None
    active_until: date | None

    @property
    def is_commune(self) -> bool:
        return self.kind == "commune"

    @property
    def provisioned(self) -> bool:
        """A commune is provisioned when it has a TSLCD circuit (a management address)."""
        return bool(self.address)

    def active_on(self, day: date) -> bool:
        """``active_from`` and ``active_until`` are inclusive; None is unbounded."""
        if self.active_from is not None and day < self.active_from:
            return False
        if self.active_until is not None and day > self.active_until:
            return False
        return True


@dataclass(frozen=True, slots=True)
class Node(NodeFacts):
    """One monitored endpoint, usually the router at a commune People's Committee.

    ``address`` is empty for a commune with no TSLCD circuit yet: it is never probed
    but still counts in the denominator of every rate. ``active_from`` and
    ``active_until`` are inclusive dates; ``None`` means unbounded.
    """

    code: str
    name: str
    kind: Kind
    province: str
    area: str = ""
    address: str = ""
    address6: str = ""
    snmp: str | None = None
    uplink: str | None = None
    parent: str | None = None
    # Who provides the node's TSLCD circuit ("VNPT", "Viettel"...) and the carrier's circuit id: availability per
    # carrier holds a carrier to its contract. Optional.
    carrier: str | None = None
    circuit_id: str | None = None
    lat: float | None = None
    lon: float | None = None
    active_from: date | None = None
    active_until: date | None = None
    # Where the node was defined ("inventory.yaml:12", "nodes.csv:row 7"), for messages.
    source: str = field(default="", compare=False)

    def overlaps(self, other: Node) -> bool:
        """True when the two nodes' active intervals share at least one day."""
        lo = max(self.active_from or date.min, other.active_from or date.min)
        hi = min(self.active_until or date.max, other.active_until or date.max)
        return lo <= hi


@dataclass(frozen=True, slots=True)
class Inventory:
    """A validated set of nodes, as loaded from one file."""

    nodes: tuple[Node, ...]
    source: str = ""
    # What loading found worth saying but not worth refusing ("file:line: key: warning: ..."), in file order.
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def active(self, day: date) -> tuple[Node, ...]:
        """The nodes active on ``day``; their codes are unique (validation ensures it)."""
        return tuple(n for n in self.nodes if n.active_on(day))

    def by_code(self, day: date) -> dict[str, Node]:
        return {n.code: n for n in self.active(day)}

    @property
    def provinces(self) -> tuple[str, ...]:
        return tuple(sorted({n.province for n in self.nodes}))

    @classmethod
    def of(cls, nodes: Iterable[Node], source: str = "", warnings: Iterable[str] = ()) -> Inventory:
        return cls(tuple(nodes), source, tuple(warnings))
