"""`tslcd store backup F` (a consistent copy of the history store, while the monitor runs) and `tslcd store migrate`
(a whole history moved to another store: SQLite to PostgreSQL)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from monitor.cli.common import DEFAULT_CONFIG, handles_errors, refuse_overwrite
from monitor.config import load_config

_EPILOG = """\
examples:
  tslcd store backup /var/backups/tslcd-$(date +%F).sqlite     while `tslcd run` goes on
  restore: stop tslcd, copy the backup to store.path, start tslcd (`tslcd audit verify` checks the chain)

PostgreSQL (store.url): back it up with pg_dump --format=custom and restore with pg_restore.
"""


_MIGRATE_EPILOG = """\
example:
  pip install 'tslcd-monitor[postgres]'
  tslcd store migrate --to 'postgresql+psycopg://tslcd@db.example.gov.vn/tslcd'
  the password: in ~/.pgpass or PGPASSWORD, never on the command line
"""


def add_parser(sub: Any) -> None:
    """Add ``store`` (with ``backup``) to the ``tslcd`` command's subparsers."""
    store = sub.add_parser("store", help="history store tools: backup, migrate", description="History store tools.")
    actions = store.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    backup = actions.add_parser(
        "backup", help="a consistent copy of the history store, while the monitor runs",
        description="Copy the SQLite history store that the config names to F with SQLite's online backup: a "
                    "consistent copy even while `tslcd run` writes to it. Restoring is copying F back to "
                    "store.path while tslcd is stopped. Exit status 0 on success, 1 on a problem.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    backup.add_argument("out", metavar="F", help="the backup file to write")
    backup.add_argument("--config", default=DEFAULT_CONFIG, metavar="C", help="config file (default: %(default)s)")
    backup.add_argument("--force", action="store_true", help="overwrite F if it exists")
    backup.set_defaults(func=cmd_backup)
    move = actions.add_parser(
        "migrate", help="move the whole history into another, empty store (SQLite to PostgreSQL)",
        description="Copy every row of the history store (the config's, or --from) into the empty store --to, "
                    "created and brought to the same schema first: runs, heartbeats, events, rollups, outages, "
                    "the hash chain, the email outbox, with the same ids. Then verify the chain in the new store "
                    "and compare its head with the old one's. Stop tslcd first (or copy a backup): what it writes "
                    "during the copy is not moved. Afterwards point store.url at the new store. Exit status 0 "
                    "when the chain verifies the same, 1 otherwise.",
        epilog=_MIGRATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    move.add_argument("--to", required=True, metavar="URL", help="the new store: an SQLAlchemy URL "
                      "(postgresql+psycopg://user@host/db, or sqlite:///path)")
    move.add_argument("--from", dest="source", metavar="URL", help="the store to move (default: the config's)")
    move.add_argument("--config", default=DEFAULT_CONFIG, metavar="C", help="config file (default: %(default)s)")
    move.set_defaults(func=cmd_migrate)


@handles_errors(1)
def cmd_backup(args: argparse.Namespace) -> int:
    """Write the backup."""
    from monitor.store import open_store

    out = Path(args.out)
    refuse_overwrite(out, args.force)
    cfg = load_config(args.config)
    store = open_store(cfg, create=False)
    try:
        size = store.backup(out)
        head = store.chain_head()
    finally:
        store.close()
    sealed = f"sealed through {head.day} (chain head {head.digest[:16]}…)" if head else "no day sealed yet"
    print(f"wrote {out}: {size:,} bytes, {sealed}")
    return 0


@handles_errors(1)
def cmd_migrate(args: argparse.Namespace) -> int:
    """Move the history, then verify it in its new store."""
    from tqdm import tqdm

    from monitor.store import SqlStore
    from monitor.store.copy import copy_store
    from monitor.store.sql import DEFAULT_TZ
    from monitor.store.url import describe_url, store_url

    cfg = load_config(args.config) if not args.source or Path(args.config).exists() else None
    source = args.source or store_url(cfg)  # type: ignore[arg-type]
    tz = cfg.tz if cfg is not None else DEFAULT_TZ  # verify counts days, and recurring windows, in local time
    before = SqlStore(source, create=False, tz=tz)
    try:
        old_head, old_ok = before.chain_head(), before.verify().ok
    finally:
        before.close()
    with tqdm(unit=" rows", desc="moving", leave=False) as bar:
        def progress(table: str, rows: int) -> None:
            bar.set_postfix_str(table)
            bar.update(rows)

        copied = copy_store(source, args.to, progress=progress)
    after = SqlStore(args.to, create=False, tz=tz)
    try:
        new_head, result = after.chain_head(), after.verify()
    finally:
        after.close()
    print(f"moved {sum(copied.values()):,} rows from {describe_url(source)} to {describe_url(args.to)}:")
    for table, n in copied.items():
        print(f"  {table}: {n:,}")
    same = (old_head is None and new_head is None) or (
        old_head is not None and new_head is not None and (old_head.day, old_head.digest) == (new_head.day,
                                                                                              new_head.digest))
    if same and result.ok == old_ok:
        head = f"sealed through {new_head.day}, chain head {new_head.digest}" if new_head else "no day sealed yet"
        print(f"the chain verifies the same in the new store ({head}); point store.url at it")
        return 0
    print(f"the chain does NOT verify the same in the new store: {'; '.join(result.problems) or 'heads differ'}")
    return 1
