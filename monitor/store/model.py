"""Plain records the history store takes and returns, and the interface a backend implements."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, tzinfo
from typing import Protocol, TypeVar

from inventory.model import Inventory, NodeFacts
from monitor.core.history import Commune, CommuneDay, OutagePiece, Roster, RowValues, Seconds, UnitKey, traffic
from monitor.core.maintenance import MaintenanceWindow
from monitor.core.notes import OutageNote
from monitor.shard import Shard


@dataclass(frozen=True, slots=True)
class ChangeRow:
    """A unit's change of state, as written: ``new`` holds from ``at`` until its next change in the same run."""

    unit: int
    at: float
    old: str
    new: str
    cause: str | None = None


@dataclass(frozen=True, slots=True)
class SampleRow:
    """Sums to add to one unit's daily row: ICMP samples, and uplink counters when SNMP gives them."""

    day: date
    unit: int
    samples: int = 0
    rtt_samples: int = 0
    rtt_sum_us: int = 0
    loss_sum_ppm: int = 0
    bytes_in: int | None = None
    bytes_out: int | None = None
    reboots: int | None = None
    v6_samples: int | None = None
    v6_ok: int | None = None


@dataclass(frozen=True, slots=True)
class Reseal:
    """The chain re-sealed from ``from_day`` on: an approved exclusion of an outage on a sealed day."""

    from_day: date
    at: float
    by: str
    approved_by: str
    reason: str
    old_head: str
    new_head: str


@dataclass(frozen=True, slots=True)
class CauseRow:
    """The cause concluded of one unit's outage that began at ``start`` (``end`` None while it lasts)."""

    unit: int
    start: float
    end: float | None
    why: str


@dataclass(frozen=True, slots=True)
class SweepBatch:
    """Everything one sweep writes, in one transaction.

    ``at`` is the heartbeat (None: only flush samples, e.g. at stop); ``changes`` and
    ``samples`` may be empty.
    """

    run: int
    at: float | None
    changes: Sequence[ChangeRow] = ()
    samples: Sequence[SampleRow] = ()
    causes: Sequence[CauseRow] = ()


@dataclass(frozen=True, slots=True)
class RecordedInventory:
    """An inventory version as stored, with the unit id of each node's (code, valid_from)."""

    version: int
    digest: str
    units: Mapping[UnitKey, int]
    new: bool  # False when it matched the latest stored version


@dataclass(frozen=True, slots=True)
class InventoryNode(NodeFacts):
    """A node as an inventory version recorded it."""

    unit: int
    code: str
    valid_from: date
    name: str
    kind: str
    province: str
    area: str
    address: str
    parent: str | None
    active_from: date | None
    active_until: date | None
    carrier: str | None = None
    circuit_id: str | None = None


@dataclass(frozen=True, slots=True)
class InventoryVersionInfo:
    """One stored inventory version."""

    id: int
    loaded_at: float
    digest: str
    source: str
    nodes: int


@dataclass(frozen=True, slots=True)
class DayRow:
    """One unit's rollup of one day."""

    unit: int
    seconds: Seconds
    samples: int = 0
    rtt_samples: int = 0
    rtt_sum_us: int = 0
    loss_sum_ppm: int = 0
    bytes_in: int | None = None
    bytes_out: int | None = None
    reboots: int | None = None
    v6_samples: int | None = None  # sweeps that probed its IPv6 address (None: none did)
    v6_ok: int | None = None  # of which it answered

    @property
    def rtt_mean_s(self) -> float | None:
        return self.rtt_sum_us / self.rtt_samples / 1e6 if self.rtt_samples else None

    @property
    def loss_mean(self) -> float | None:
        return self.loss_sum_ppm / self.samples / 1e6 if self.samples else None

    @property
    def traffic_bytes(self) -> int | None:
        """Uplink bytes in + out; None when SNMP gave neither."""
        return traffic(self.bytes_in, self.bytes_out)


@dataclass(frozen=True, slots=True)
class Seal:
    """One link of the hash chain."""

    day: date
    digest: str
    prev: str
    inventory_version: int | None
    observed_s: float
    day_s: float
    rows: int
    sealed_at: float


@dataclass(frozen=True, slots=True)
class DayHistory:
    """One local day as the store knows it: sealed rows, or (not sealed yet) computed from raw events.

    A unit with no row was not observed that day (all of it unknown).
    """

    day: date
    start: float
    end: float
    seal: Seal | None
    inventory_version: int | None
    observed_s: float
    rows: Mapping[int, DayRow] = field(default_factory=dict)
    outages: tuple[tuple[int, OutagePiece], ...] = ()

    @property
    def day_s(self) -> float:
        return self.end - self.start

    @property
    def coverage(self) -> float:
        """Share of the day the monitor was observing (of the elapsed part, for today)."""
        return self.observed_s / self.day_s if self.day_s > 0 else 0.0


@dataclass(frozen=True, slots=True)
class DayValues:
    """One local day as ``DayHistory`` has it, each unit's row a plain tuple (``RowValues``): how the audit reads a
    long period (``history_values``), without an object per unit and day.

    A unit with no row was not observed that day (all of it unknown).
    """

    day: date
    start: float
    end: float
    seal: Seal | None
    inventory_version: int | None
    observed_s: float
    rows: Mapping[int, RowValues] = field(default_factory=dict)
    outages: tuple[tuple[int, OutagePiece], ...] = ()

    @property
    def day_s(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """What ``verify`` found: ``first_bad`` is the first day whose data or chain link no longer matches."""

    checked: int
    first_bad: date | None
    problems: tuple[str, ...]
    head: Seal | None

    @property
    def ok(self) -> bool:
        return self.first_bad is None and not self.problems


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One start of the monitor."""

    id: int
    started_at: float
    stopped_at: float | None
    max_gap_s: float


class HistoryStore(Protocol):
    """What the recorder and the audit need of a history backend (monitor.store.sql.SqlStore implements it)."""

    def start_run(self, at: float, *, max_gap_s: float, shard: Shard | None = None) -> int: ...
    def stop_run(self, run: int, at: float) -> None: ...
    def record_inventory(self, inventory: Inventory, at: float) -> RecordedInventory: ...
    def write_sweep(self, batch: SweepBatch) -> None: ...
    def seal_due(self, now: float, tz: tzinfo, grace_s: float) -> list[date]: ...
    def purge_events(self, before: float, tz: tzinfo) -> int: ...
    def history(self, first: date, last: date, tz: tzinfo) -> Iterator[DayHistory]: ...
    def history_values(self, first: date, last: date, tz: tzinfo) -> Iterator[DayValues]: ...
    def inventory_versions(self) -> tuple[InventoryVersionInfo, ...]: ...
    def inventory_nodes(self, version: int, code: str | None = None) -> tuple[InventoryNode, ...]: ...
    def unit_history(self, code: str, first: date, last: date, tz: tzinfo) -> list[DayHistory]: ...
    def version_for(self, day: date, tz: tzinfo) -> int | None: ...
    def runs(self) -> tuple[RunInfo, ...]: ...
    def first_day(self, tz: tzinfo) -> date | None: ...
    def seals(self, first: date | None = None, last: date | None = None) -> tuple[Seal, ...]: ...
    def chain_head(self) -> Seal | None: ...
    def verify(self, first: date | None = None, last: date | None = None) -> VerifyResult: ...
    def maintenance_windows(self, lo: float = ..., hi: float = ...) -> list[MaintenanceWindow]: ...
    def add_window(self, w: MaintenanceWindow) -> MaintenanceWindow: ...
    def end_window(self, window_id: int, at: float, by: str) -> MaintenanceWindow: ...
    def outage_notes(self, lo: float = ..., hi: float = ...) -> list[OutageNote]: ...
    def reseals(self) -> list[Reseal]: ...
    def exclusion_spans(self, lo: float, hi: float) -> dict[int, list[tuple[float, float]]]: ...
    def add_outage_note(self, code: str, start: float, *, kind: str, note: str, by: str, at: float,
                        ticket: str | None = None, cause: str | None = None,
                        approved_by: str | None = None) -> tuple[OutageNote, Reseal | None]: ...
    def close(self) -> None: ...


def _counted(n: InventoryNode, area: str | None) -> bool:
    """A commune, of ``area`` when one is asked for (active or not on a day)."""
    return n.is_commune and (area is None or n.area == area)


def commune_days(h: DayHistory, nodes: Iterable[InventoryNode], area: str | None = None) -> list[CommuneDay]:
    """The communes active on ``h.day`` in the day's inventory (optionally one area), with what was observed.

    A commune with no row was not observed at all that day: all of its day is unknown.
    """
    out = []
    for n in nodes:
        if not _counted(n, area) or not n.active_on(h.day):
            continue
        row = h.rows.get(n.unit)
        out.append(CommuneDay(n.unit, n.code, n.name, n.province, n.area, n.provisioned,
                              row.seconds if row else Seconds(unknown=h.day_s),
                              row.traffic_bytes if row else None, n.carrier, row.v6_samples if row else None,
                              row.v6_ok if row else None))
    return out


class Rosters:
    """The ``Roster`` of each day of a period: the communes ``commune_days`` counts that day, prepared once per
    inventory version and set of active intervals (merges and splits change it on a few days only), the last few
    kept."""

    KEEP = 8

    def __init__(self, nodes_of: Callable[[int], Sequence[InventoryNode]], area: str | None = None) -> None:
        self._nodes_of = nodes_of
        self._area = area
        # Per version: its communes (of the area), and one of them per distinct (active_from, active_until).
        self._versions: OrderedDict[int, tuple[tuple[Commune, ...], tuple[InventoryNode, ...],
                                               tuple[InventoryNode, ...]]] = OrderedDict()
        self._rosters: OrderedDict[tuple[int, tuple[bool, ...]], Roster] = OrderedDict()
        self._none = Roster(())

    def on(self, version: int | None, day: date) -> Roster:
        """The communes active on ``day`` in inventory ``version`` (None: none recorded yet, so none)."""
        if version is None:
            return self._none
        got = self._versions.get(version)
        if got is None:
            nodes = tuple(n for n in self._nodes_of(version) if _counted(n, self._area))
            communes = tuple(Commune(n.unit, n.code, n.name, n.province, n.area, n.provisioned, n.carrier)
                             for n in nodes)
            spans = tuple({(n.active_from, n.active_until): n for n in nodes}.values())
            got = self._versions[version] = (communes, nodes, spans)
            _trim(self._versions, self.KEEP)
        communes, nodes, spans = got
        key = (version, tuple(n.active_on(day) for n in spans))  # whether a node is active is its span's
        roster = self._rosters.get(key)
        if roster is None:
            roster = self._rosters[key] = Roster(c for c, n in zip(communes, nodes, strict=True) if n.active_on(day))
            _trim(self._rosters, self.KEEP)
        return roster


K = TypeVar("K")
V = TypeVar("V")


def _trim(cache: OrderedDict[K, V], keep: int) -> None:
    while len(cache) > keep:
        cache.popitem(last=False)
