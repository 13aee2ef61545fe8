"""`tslcd store backup F`: a consistent copy of the history store, while the monitor runs."""

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


def add_parser(sub: Any) -> None:
    """Add ``store`` (with ``backup``) to the ``tslcd`` command's subparsers."""
    store = sub.add_parser("store", help="history store tools: backup", description="History store tools.")
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
