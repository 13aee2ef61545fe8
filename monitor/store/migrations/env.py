"""Alembic environment: migrates the connection the Store hands over, or ``sqlalchemy.url`` from alembic's own CLI."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from monitor.store.schema import metadata


def _migrate(connection: Connection) -> None:
    # Batch mode lets later revisions ALTER tables on SQLite (copy and move) as well as on PostgreSQL.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def _run() -> None:
    if context.is_offline_mode():
        raise SystemExit("tslcd migrations run online only (the Store applies them when it opens)")
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        _migrate(conn)
    engine.dispose()


_run()
