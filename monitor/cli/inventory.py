"""`tslcd inventory import`: an inventory skeleton of a province's official communes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from monitor.cli.common import handles_errors, refuse_overwrite
from monitor.files import atomic_write_text


def add_parser(sub: Any) -> None:
    """Add ``inventory`` (with ``import``) to the ``tslcd`` command's subparsers."""
    inv = sub.add_parser("inventory", help="inventory tools", description="Inventory tools.")
    inv_sub = inv.add_subparsers(dest="inventory_command", metavar="ACTION", required=True)
    imp = inv_sub.add_parser(
        "import", help="write an inventory skeleton of a province's official communes",
        description="Write a YAML inventory with every commune and ward of a province (official codes and "
                    "names of the current administrative division) for an operator to fill in addresses, "
                    "SNMP profiles, uplinks and parents. The lists of all 34 provinces are bundled "
                    "(inventory/units/SOURCE.md says where they come from).",
    )
    imp.add_argument("--province", required=True, metavar="NAME", help='name or code, e.g. "Đắk Lắk", "dak lak", 66')
    imp.add_argument("--out", required=True, metavar="F", help="file to write ('-' for standard output)")
    imp.add_argument("--force", action="store_true", help="overwrite F if it exists")
    imp.set_defaults(func=cmd_import)


@handles_errors(1)
def cmd_import(args: argparse.Namespace) -> int:
    """Write the skeleton to --out (or standard output)."""
    from inventory.importer import build_skeleton

    text = build_skeleton(args.province)
    if args.out == "-":
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    refuse_overwrite(out, args.force)
    atomic_write_text(out, text)
    print(f"wrote {out}: fill in address, snmp, uplink, parent and area, then run: tslcd check --inventory {out}")
    return 0
