"""Schema migrations (Alembic), shipped inside the package and applied when a store opens."""

from __future__ import annotations

import logging
import re
from importlib import resources
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text

from monitor.errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

log = logging.getLogger("tslcd.store")
_REVISION = re.compile(r"^(down_)?revision(?:: [^=]+)? = (?:\"([^\"]*)\"|None)", re.M)

# Package-resource notation: found the same way in a checkout and in an installed tslcd.
SCRIPT_LOCATION = "monitor.store:migrations"


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    """An Alembic config for our migrations, bound to ``connection`` when given."""
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    """The newest revision this tslcd knows."""
    from alembic.script import ScriptDirectory

    rev = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert rev is not None
    return rev


def shipped_head() -> str | None:
    """The newest revision, read from the migration files' ``revision``/``down_revision`` lines without
    importing Alembic (11 MB in a process that only checks that its store is up to date); None when the files
    say something this cannot read (``upgrade`` then asks Alembic)."""
    revisions: set[str] = set()
    downs: set[str] = set()
    for f in resources.files("monitor.store.migrations").joinpath("versions").iterdir():
        if not f.name.endswith(".py"):
            continue
        found = {bool(m.group(1)): m.group(2) for m in _REVISION.finditer(f.read_text(encoding="utf-8"))}
        if False not in found or found[False] is None:
            return None
        revisions.add(found[False])
        if found.get(True):
            downs.add(found[True] or "")
    heads = revisions - downs
    return heads.pop() if len(heads) == 1 else None


def current(connection: Connection) -> str | None:
    """The revision the database is at (None: empty database)."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(connection: Connection, where: str = "the history store") -> str | None:
    """Bring the database to the newest revision; return the revision it was at when it moved (None: it
    did not). A database at a revision this tslcd does not know (written by a newer one) is refused."""
    before = current(connection)
    if before is not None and before == shipped_head():
        return None  # up to date: Alembic is not even imported
    from alembic import command
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    if before is not None and before not in {s.revision for s in scripts.walk_revisions()}:
        raise StoreError(f"{where} has schema {before}, newer than this tslcd knows (up to {head()}): it was "
                         "written by a newer tslcd; upgrade tslcd (or restore a backup taken before the upgrade)")
    if before == head():
        return None
    command.upgrade(alembic_config(connection), "head")
    log.info("history store migrated", extra={"store": where, "from": before or "empty", "to": head()})
    return before or "empty"
