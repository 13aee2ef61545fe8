"""The history store on SQLAlchemy Core: SQLite by default (one file, WAL), PostgreSQL through the same code.

One writer (the recorder's worker thread) and any number of readers (the audit).
Each sweep is one transaction, whatever the number of nodes: a heartbeat (the run's
observation window), the state changes, and every few sweeps the sample sums.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError, SQLAlchemyError

from inventory.model import Inventory
from monitor.core.history import (
    ENDED_DAY_END,
    ENDED_NOT_OBSERVED,
    CauseNote,
    Change,
    OutagePiece,
    Seconds,
    UnitKey,
    Window,
    day_of,
    day_span,
    days,
    fold,
    merge_outages,
    observed_seconds,
    outage_pieces,
    timeline,
    unit_key,
    with_why,
)
from monitor.core.maintenance import MaintenanceWindow, behind, overlay
from monitor.core.notes import EXCLUSION, OutageNote, excluded_spans
from monitor.errors import MaintenanceError, OutageNoteError, RunRefused, StoreDamaged, StoreError, Superseded
from monitor.files import atomic_path
from monitor.procs import pid_alive, process_identity
from monitor.shard import ALL, Shard
from monitor.shard import parse as parse_shard
from monitor.store import chain, migrate
from monitor.store.model import (
    DayHistory,
    DayRow,
    DayValues,
    InventoryNode,
    InventoryVersionInfo,
    RecordedInventory,
    Reseal,
    RunInfo,
    SampleRow,
    Seal,
    SweepBatch,
    VerifyResult,
)
from monitor.store.outbox import Outbox
from monitor.store.schema import (
    daily,
    day_samples,
    events,
    inventory_nodes,
    inventory_versions,
    maintenance_windows,
    outage_causes,
    outage_notes,
    outages,
    reseals,
    runs,
    seals,
    units,
    windows,
)
from monitor.store.url import describe_url

log = logging.getLogger("tslcd.store")
DEFAULT_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
OUTAGE_LOOKBACK_DAYS = 31  # how far back an outage named by a later day is looked for

_SECONDS_COLS = ("up_s", "down_s", "unreachable_s", "unknown_s", "maintenance_s")
_SAMPLE_COLS = ("samples", "rtt_samples", "rtt_sum_us", "loss_sum_ppm")
_COUNTER_COLS = ("bytes_in", "bytes_out", "reboots", "v6_samples", "v6_ok")  # NULL: never given
_DAILY_COLS = _SECONDS_COLS + _SAMPLE_COLS + _COUNTER_COLS
_OUTAGE_COLS = ("start_at", "end_at", "down_s", "unreachable_s", "ended_by", "cause", "why")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # The driver's own implicit transactions would leave SELECTs outside any transaction;
    # we issue BEGIN ourselves (see _begin), so that a report reads one consistent snapshot.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: a committed sweep survives a power cut too, for one fsync every sweep interval.
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _window(r: Any) -> MaintenanceWindow:
    return MaintenanceWindow(r.id, r.start_at, r.end_at, tuple(json.loads(r.codes)), tuple(json.loads(r.areas)),
                             r.reason, r.declared_by, r.declared_at, r.recur, r.until, r.approved_by, r.ended_at,
                             r.ended_by)


def _check_sqlite_file(path: Path) -> None:
    """Refuse a file that is not an SQLite database (SQLite would quietly start a new history in an empty one)."""
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError as e:
        raise StoreDamaged(f"cannot read the history store {path}: {e.strerror}") from None
    if not head:
        raise StoreDamaged(f"the history store {path} is empty (0 bytes): it is not a store and is kept as it "
                           "is; restore a backup, or move it away to start a new history")
    if head != b"SQLite format 3\x00":
        raise StoreDamaged(f"the history store {path} is not an SQLite database: it is kept as it is; restore a "
                           "backup, or move it away to start a new history")


def _begin(conn: Connection) -> None:
    # Writers take the lock up front, so two processes never both read-then-write (and deadlock).
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("tslcd_write") else "BEGIN")


_WRITE_LOCK = 0x74_73_6C_63  # "tslc": the advisory lock of tslcd's write transactions on PostgreSQL


def _begin_postgresql(conn: Connection) -> None:
    # What BEGIN IMMEDIATE is to SQLite: a write transaction (`_write`) holds one lock from its first statement
    # to its end, so pollers and mailers sharing the store never both read-then-write (a run's start check, a
    # day's seal, an outbox claim); readers are not held.
    if conn.get_execution_options().get("tslcd_write"):
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_WRITE_LOCK})")


# A poller frozen inside a write transaction (a hung process, a host cut off) would hold the write lock, and a
# standby could never take over: PostgreSQL ends such a session after this long idle in its transaction.
IDLE_IN_TRANSACTION_S = 60


def _connect_args(url: Any) -> dict[str, str]:
    if url.get_backend_name() != "postgresql" or "options" in url.query:
        return {}  # an operator's own libpq options (in the URL) are kept as they are
    return {"options": f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_S}s"}


def _raw_rows(conn: Connection, query: Any) -> list[tuple[Any, ...]]:
    """The rows of ``query`` as the database driver gives them (plain tuples): for the columns read this way (integers,
    floats, text) SQLAlchemy would convert nothing, and making a Row of each costs more than reading it."""
    result = conn.execute(query)
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


class SqlStore:
    """The history store. Open it with a SQLAlchemy URL; migrations are applied on open.

    ``create=False`` refuses to create a missing SQLite file (the audit uses it, so that
    a wrong path is an error rather than an empty report).
    """

    def __init__(self, url: str, *, create: bool = True, tz: tzinfo = DEFAULT_TZ) -> None:
        self.url = url
        self.tz = tz  # the province's: the days verify recomputes, and the local times of recurring windows
        self.where = describe_url(url)
        parsed = make_url(url)
        self.sqlite = parsed.get_backend_name() == "sqlite"
        if self.sqlite and parsed.database and parsed.database != ":memory:":
            path = Path(parsed.database)
            if not path.exists():
                if not create:
                    raise StoreError(f"no history store at {path} (has `tslcd run` been started with this config?)")
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as e:
                    raise StoreDamaged(f"cannot create the history store {path}: {e.strerror} "
                                       f"({path.parent})") from None
            else:
                _check_sqlite_file(path)
        try:
            self.engine: Engine = create_engine(url, connect_args=_connect_args(parsed))
        except (SQLAlchemyError, ImportError) as e:
            raise StoreError(f"cannot open the history store {self.where}: {e}") from None
        if self.sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _begin)
        elif self.engine.dialect.name == "postgresql":
            event.listen(self.engine, "begin", _begin_postgresql)
        self._max_gap: dict[int, float] = {}
        self._shards: dict[int, Shard] = {}
        try:
            with self._write() as conn:
                migrate.upgrade(conn, self.where)
        except DatabaseError as e:
            self.engine.dispose()
            if not self.sqlite:  # a server that does not answer, a refused login: not a damaged store
                raise StoreError(f"cannot open the history store {self.where}: {e.orig}") from None
            raise StoreDamaged(f"the history store {self.where} cannot be used: {e.orig} (it is kept as it is: "
                               "restore a backup, or move it away to start a new history)") from None
        except SQLAlchemyError as e:
            self.engine.dispose()
            raise StoreError(f"cannot open the history store {self.where}: {e}") from None

    def backup(self, path: Path) -> int:
        """A consistent copy of the SQLite store at ``path`` while monitors write to it (SQLite's online backup,
        all pages in one step under a read transaction); return its size. PostgreSQL: StoreError (use pg_dump)."""
        if not self.sqlite:
            raise StoreError(f"{self.where} is not SQLite: back it up with the server's own tools, e.g. "
                             "pg_dump --format=custom --file=tslcd.dump DBNAME (and pg_restore to restore it)")
        raw = self.engine.raw_connection()
        try:
            with atomic_path(path) as tmp:
                dst = sqlite3.connect(tmp)
                try:
                    raw.driver_connection.backup(dst)  # type: ignore[union-attr]
                finally:
                    dst.close()
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"cannot back up {self.where} to {path}: {e}") from None
        finally:
            raw.close()
        return path.stat().st_size

    def outbox(self, *, lease_s: float = 900.0) -> Outbox:
        """The daily email's outbox, in this store."""
        return Outbox(self.engine, lease_s=lease_s)

    def close(self) -> None:
        """Release every connection (the SQLite file stays consistent whatever happens after)."""
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect().execution_options(tslcd_write=True) as conn, conn.begin():
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def _upsert(self, conn: Connection, table: Any, rows: Sequence[Mapping[str, Any]], keys: Sequence[str],
                set_: Callable[[Any], Mapping[str, Any]] | None = None) -> None:
        """INSERT ... ON CONFLICT (keys) DO UPDATE, in one executemany (SQLite and PostgreSQL spell it alike)."""
        if not rows:
            return
        from sqlalchemy.dialects import postgresql, sqlite

        stmt: Any = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)
        values = set_(stmt.excluded) if set_ else {c: stmt.excluded[c] for c in rows[0] if c not in keys}
        conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=values), list(rows))

    # -- runs and heartbeats ---------------------------------------------------------------------

    def start_run(self, at: float, *, max_gap_s: float, shard: Shard | None = None) -> int:
        """Record a start of the monitor watching ``shard`` (default: every node); return the run id its
        heartbeats and changes carry.

        StoreError when another monitor is writing to this store for nodes this one would watch too (a recent
        heartbeat of a run not stopped whose shard overlaps, from a live process here or from another host):
        two monitors watching one node would count its time twice. Pollers of disjoint shards share a store.
        """
        shard = shard or Shard()
        me, here = process_identity(), socket.gethostname()[:255]
        # One write transaction (serialised: `_begin`, `_begin_postgresql`): two monitors starting at once never
        # both pass, and the second sees the first's run even before its first heartbeat.
        with self._write() as conn:
            last = func.coalesce(func.max(windows.c.end_at), runs.c.started_at)
            q = (select(runs.c.id, runs.c.pid, runs.c.host, runs.c.process, runs.c.max_gap_s, runs.c.shard, last)
                 .outerjoin(windows, windows.c.run_id == runs.c.id).where(runs.c.stopped_at.is_(None))
                 .group_by(runs.c.id, runs.c.pid, runs.c.host, runs.c.process, runs.c.max_gap_s, runs.c.shard,
                           runs.c.started_at))
            for other, pid, host, process, gap, theirs, seen in conn.execute(q):
                if at - seen > gap:
                    continue  # no heartbeat for longer than its gap: killed, its time is unknown
                if host == here:
                    earlier_self = pid == os.getpid() and process is not None and me is not None and process != me
                    if earlier_self or not pid_alive(pid):
                        continue  # an earlier incarnation of this pid (a restarted container), or a dead process
                if not shard.overlaps(parse_shard(theirs)):
                    continue  # another poller of the same history, watching other nodes
                what = "" if theirs in (None, ALL) else f", shard {theirs}"
                active = f"pid {pid} on {host}, run {other}{what}"
                raise RunRefused(f"another monitor ({active}) is writing to the history store {self.where} for "
                                 "nodes this one would watch too; stop it, give this one another shard (config: "
                                 "shard), or its own store, or make this one its standby (config: standby)",
                                 active=active)
            run = conn.execute(insert(runs).values(started_at=at, max_gap_s=max_gap_s, pid=os.getpid(),
                                                   host=here, process=me, shard=shard.text())).inserted_primary_key
        run_id = int(run[0]) if run else 0
        self._max_gap[run_id] = max_gap_s
        self._shards[run_id] = shard
        return run_id

    def _check_not_superseded(self, conn: Connection, run: int) -> None:
        """Superseded when a later run watches some of this run's nodes: it started because this one's heartbeats
        had stopped (a standby took over, or an operator started another poller), so this run's time and changes
        from now on would be counted twice. Checked inside each write transaction, which are serialised."""
        shard = self._shards.get(run)
        if shard is None:
            text = conn.execute(select(runs.c.shard).where(runs.c.id == run)).scalar_one()
            shard = self._shards[run] = parse_shard(text)
        for other, pid, host, theirs in conn.execute(
                select(runs.c.id, runs.c.pid, runs.c.host, runs.c.shard).where(runs.c.id > run)):
            if shard.overlaps(parse_shard(theirs)):
                active = f"pid {pid} on {host}, run {other}"
                raise Superseded(f"run {run} was taken over by another monitor ({active}) after its heartbeats "
                                 "stopped: its writes are refused, so that no time counts twice", active=active)

    def stop_run(self, run: int, at: float) -> None:
        """Record a clean stop (a killed monitor never gets here; its last heartbeat ends its time)."""
        with self._write() as conn:
            conn.execute(update(runs).where(runs.c.id == run).values(stopped_at=at))

    def runs(self) -> tuple[RunInfo, ...]:
        with self._read() as conn:
            rows = conn.execute(select(runs).order_by(runs.c.id)).all()
        return tuple(RunInfo(r.id, r.started_at, r.stopped_at, r.max_gap_s) for r in rows)

    def write_sweep(self, batch: SweepBatch) -> None:
        """One sweep in one transaction: extend the run's window to ``at``, add changes and sample sums.

        A heartbeat further than the run's max gap from the previous one opens a new
        window: the time between is unknown. Samples for a day already sealed are
        dropped (a sealed day never changes) with a warning. Superseded (nothing written)
        when a later run watches some of this run's nodes.
        """
        with self._write() as conn:
            self._check_not_superseded(conn, batch.run)
            if batch.at is not None:
                self._heartbeat(conn, batch.run, batch.at)
            if batch.changes:
                conn.execute(insert(events), [
                    {"run_id": batch.run, "unit_id": c.unit, "at": c.at, "old": c.old, "new": c.new,
                     "cause": c.cause} for c in batch.changes])
            if batch.samples:
                self._add_samples(conn, batch.samples)
            if batch.causes:
                # One row per outage, the latest conclusion (the same outage is noted again as evidence comes).
                latest = {(c.unit, c.start): c for c in batch.causes}
                conn.execute(delete(outage_causes).where(outage_causes.c.unit_id == bindparam("u"),
                                                         outage_causes.c.start_at == bindparam("s")),
                             [{"u": u, "s": s} for u, s in latest])
                conn.execute(insert(outage_causes), [
                    {"unit_id": c.unit, "start_at": c.start, "end_at": c.end, "why": c.why,
                     "noted_at": c.start if batch.at is None else batch.at} for c in latest.values()])

    def _heartbeat(self, conn: Connection, run: int, at: float) -> None:
        gap = self._max_gap.get(run)
        if gap is None:
            gap = conn.execute(select(runs.c.max_gap_s).where(runs.c.id == run)).scalar_one()
            self._max_gap[run] = gap
        last = conn.execute(select(windows.c.id, windows.c.end_at).where(windows.c.run_id == run)
                            .order_by(windows.c.id.desc()).limit(1)).first()
        if last is not None and 0 <= at - last.end_at <= gap:
            conn.execute(update(windows).where(windows.c.id == last.id).values(end_at=at))
        elif last is None or at > last.end_at:
            conn.execute(insert(windows).values(run_id=run, start_at=at, end_at=at))
        # A clock stepped backwards: keep the window as it is rather than let it shrink or overlap.

    def _add_samples(self, conn: Connection, samples: Sequence[SampleRow]) -> None:
        sealed = conn.execute(select(func.max(seals.c.day))).scalar()
        rows = []
        for s in samples:
            if sealed is not None and s.day <= sealed:
                log.warning("samples for a sealed day dropped", extra={"day": s.day.isoformat(), "unit": s.unit})
                continue
            rows.append({"day": s.day, "unit_id": s.unit, "samples": s.samples, "rtt_samples": s.rtt_samples,
                         "rtt_sum_us": s.rtt_sum_us, "loss_sum_ppm": s.loss_sum_ppm, "bytes_in": s.bytes_in,
                         "bytes_out": s.bytes_out, "reboots": s.reboots, "v6_samples": s.v6_samples,
                         "v6_ok": s.v6_ok})

        t = day_samples

        def added(ex: Any) -> dict[str, Any]:
            out: dict[str, Any] = {c: t.c[c] + ex[c] for c in _SAMPLE_COLS}
            for c in _COUNTER_COLS:
                # NULL + n is NULL: a counter SNMP never gave stays NULL, one it gave adds up.
                out[c] = func.coalesce(func.coalesce(t.c[c], 0) + ex[c], t.c[c])
            return out

        self._upsert(conn, t, rows, ("day", "unit_id"), added)

    # -- inventory versions ----------------------------------------------------------------------

    def record_inventory(self, inventory: Inventory, at: float) -> RecordedInventory:
        """Store the inventory as a new version unless it equals the latest; map every node to its unit id."""
        rows = [(n.code, unit_key(n.code, n.active_from)[1], n.name, n.kind, n.province, n.area, n.address,
                 n.parent, n.active_from, n.active_until, n.carrier, n.circuit_id) for n in inventory.nodes]
        digest = chain.inventory_digest(rows)
        with self._write() as conn:
            ids = self._unit_ids(conn, [(r[0], r[1]) for r in rows])
            latest = conn.execute(select(inventory_versions.c.id, inventory_versions.c.digest)
                                  .order_by(inventory_versions.c.id.desc()).limit(1)).first()
            if latest is not None and latest.digest == digest:
                return RecordedInventory(latest.id, digest, ids, new=False)
            pk = conn.execute(insert(inventory_versions).values(
                loaded_at=at, digest=digest, source=inventory.source[:1024], nodes=len(rows))).inserted_primary_key
            assert pk is not None
            version = int(pk[0])
            conn.execute(insert(inventory_nodes), [
                {"version_id": version, "unit_id": ids[(r[0], r[1])], "name": r[2], "kind": r[3], "province": r[4],
                 "area": r[5], "address": r[6], "parent": r[7], "active_from": r[8], "active_until": r[9],
                 "carrier": r[10], "circuit_id": r[11]}
                for r in rows])
        log.info("inventory version recorded", extra={"version": version, "nodes": len(rows)})
        return RecordedInventory(version, digest, ids, new=True)

    def _unit_ids(self, conn: Connection, keys: Sequence[UnitKey]) -> dict[UnitKey, int]:
        found = {(r.code, r.valid_from): r.id for r in conn.execute(select(units))}
        missing = sorted(set(keys) - set(found))
        if missing:
            conn.execute(insert(units), [{"code": c, "valid_from": v} for c, v in missing])
            found = {(r.code, r.valid_from): r.id for r in conn.execute(select(units))}
        return {k: found[k] for k in keys}

    def inventory_versions(self) -> tuple[InventoryVersionInfo, ...]:
        with self._read() as conn:
            rows = conn.execute(select(inventory_versions).order_by(inventory_versions.c.id)).all()
        return tuple(InventoryVersionInfo(r.id, r.loaded_at, r.digest, r.source, r.nodes) for r in rows)

    def inventory_nodes(self, version: int, code: str | None = None) -> tuple[InventoryNode, ...]:
        """The nodes an inventory version recorded (with ``code``, that code's only: a key lookup)."""
        with self._read() as conn:
            return self._inventory_nodes(conn, version, code)

    def _inventory_nodes(self, conn: Connection, version: int, code: str | None = None) -> tuple[InventoryNode, ...]:
        q = (select(inventory_nodes, units.c.code, units.c.valid_from)
             .join(units, units.c.id == inventory_nodes.c.unit_id)
             .where(inventory_nodes.c.version_id == version).order_by(units.c.code, units.c.valid_from))
        if code is not None:
            q = q.where(units.c.code == code)
        same: dict[Any, Any] = {}  # one object for the province, area, kind and carrier repeated on every row
        one = same.setdefault
        return tuple(InventoryNode(r.unit_id, r.code, r.valid_from, r.name, one(r.kind, r.kind),
                                   one(r.province, r.province), one(r.area, r.area), r.address, r.parent,
                                   r.active_from, r.active_until, one(r.carrier, r.carrier), r.circuit_id)
                     for r in conn.execute(q))

    def version_for(self, day: date, tz: tzinfo) -> int | None:
        """The inventory version in effect at the end of ``day``; None for days before the first one was recorded
        ("none recorded": those days have no active commune, hence no data)."""
        with self._read() as conn:
            return self._version_for(conn, day_span(day, tz)[1])

    def _version_for(self, conn: Connection, end: float) -> int | None:
        v = conn.execute(select(inventory_versions.c.id).where(inventory_versions.c.loaded_at < end)
                         .order_by(inventory_versions.c.loaded_at.desc(), inventory_versions.c.id.desc())
                         .limit(1)).scalar()
        return None if v is None else int(v)

    # -- days: computed from raw data, or sealed ---------------------------------------------------

    def first_day(self, tz: tzinfo) -> date | None:
        """The first day the monitor observed anything (where the chain starts)."""
        with self._read() as conn:
            start = conn.execute(select(func.min(windows.c.start_at))).scalar()
        return None if start is None else day_of(start, tz)

    def _compute(self, conn: Connection, day: date, tz: tzinfo, only: Sequence[int] | None = None) -> DayHistory:
        """Fold the day's windows and changes into per-unit seconds and outage pieces (nothing written); with
        ``only``, of those units alone (a commune's page reads its own events, not the province's)."""
        start, end = day_span(day, tz)
        ws = [Window(r.run_id, r.start_at, r.end_at) for r in conn.execute(
            select(windows.c.run_id, windows.c.start_at, windows.c.end_at)
            .where(windows.c.start_at < end, windows.c.end_at > start))]
        run_ids = sorted({w.run for w in ws})
        changes: dict[int, list[Change]] = defaultdict(list)
        if run_ids:
            # The state at the start of the day is each unit's last change before it, in the same run.
            last_before = (select(func.max(events.c.id)).where(events.c.run_id.in_(run_ids), events.c.at <= start)
                           .group_by(events.c.run_id, events.c.unit_id))
            in_day = and_(events.c.run_id.in_(run_ids), events.c.at > start, events.c.at < end)
            if only is not None:
                last_before = last_before.where(events.c.unit_id.in_(only))
                in_day = and_(in_day, events.c.unit_id.in_(only))
            q = (select(events.c.run_id, events.c.unit_id, events.c.at, events.c.new, events.c.cause)
                 .where(or_(events.c.id.in_(last_before), in_day))
                 .order_by(events.c.id))
            for r in conn.execute(q):
                changes[r.unit_id].append(Change(r.run_id, r.at, r.new, r.cause))
        day_q = select(day_samples).where(day_samples.c.day == day)
        if only is not None:
            day_q = day_q.where(day_samples.c.unit_id.in_(only))
        samples = {r.unit_id: r for r in conn.execute(day_q)}
        # Maintenance declared at run time covers its nodes and those behind them (monitor.core.maintenance): the
        # live monitor recorded them in maintenance already, and laying the window over what was recorded covers
        # what it missed (a sweep in flight when it began). A window declared after the fact is an exclusion: it
        # never changes the measured figures (exclusion_spans).
        spans_of: dict[int, list[tuple[float, float]]] = defaultdict(list)
        declared = [w for w in self._windows(conn, start, end) if not w.after_the_fact]
        if declared:
            version = self._version_for(conn, end)
            nodes = [n for n in (self._inventory_nodes(conn, version) if version is not None else ())
                     if n.active_on(day)]
            parents = {n.code: n.parent for n in nodes}
            unit_of = {n.code: n.unit for n in nodes}
            for w in declared:
                spans = list(w.spans(start, end, tz))
                if spans:
                    for code in behind((n.code for n in nodes if w.names(n.code, n.area)), parents):
                        spans_of[unit_of[code]].extend(spans)
        notes: dict[int, list[CauseNote]] = defaultdict(list)
        notes_q = select(outage_causes).where(outage_causes.c.start_at < end,
                                              or_(outage_causes.c.end_at.is_(None), outage_causes.c.end_at >= start))
        if only is not None:
            notes_q = notes_q.where(outage_causes.c.unit_id.in_(only))
        for r in conn.execute(notes_q):
            notes[r.unit_id].append(CauseNote(r.start_at, r.end_at, r.why))
        rows: dict[int, DayRow] = {}
        pieces: list[tuple[int, OutagePiece]] = []
        for unit in sorted(set(changes) | set(samples)):
            segs = timeline(ws, changes.get(unit, ()), start, end)
            if unit in spans_of:
                segs = overlay(segs, spans_of[unit])
            sec = fold(segs, start, end).rounded(end - start)
            s = samples.get(unit)
            if s is None and sec.unknown >= end - start:
                continue  # never observed that day: no row is the same as a row of unknown
            rows[unit] = DayRow(unit, sec, *((getattr(s, c) for c in _SAMPLE_COLS + _COUNTER_COLS) if s else ()))
            unit_pieces = outage_pieces(segs, end)
            if unit in notes:
                unit_pieces = with_why(unit_pieces, notes[unit])
            pieces.extend((unit, p) for p in unit_pieces)
        return DayHistory(day, start, end, None, self._version_for(conn, end),
                          round(observed_seconds(ws, start, end), 3), rows, tuple(pieces))

    def _sealed(self, conn: Connection, seal: Seal, tz: tzinfo) -> DayHistory:
        start, end = day_span(seal.day, tz)
        # Plain tuples: a year's audit of 20,000 communes reads 7.3 million of these rows.
        q = select(daily.c.unit_id, *(daily.c[c] for c in _DAILY_COLS)).where(daily.c.day == seal.day)
        rows = {r[0]: DayRow(r[0], Seconds(r[1], r[2], r[3], r[4], r[5]), *r[6:])
                for r in conn.execute(q)}
        pieces = tuple((r.unit_id, OutagePiece(r.start_at, r.end_at, r.down_s, r.unreachable_s, r.ended_by, r.cause,
                                               r.why))
                       for r in conn.execute(select(outages).where(outages.c.day == seal.day)
                                             .order_by(outages.c.start_at, outages.c.unit_id)))
        return DayHistory(seal.day, start, end, seal, seal.inventory_version, seal.observed_s, rows, pieces)

    def unit_history(self, code: str, first: date, last: date, tz: tzinfo) -> list[DayHistory]:
        """The days from ``first`` to ``last`` of the units with this code only (a commune's page): sealed days
        by key lookups, days not sealed yet computed from that unit's own events. Rows and outage pieces of
        other units are not read."""
        with self._read() as conn:
            ids = [r[0] for r in conn.execute(select(units.c.id).where(units.c.code == code))]
            sealed = {s.day: s for s in self._seals(conn, first, last)}
            rows: dict[date, dict[int, DayRow]] = defaultdict(dict)
            pieces: dict[date, list[tuple[int, OutagePiece]]] = defaultdict(list)
            if ids and sealed:
                q = (select(daily.c.day, daily.c.unit_id, *(daily.c[c] for c in _DAILY_COLS))
                     .where(daily.c.day.in_(list(sealed)), daily.c.unit_id.in_(ids)))
                for r in conn.execute(q):
                    rows[r[0]][r[1]] = DayRow(r[1], Seconds(r[2], r[3], r[4], r[5], r[6]), *r[7:])
                q2 = (select(outages).where(outages.c.day.in_(list(sealed)), outages.c.unit_id.in_(ids))
                      .order_by(outages.c.start_at))
                for o in conn.execute(q2):
                    pieces[o.day].append((o.unit_id, OutagePiece(o.start_at, o.end_at, o.down_s, o.unreachable_s,
                                                                 o.ended_by, o.cause, o.why)))
            out = []
            for day in days(first, last):
                seal = sealed.get(day)
                if seal is not None:
                    start, end = day_span(day, tz)
                    out.append(DayHistory(day, start, end, seal, seal.inventory_version, seal.observed_s,
                                          rows.get(day, {}), tuple(pieces.get(day, ()))))
                else:
                    out.append(self._compute(conn, day, tz, only=ids))
            return out

    def history(self, first: date, last: date, tz: tzinfo) -> Iterator[DayHistory]:
        """Every day from ``first`` to ``last``, in order, read in one consistent snapshot."""
        with self._read() as conn:
            sealed = {s.day: s for s in self._seals(conn, first, last)}
            for day in days(first, last):
                seal = sealed.get(day)
                yield self._sealed(conn, seal, tz) if seal else self._compute(conn, day, tz)

    def history_values(self, first: date, last: date, tz: tzinfo) -> Iterator[DayValues]:
        """``history`` as the audit reads a long period: the same days, each unit's row a plain tuple
        (``RowValues``: seconds per state and uplink bytes; no ICMP sums). A sealed day's rows come straight from
        the database driver, one query for the day, without an object per row: a year of 20,000 communes is 7.3
        million rows."""
        with self._read() as conn:
            sealed = {s.day: s for s in self._seals(conn, first, last)}
            rows_q = select(daily.c.unit_id, *(daily.c[c] for c in _SECONDS_COLS), daily.c.bytes_in, daily.c.bytes_out,
                            daily.c.v6_samples, daily.c.v6_ok)
            outages_q = (select(outages.c.unit_id, *(outages.c[c] for c in _OUTAGE_COLS))
                         .order_by(outages.c.start_at, outages.c.unit_id))
            for day in days(first, last):
                seal = sealed.get(day)
                if seal is None:
                    h = self._compute(conn, day, tz)
                    yield DayValues(h.day, h.start, h.end, None, h.inventory_version, h.observed_s,
                                    {u: (u, r.seconds.up, r.seconds.down, r.seconds.unreachable, r.seconds.unknown,
                                         r.seconds.maintenance, r.bytes_in, r.bytes_out, r.v6_samples, r.v6_ok)
                                     for u, r in h.rows.items()},
                                    h.outages)
                    continue
                start, end = day_span(day, tz)
                rows = {r[0]: r for r in _raw_rows(conn, rows_q.where(daily.c.day == day))}
                pieces = tuple((r[0], OutagePiece(*r[1:]))
                               for r in _raw_rows(conn, outages_q.where(outages.c.day == day)))
                yield DayValues(day, start, end, seal, seal.inventory_version, seal.observed_s, rows, pieces)

    # -- the hash chain ----------------------------------------------------------------------------

    def seal_due(self, now: float, tz: tzinfo, grace_s: float) -> list[date]:
        """Seal, in order, every finished day not sealed yet; return them.

        A day is finished ``grace_s`` (the max gap) after its end: by then a sweep that
        began before midnight has either extended the window past it or never will.
        The chain starts on the first day the monitor observed; later days are sealed
        even when the monitor did not run (all unknown), so the chain has no hole.
        """
        through = day_of(now - grace_s, tz) - timedelta(days=1)
        with self._read() as conn:
            head = conn.execute(select(seals.c.day, seals.c.digest).order_by(seals.c.day.desc()).limit(1)).first()
            start = conn.execute(select(func.min(windows.c.start_at))).scalar()
        if head is not None:
            first = head.day + timedelta(days=1)
        elif start is not None:
            first = day_of(start, tz)
        else:
            return []
        prev = head.digest if head is not None else chain.GENESIS
        done = []
        for day in days(first, through):
            with self._write() as conn:
                # Pollers sharing the store seal each day once: the first to get here does (write transactions
                # are serialised), the others find it sealed.
                sealed = conn.execute(select(seals.c.digest).where(seals.c.day == day)).scalar()
                if sealed is not None:
                    prev = sealed
                    continue
                # The digest of the day before, read in this transaction: a re-sealing (an approved exclusion) may
                # have changed it since the head was read.
                before = conn.execute(select(seals.c.digest).where(seals.c.day == day - timedelta(days=1))).scalar()
                if before is not None:
                    prev = before
                prev = self._seal_day(conn, day, tz, prev, now)
            done.append(day)
        if done:
            log.info("days sealed", extra={"first": done[0].isoformat(), "last": done[-1].isoformat()})
        return done

    def _seal_day(self, conn: Connection, day: date, tz: tzinfo, prev: str, now: float) -> str:
        comp = self._compute(conn, day, tz)
        day_s = round(comp.end - comp.start, 3)
        if comp.rows:
            # Whole rows, in key order: SQLite appends them to full pages.
            conn.execute(insert(daily), [
                {"day": day, "unit_id": r.unit, "up_s": r.seconds.up, "down_s": r.seconds.down,
                 "unreachable_s": r.seconds.unreachable, "unknown_s": r.seconds.unknown,
                 "maintenance_s": r.seconds.maintenance, "samples": r.samples, "rtt_samples": r.rtt_samples,
                 "rtt_sum_us": r.rtt_sum_us, "loss_sum_ppm": r.loss_sum_ppm, "bytes_in": r.bytes_in,
                 "bytes_out": r.bytes_out, "reboots": r.reboots, "v6_samples": r.v6_samples, "v6_ok": r.v6_ok}
                for _, r in sorted(comp.rows.items())])
        conn.execute(delete(day_samples).where(day_samples.c.day <= day))
        conn.execute(delete(outages).where(outages.c.day == day))
        if comp.outages:
            conn.execute(insert(outages), [
                {"day": day, "unit_id": u, "start_at": p.start, "end_at": p.end, "down_s": p.down_s,
                 "unreachable_s": p.unreachable_s, "ended_by": p.ended_by, "cause": p.cause, "why": p.why}
                for u, p in comp.outages])
        # The digest is taken over what the database now holds, read back the way verify reads it.
        text, rows = self._day_text(conn, day, prev, comp.inventory_version, comp.observed_s, day_s, {}, tz)
        digest = chain.digest(text)
        conn.execute(insert(seals).values(day=day, digest=digest, prev=prev,
                                          inventory_version_id=comp.inventory_version, observed_s=comp.observed_s,
                                          day_s=day_s, rows=rows, sealed_at=now))
        return digest

    def _day_text(self, conn: Connection, day: date, prev: str, version: int | None, observed_s: float,
                  day_s: float, inv_cache: dict[int, str], tz: tzinfo | None = None) -> tuple[str, int]:
        if version is None:
            inv = ""
        elif version in inv_cache:
            inv = inv_cache[version]
        else:
            inv = inv_cache[version] = chain.inventory_digest(
                (n.code, n.valid_from, n.name, n.kind, n.province, n.area, n.address, n.parent, n.active_from,
                 n.active_until, n.carrier, n.circuit_id) for n in self._inventory_nodes(conn, version))
        # A row without IPv6 figures (every row sealed before migration 0007) reads as it did then.
        rows = [(r[0], r[1], *(r[2:-2] if r[-2] is None and r[-1] is None else r[2:])) for r in conn.execute(
            select(units.c.code, units.c.valid_from, *(daily.c[c] for c in _DAILY_COLS))
            .join(units, units.c.id == daily.c.unit_id).where(daily.c.day == day))]
        # A piece sealed before causes were recorded (why NULL) reads as it did then: its digest is unchanged.
        outs = [tuple(r) if r[-1] is not None else tuple(r)[:-1] for r in conn.execute(
            select(units.c.code, units.c.valid_from, *(outages.c[c] for c in _OUTAGE_COLS))
            .join(units, units.c.id == outages.c.unit_id).where(outages.c.day == day))]
        start, end = day_span(day, tz or self.tz)
        # Each window's spans cut to the day: ending a window later never changes a sealed day's text; declared_at
        # says whether it is an exclusion (declared after it began), so it is in the text too.
        wins = [(w.id, list(w.codes), list(w.areas), w.reason, w.declared_by, w.declared_at, w.approved_by,
                 [[max(s, start), min(e, end)] for s, e in spans]) for w in self._windows(conn, start, end)
                if (spans := list(w.spans(start, end, tz or self.tz)))]
        n = outage_notes
        excl = [tuple(r) for r in conn.execute(
            select(units.c.code, units.c.valid_from, n.c.start_at, n.c.end_at, n.c.note, n.c.by, n.c.approved_by,
                   n.c.at).join(units, units.c.id == n.c.unit_id)
            .where(n.c.kind == EXCLUSION, n.c.approved_by.is_not(None), n.c.start_at < end, n.c.end_at > start))]
        text = chain.day_text(day=day, prev=prev, inventory=inv, observed_s=observed_s, day_s=day_s, rows=rows,
                              outages=outs, windows=wins, exclusions=excl)
        return text, len(rows)

    def _seals(self, conn: Connection, first: date | None, last: date | None) -> list[Seal]:
        q = select(seals).order_by(seals.c.day)
        if first is not None:
            q = q.where(seals.c.day >= first)
        if last is not None:
            q = q.where(seals.c.day <= last)
        return [Seal(r.day, r.digest, r.prev, r.inventory_version_id, r.observed_s, r.day_s, r.rows, r.sealed_at)
                for r in conn.execute(q)]

    def seals(self, first: date | None = None, last: date | None = None) -> tuple[Seal, ...]:
        with self._read() as conn:
            return tuple(self._seals(conn, first, last))

    def chain_head(self) -> Seal | None:
        """The last sealed day: its digest vouches for every day before it."""
        with self._read() as conn:
            found = self._seals(conn, None, None)[-1:]
        return found[0] if found else None

    def verify(self, first: date | None = None, last: date | None = None) -> VerifyResult:
        """Recompute the digest of every sealed day in [first, last] and check each link to the day before.

        ``first_bad`` is the first day whose stored data, or whose link to the previous
        day's digest, no longer matches; ``problems`` lists every mismatch found.
        """
        problems: list[str] = []
        first_bad: date | None = None
        inv_cache: dict[int, str] = {}
        with self._read() as conn:
            chain_seals = self._seals(conn, first, last)
            head = self._seals(conn, None, None)[-1:]
            before = None
            if chain_seals:
                before = conn.execute(select(seals.c.day, seals.c.digest)
                                      .where(seals.c.day < chain_seals[0].day)
                                      .order_by(seals.c.day.desc()).limit(1)).first()
            expected_prev = before.digest if before is not None else chain.GENESIS
            expected_day = before.day + timedelta(days=1) if before is not None else None
            for s in chain_seals:
                bad = []
                if expected_day is not None and s.day != expected_day:
                    bad.append(f"{expected_day.isoformat()}: missing from the chain (next sealed day is {s.day})")
                if s.prev != expected_prev:
                    bad.append(f"{s.day.isoformat()}: its link to the previous day's digest is broken "
                               f"(stored prev {s.prev[:16]}…, previous digest {expected_prev[:16]}…)")
                text, _ = self._day_text(conn, s.day, s.prev, s.inventory_version, s.observed_s, s.day_s, inv_cache)
                recomputed = chain.digest(text)
                if recomputed != s.digest:
                    bad.append(f"{s.day.isoformat()}: its data no longer matches its seal "
                               f"(sealed {s.digest[:16]}…, now {recomputed[:16]}…)")
                if bad and first_bad is None:
                    first_bad = expected_day if expected_day is not None and s.day != expected_day else s.day
                problems.extend(bad)
                expected_prev = s.digest
                expected_day = s.day + timedelta(days=1)
        return VerifyResult(len(chain_seals), first_bad, tuple(problems), head[0] if head else None)

    # -- maintenance declared at run time ----------------------------------------------------------

    def _windows(self, conn: Connection, lo: float, hi: float) -> list[MaintenanceWindow]:
        """The windows that may have a span in [lo, hi) (``Window.spans`` tells which)."""
        t = maintenance_windows
        q = (select(t).where(t.c.start_at < hi, or_(t.c.recur.is_not(None), t.c.end_at > lo),
                             or_(t.c.ended_at.is_(None), t.c.ended_at > lo)).order_by(t.c.id))
        return [_window(r) for r in conn.execute(q)]

    def maintenance_windows(self, lo: float = float("-inf"), hi: float = float("inf")) -> list[MaintenanceWindow]:
        """Windows declared at run time with a span in [lo, hi) (every one by default), by id."""
        with self._read() as conn:
            found = self._windows(conn, lo, hi)
        if lo == float("-inf") and hi == float("inf"):
            return found
        return [w for w in found if any(True for _ in w.spans(lo, hi, self.tz))]

    def add_window(self, w: MaintenanceWindow) -> MaintenanceWindow:
        """Record a window (its ``id`` is given here). A window that began more than a minute before it was
        declared is an exclusion of the time it covers: it needs ``approved_by``, it is counted beside the measured
        figures, never in them, and one reaching into a sealed day re-seals the chain from that day (docs/design.md,
        "Maintenance windows")."""
        if w.end <= w.start:
            raise MaintenanceError("the window must end after it starts")
        if not w.codes and not w.areas:
            raise MaintenanceError("name the nodes the window covers: codes and/or areas")
        if not w.reason.strip() or not w.declared_by.strip():
            raise MaintenanceError("say why (reason) and who declares it (by): reports show both")
        if w.after_the_fact and not (w.approved_by or "").strip():
            raise MaintenanceError(
                "this window began before it was declared: it takes time already recorded out of availability, "
                "so it needs a named approver (--approved-by)")
        longest = {"daily": 86_400.0, "weekly": 7 * 86_400.0}.get(w.recur or "", 366 * 86_400.0)
        if w.end - w.start > longest:
            raise MaintenanceError(f"a {'window' if w.recur is None else w.recur + ' window'} lasts at most "
                                   f"{longest / 86_400:g} days (each span)")
        for what, value, most in (("codes", json.dumps(list(w.codes), ensure_ascii=False), 20_000),
                                  ("areas", json.dumps(list(w.areas), ensure_ascii=False), 4000),
                                  ("reason", w.reason, 1000), ("by", w.declared_by, 255),
                                  ("approved by", w.approved_by or "", 255)):
            if len(value) > most:
                raise MaintenanceError(f"{what}: {len(value)} characters, at most {most} (name areas rather than "
                                       "thousands of codes)" if what == "codes" else
                                       f"{what}: {len(value)} characters, at most {most}")
        with self._write() as conn:
            sealed = conn.execute(select(func.max(seals.c.day))).scalar()
            if sealed is not None and w.start < day_span(sealed, self.tz)[1] and not w.after_the_fact:
                raise MaintenanceError(f"the days through {sealed} are sealed and never change: a window cannot "
                                       f"start before {sealed + timedelta(days=1)}")
            pk = conn.execute(insert(maintenance_windows).values(
                start_at=w.start, end_at=w.end, codes=json.dumps(list(w.codes), ensure_ascii=False),
                areas=json.dumps(list(w.areas), ensure_ascii=False), recur=w.recur, until=w.until,
                reason=w.reason, declared_by=w.declared_by, declared_at=w.declared_at, approved_by=w.approved_by,
                ended_at=None, ended_by=None)).inserted_primary_key
            assert pk is not None
            if sealed is not None and w.start < day_span(sealed, self.tz)[1]:
                self._reseal_from(conn, day_of(w.start, self.tz), at=w.declared_at, by=w.declared_by,
                                  approved_by=w.approved_by or "",
                                  reason=f"maintenance window {int(pk[0])} declared after the fact: {w.reason}")
        added = replace(w, id=int(pk[0]))
        log.info("maintenance window declared", extra={"window": added.id, "by": w.declared_by,
                                                       "reason": w.reason, "approved_by": w.approved_by})
        return added

    def end_window(self, window_id: int, at: float, by: str) -> MaintenanceWindow:
        """End a window now (a recurring one has no later span); MaintenanceError when there is none to end."""
        with self._write() as conn:
            row = conn.execute(select(maintenance_windows).where(maintenance_windows.c.id == window_id)).first()
            if row is None:
                raise MaintenanceError(f"no maintenance window {window_id} (tslcd maintenance list)")
            w = _window(row)
            if w.ended_at is not None:
                raise MaintenanceError(f"maintenance window {window_id} was already ended by {w.ended_by}")
            if w.recur is None and w.end <= at:
                raise MaintenanceError(f"maintenance window {window_id} is already over")
            conn.execute(update(maintenance_windows).where(maintenance_windows.c.id == window_id)
                         .values(ended_at=at, ended_by=by))
        log.info("maintenance window ended", extra={"window": window_id, "by": by})
        return replace(w, ended_at=at, ended_by=by)

    # -- what operators say of outages: notes and approved exclusions ------------------------------

    def outage_notes(self, lo: float = float("-inf"), hi: float = float("inf")) -> list[OutageNote]:
        """The notes and exclusions of outages that overlap [lo, hi), oldest first."""
        n = outage_notes
        with self._read() as conn:
            rows = conn.execute(select(n, units.c.code).join(units, units.c.id == n.c.unit_id)
                                .where(n.c.start_at < hi, n.c.end_at > lo).order_by(n.c.id)).all()
        return [OutageNote(r.id, r.unit_id, r.code, r.start_at, r.end_at, r.kind, r.note, r.ticket, r.cause, r.by,
                           r.approved_by, r.at) for r in rows]

    def exclusion_spans(self, lo: float, hi: float) -> dict[int, list[tuple[float, float]]]:
        """Per unit, the time approved exclusions leave out of availability in [lo, hi): excluded outages, and the
        spans of maintenance windows declared after the fact (their nodes and those behind them, by the inventory
        in effect on each span's day)."""
        out = excluded_spans(self.outage_notes(lo, hi))
        with self._read() as conn:
            late = [w for w in self._windows(conn, lo, hi) if w.after_the_fact and w.approved_by]
            read: dict[int, tuple[InventoryNode, ...]] = {}
            for w in late:
                for s, e in w.spans(lo, hi, self.tz):
                    version = self._version_for(conn, e)
                    day = day_of(s, self.tz)
                    if version is not None and version not in read:
                        read[version] = self._inventory_nodes(conn, version)
                    nodes = [n for n in (read[version] if version is not None else ()) if n.active_on(day)]
                    unit_of = {n.code: n.unit for n in nodes}
                    for code in behind((n.code for n in nodes if w.names(n.code, n.area)),
                                       {n.code: n.parent for n in nodes}):
                        out.setdefault(unit_of[code], []).append((s, e))
        return out

    def reseals(self) -> list[Reseal]:
        with self._read() as conn:
            return [Reseal(r.from_day, r.at, r.by, r.approved_by, r.reason, r.old_head, r.new_head)
                    for r in conn.execute(select(reseals).order_by(reseals.c.id))]

    def add_outage_note(self, code: str, start: float, *, kind: str, note: str, by: str, at: float,
                        ticket: str | None = None, cause: str | None = None,
                        approved_by: str | None = None) -> tuple[OutageNote, Reseal | None]:
        """Add what was said of the outage of ``code`` that began at ``start`` (its id). An exclusion needs a
        named approver and an outage that is over; one of an outage on a sealed day re-seals the chain from that
        day, recorded in ``reseals`` (the reports list it)."""
        if not note.strip() or not by.strip():
            raise OutageNoteError("say what (note, or the reason of an exclusion) and who (by)")
        for what, value, most in (("note", note, 2000), ("ticket", ticket or "", 255), ("by", by, 255),
                                  ("approved by", approved_by or "", 255)):
            if len(value.strip()) > most:
                raise OutageNoteError(f"{what}: {len(value.strip())} characters, at most {most}")
        if kind == EXCLUSION and not (approved_by or "").strip():
            raise OutageNoteError("an exclusion counts only with a named approver (--approved-by)")
        tz = self.tz
        # An outage that goes on from earlier days is found whole (within OUTAGE_LOOKBACK_DAYS); a report of a period
        # that begins inside it names it by that period's first midnight, which finds it too.
        first = day_of(start, tz)
        days_ = self.unit_history(code, first - timedelta(days=OUTAGE_LOOKBACK_DAYS), max(first, day_of(at, tz)),
                                  tz)
        found = None
        for o in merge_outages((u, p) for h in days_ for u, p in h.outages):
            inside_at_midnight = o.start < start < o.end and abs(day_span(day_of(start, tz), tz)[0] - start) < 1.0
            if abs(o.start - start) < 1.0 or inside_at_midnight:
                found = o
                break
        if found is None:
            raise OutageNoteError(f"no outage of {code} began at {datetime.fromtimestamp(start, tz):%Y-%m-%d %H:%M:%S}"
                                  " (tslcd outage list shows the ids)")
        o = found
        if kind == EXCLUSION and o.ended_by in (ENDED_DAY_END, ENDED_NOT_OBSERVED):
            # It ends where the history ends: over only if the monitor has gone on observing (or stopped) since.
            gap = max((r.max_gap_s for r in self.runs()), default=300.0)
            if o.ended_by == ENDED_DAY_END or at - o.end < 3 * gap:
                raise OutageNoteError("this outage is still going on: exclude it once it is over")
        unit = int(o.unit)  # type: ignore[call-overload]
        reseal: Reseal | None = None
        with self._write() as conn:
            pk = conn.execute(insert(outage_notes).values(
                unit_id=unit, start_at=o.start, end_at=o.end, kind=kind, note=note.strip(), ticket=ticket,
                cause=cause, by=by.strip(), approved_by=(approved_by or "").strip() or None, at=at)
            ).inserted_primary_key
            assert pk is not None
            if kind == EXCLUSION:
                reseal = self._reseal_from(conn, day_of(o.start, tz), at=at, by=by, approved_by=approved_by or "",
                                           reason=f"exclusion of {code}'s outage: {note.strip()}")
        added = OutageNote(int(pk[0]), unit, code, o.start, o.end, kind, note.strip(), ticket, cause, by.strip(),
                           approved_by, at)
        log.info("outage note added", extra={"code": code, "kind": kind, "by": by, "approved_by": approved_by,
                                             "resealed_from": reseal.from_day.isoformat() if reseal else None})
        return added, reseal

    def _reseal_from(self, conn: Connection, day: date, *, at: float, by: str, approved_by: str,
                     reason: str) -> Reseal | None:
        """Re-seal every sealed day from ``day`` on (their data unchanged: their text now names the exclusion),
        recording it; None when ``day`` is not sealed yet."""
        chain_seals = [s for s in self._seals(conn, day, None)]
        if not chain_seals:
            return None
        before = conn.execute(select(seals.c.digest).where(seals.c.day < chain_seals[0].day)
                              .order_by(seals.c.day.desc()).limit(1)).scalar()
        prev = before if before is not None else chain.GENESIS
        old_head = chain_seals[-1].digest
        cache: dict[int, str] = {}
        for s in chain_seals:
            text, _ = self._day_text(conn, s.day, prev, s.inventory_version, s.observed_s, s.day_s, cache)
            digest = chain.digest(text)
            conn.execute(update(seals).where(seals.c.day == s.day).values(digest=digest, prev=prev))
            prev = digest
        r = Reseal(chain_seals[0].day, at, by, approved_by, reason, old_head, prev)
        conn.execute(insert(reseals).values(from_day=r.from_day, at=at, by=by, approved_by=approved_by,
                                            reason=reason[:2000], old_head=old_head, new_head=prev))
        log.warning("chain re-sealed", extra={"from": r.from_day.isoformat(), "by": by, "approved_by": approved_by,
                                              "old_head": old_head[:16], "new_head": prev[:16]})
        return r

    # -- retention ---------------------------------------------------------------------------------

    def purge_events(self, before: float, tz: tzinfo) -> int:
        """Delete raw changes older than ``before`` whose days are sealed; return how many went.

        Each unit keeps its last change before the cutoff in every run still observing
        after it: that change gives its state at the start of the next unsealed day.
        """
        with self._write() as conn:
            head = conn.execute(select(func.max(seals.c.day))).scalar()
            if head is None:
                return 0
            cutoff = min(before, day_span(head + timedelta(days=1), tz)[0])
            live = select(windows.c.run_id).where(windows.c.end_at >= cutoff).distinct()
            keep = (select(func.max(events.c.id)).where(events.c.at < cutoff, events.c.run_id.in_(live))
                    .group_by(events.c.run_id, events.c.unit_id))
            gone = conn.execute(delete(events).where(events.c.at < cutoff, events.c.id.not_in(keep))).rowcount
            # Sealed days carry their outages' causes; the notes of outages over before the cutoff are not needed.
            conn.execute(delete(outage_causes).where(outage_causes.c.end_at < cutoff))
            # and the notes of outages left open by a monitor that stopped during them (a new run notes its own)
            conn.execute(delete(outage_causes).where(outage_causes.c.end_at.is_(None),
                                                     outage_causes.c.start_at < cutoff))
        if gone:
            log.info("raw events purged", extra={"events": gone})
        return int(gone or 0)
