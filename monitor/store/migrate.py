"""Schema migrations (Alembic), shipped inside the package and applied when a store opens."""

from __future__ import annotations

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

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


def upgrade(connection: Connection) -> None:
    """Bring the database to the newest revision (a no-op when it is there already)."""
    command.upgrade(alembic_config(connection), "head")
