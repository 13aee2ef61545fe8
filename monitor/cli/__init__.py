"""The `tslcd` command: one module per command group; nothing in the product imports this package.

    init             monitor.cli.init         a new province's config and inventory skeleton
    run, check       monitor.cli.run          the monitor; config and inventory validated
    demo             monitor.cli.demo         a simulated province on this machine
    audit            monitor.cli.audit        the auditor's report of a period; the hash chain verified
    report daily     monitor.cli.report       the daily email rendered or sent now
    snmp probe       monitor.cli.snmp         one node polled by hand
    inventory import monitor.cli.inventory    a province's official communes as an inventory skeleton
    store backup     monitor.cli.store        a consistent copy of the history store
    maintenance      monitor.cli.maintenance  maintenance windows declared, listed and ended at run time
    outage           monitor.cli.outage       outages listed, annotated, excluded with an approver
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from monitor.cli import audit, demo, init, inventory, maintenance, outage, report, run, snmp, store

_EPILOG = """\
examples:
  tslcd run                                  monitor with ./config.yaml, serve on its web.listen
  tslcd run --listen 0.0.0.0:9750            the same, reachable from other machines
  tslcd check --inventory nodes.csv          validate config and an inventory, list every problem
  tslcd demo                                 a simulated province on this machine
  tslcd inventory import --province "Đắk Lắk" --out dak_lak.yaml

Pages: http://HOST:PORT/ (status), /metrics (Prometheus), /api/status.json, /healthz.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tslcd",
        description="tslcd-monitor: which commune People's Committees are connected to the TSLCD network, "
                    "and what share of them, against the 100% target.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    init.add_parser(sub)
    run.add_run_parser(sub)
    demo.add_parser(sub)
    run.add_check_parser(sub)
    audit.add_parser(sub)
    snmp.add_parser(sub)
    inventory.add_parser(sub)
    report.add_parser(sub)
    store.add_parser(sub)
    maintenance.add_parser(sub)
    outage.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the command; return its exit status."""
    args = _parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
