"""Schema migrations (Alembic), shipped inside the package and applied when a store opens."""

from __future__ import annotations

import logging

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from monitor.errors import StoreError

log = logging.getLogger("tslcd.store")

# Package-resource notation: found the same way in a checkout and in an installed tslcd.
SCRIPT_LOCATION = "monitor.store:migrations"


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    """An Alembic config for our migrations, bound to ``connection`` when given."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    """The newest revision this tslcd knows."""
    rev = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert rev is not None
    return rev


def current(connection: Connection) -> str | None:
    """The revision the database is at (None: empty database)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: Connection, where: str = "the history store") -> str | None:
    """Bring the database to the newest revision; return the revision it was at when it moved (None: it
    did not). A database at a revision this tslcd does not know (written by a newer one) is refused."""
    before = current(connection)
    scripts = ScriptDirectory.from_config(alembic_config())
    if before is not None and before not in {s.revision for s in scripts.walk_revisions()}:
        raise StoreError(f"{where} has schema {before}, newer than this tslcd knows (up to {head()}): it was "
                         "written by a newer tslcd; upgrade tslcd (or restore a backup taken before the upgrade)")
    if before == head():
        return None
    command.upgrade(alembic_config(connection), "head")
    log.info("history store migrated", extra={"store": where, "from": before or "empty", "to": head()})
    return before or "empty"
