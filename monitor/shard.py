"""Which nodes a poller owns when several pollers share one history store (issue 14). Pure, standard library only:
the config, the core and the store read it.

A shard is every node (no sharding), a slice of a stable hash of the code (``hash:INDEX/COUNT``), or lists
of provinces and areas (``areas:A|B;provinces:P``). Two shards overlap when some node could belong to both;
a poller whose shard overlaps a live poller's is refused at start (the store says which).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

ALL = "all"


@dataclass(frozen=True, slots=True)
class Shard:
    """A poller's share of the inventory; ``Shard()`` is all of it."""

    index: int | None = None
    count: int | None = None
    areas: frozenset[str] = frozenset()
    provinces: frozenset[str] = frozenset()

    @property
    def everything(self) -> bool:
        return self.count is None and not self.areas and not self.provinces

    def owns(self, code: str, area: str, province: str) -> bool:
        """Whether the node with this code, area and province is this poller's to probe."""
        if self.everything:
            return True
        if self.count is not None:
            return slot(code, self.count) == self.index
        return area in self.areas or province in self.provinces

    def text(self) -> str:
        """The shard as the store records it with the run (canonical: equal shards, equal texts)."""
        if self.everything:
            return ALL
        if self.count is not None:
            return f"hash:{self.index}/{self.count}"
        return f"areas:{'|'.join(sorted(self.areas))};provinces:{'|'.join(sorted(self.provinces))}"

    def overlaps(self, other: Shard) -> bool:
        """Whether a node could belong to both (conservative when the kinds differ: they may)."""
        if self.everything or other.everything:
            return True
        if self.count is not None and other.count is not None:
            return self.count != other.count or self.index == other.index
        if self.count is None and other.count is None:
            return bool(self.areas & other.areas or self.provinces & other.provinces) or (
                bool(self.areas and other.provinces or self.provinces and other.areas))
        return True


def slot(code: str, count: int) -> int:
    """The hash slot of a code among ``count``: the same on every machine and every run (SHA-256, not hash())."""
    return int.from_bytes(hashlib.sha256(code.encode()).digest()[:8], "big") % count


def parse(text: str | None) -> Shard:
    """The shard a run recorded (None or "all": everything; an unreadable text counts as everything)."""
    if not text or text == ALL:
        return Shard()
    if text.startswith("hash:"):
        index, _, count = text[5:].partition("/")
        if index.isdigit() and count.isdigit() and int(index) < int(count):
            return Shard(int(index), int(count))
        return Shard()
    parts = dict(p.partition(":")[::2] for p in text.split(";"))
    return Shard(areas=frozenset(a for a in parts.get("areas", "").split("|") if a),
                 provinces=frozenset(p for p in parts.get("provinces", "").split("|") if p))
