"""`tslcd init --province NAME [--dir D]`: a new province's commented config and inventory skeleton."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from monitor.cli.common import handles_errors, refuse_overwrite
from monitor.files import atomic_write_text

_EPILOG = """\
examples:
  tslcd init --province "Đắk Lắk"                    ./config.yaml and ./inventory.yaml
  tslcd init --province 01 --dir /etc/tslcd          Hà Nội, for the systemd unit (docs/install.md)
then: fill in addresses (and snmp, uplink, parent) in inventory.yaml, and run
  tslcd check --config D/config.yaml
"""


def add_parser(sub: Any) -> None:
    """Add ``init`` to the ``tslcd`` command's subparsers."""
    p = sub.add_parser(
        "init", help="start a new province: a commented config and its inventory skeleton",
        description="Write D/config.yaml (the commented example config, for the province) and D/inventory.yaml "
                    "(every official commune and ward of the province, addresses to fill in). Existing files are "
                    "kept unless --force.", epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--province", required=True, metavar="NAME", help='name or code, e.g. "Đắk Lắk", "ha noi", 66')
    p.add_argument("--dir", default=".", metavar="D", help="folder to write into (default: the current one)")
    p.add_argument("--force", action="store_true", help="overwrite config.yaml and inventory.yaml if they exist")
    p.set_defaults(func=cmd_init)


def example_config() -> str:
    """The commented example config: installed under <prefix>/share/tslcd-monitor, or this checkout's."""
    for base in (Path(sys.prefix) / "share" / "tslcd-monitor", Path(__file__).resolve().parents[2]):
        if (base / "config.yaml").is_file():
            return (base / "config.yaml").read_text(encoding="utf-8")
    raise FileNotFoundError("the example config.yaml is not installed (reinstall tslcd-monitor)")


@handles_errors(1)
def cmd_init(args: argparse.Namespace) -> int:
    """Write the two files."""
    from inventory import units
    from inventory.importer import build_skeleton

    skeleton = build_skeleton(args.province)  # SkeletonError: unknown province, with the known ones
    found = units.for_province(args.province)
    assert found
    name = found[0].province_name
    folder = Path(args.dir)
    config, inventory = folder / "config.yaml", folder / "inventory.yaml"
    for f in (config, inventory):
        refuse_overwrite(f, args.force)
    text = example_config()
    text = re.sub(r"(?m)^province: .*$", f"province: {name}", text, count=1)
    text = re.sub(r"(?ms)^# The node inventory.*?^inventory: .*?$",
                  "# The node inventory, YAML or CSV (path relative to this file): every official commune of the\n"
                  "# province, written by `tslcd init`; fill in address, snmp, uplink and parent.\n"
                  "inventory: inventory.yaml", text, count=1)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(config, text)
    atomic_write_text(inventory, skeleton)
    print(f"wrote {config} and {inventory} ({len(found)} communes of {name}); fill in the addresses, then run:\n"
          f"  tslcd check --config {config}")
    return 0
