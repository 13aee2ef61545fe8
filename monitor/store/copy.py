"""Move a whole history from one store to another (SQLite to PostgreSQL, or back): every table, every row, the
same ids, so that the hash chain verifies the same and every audit gives the same figures after the move."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Integer, func, insert, select, text

from monitor.errors import StoreError
from monitor.store.schema import metadata, runs, seals
from monitor.store.sql import SqlStore
from monitor.store.url import describe_url

BATCH = 5_000  # rows a statement: a year of 20,000 nodes is 7.3 million daily rows


def copy_store(source: str, target: str, *, progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Copy every row of the store at ``source`` into the empty store at ``target`` (created and migrated to the
    same schema first); return the rows copied per table. ``progress(table, rows)`` after each batch.

    The source is only read, and may be in use (SQLite gives a consistent snapshot to the reading transaction);
    the target must hold no history yet. One transaction for the whole copy: a failure leaves it empty.
    """
    src = SqlStore(source, create=False)
    try:
        dst = SqlStore(target)
    except BaseException:
        src.close()
        raise
    copied: dict[str, int] = {}
    try:
        with dst.engine.connect() as conn:
            if conn.execute(select(func.count()).select_from(runs)).scalar() or \
                    conn.execute(select(func.count()).select_from(seals)).scalar():
                raise StoreError(f"{describe_url(target)} already holds a history: move into an empty store only")
        with src.engine.connect() as read, dst.engine.begin() as write:
            for table in metadata.sorted_tables:  # parents before the rows that point at them
                order = list(table.primary_key.columns) or list(table.columns)
                done = 0
                rows = read.execution_options(yield_per=BATCH).execute(select(table).order_by(*order))
                for part in rows.partitions(BATCH):
                    write.execute(insert(table), [dict(r._mapping) for r in part])
                    done += len(part)
                    if progress:
                        progress(table.name, len(part))
                copied[table.name] = done
            if write.dialect.name == "postgresql":  # ids were given: the sequences start after them
                for table in metadata.sorted_tables:
                    keys = list(table.primary_key.columns)
                    if len(keys) == 1 and isinstance(keys[0].type, Integer):  # a serial id
                        write.execute(text(
                            f"SELECT setval(pg_get_serial_sequence('{table.name}', '{keys[0].name}'), "
                            f"COALESCE((SELECT max({keys[0].name}) FROM {table.name}), 0) + 1, false)"))
    finally:
        src.close()
        dst.close()
    return copied
