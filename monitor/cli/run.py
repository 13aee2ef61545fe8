"""`tslcd run` (the monitor) and `tslcd check` (config and inventory validated together)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from inventory.model import Inventory
from monitor.cli.common import DEFAULT_CONFIG, handles_errors, load_inventory_for
from monitor.config import Config, load_config
from monitor.errors import ConfigError, IcmpPermissionError, InventoryError

log = logging.getLogger("tslcd.cli")


def add_run_parser(sub: Any) -> None:
    """Add ``run`` to the ``tslcd`` command's subparsers."""
    run = sub.add_parser(
        "run", help="run the monitor: ICMP sweeps, states, /metrics and the status page",
        description="Load the config and inventory, sweep every node on schedule, and serve /metrics, the "
                    "status page (/), /api/status.json and /healthz. SIGHUP (or editing the inventory file) "
                    "reloads the inventory; a bad file keeps the last good one. SIGTERM/Ctrl-C stop cleanly. "
                    "A user who may not open ICMP sockets gets a message naming the setting that allows it; when "
                    "every node is on loopback (the shipped demo inventory) the monitor instead runs in a user "
                    "and network namespace of its own, where it may. A listening socket passed by systemd "
                    "(LISTEN_FDS) is served instead of --listen.",
    )
    run.add_argument("--config", default=DEFAULT_CONFIG, metavar="F", help="config file (default: %(default)s)")
    run.add_argument("--inventory", metavar="F", help="inventory file (YAML or CSV), instead of the config's")
    run.add_argument("--listen", metavar="HOST:PORT", help="HTTP address, instead of the config's web.listen")
    run.add_argument("--web.config.file", dest="web_config", metavar="F",
                     help="TLS and basic auth (the web configuration file of Prometheus exporters), instead of the "
                          "config's web.config_file")
    run.set_defaults(func=cmd_run)


def add_check_parser(sub: Any) -> None:
    """Add ``check`` to the ``tslcd`` command's subparsers."""
    check = sub.add_parser(
        "check", help="validate the config and the inventory, listing every problem",
        description="Parse the config and the inventory it names (or --inventory) and print every problem "
                    "found, each with its file and line (or CSV row), then every warning (what the monitor "
                    "runs with: a commune code the bundled list lacks, nodes of another province). Exit status 0 "
                    "when both are valid, 1 otherwise (with --strict, also when there is a warning).",
    )
    check.add_argument("--config", default=DEFAULT_CONFIG, metavar="F", help="config file (default: %(default)s)")
    check.add_argument("--inventory", metavar="F", help="inventory file, instead of the config's")
    check.add_argument("--web.config.file", dest="web_config", metavar="F",
                       help="the web configuration file to check, instead of the config's web.config_file")
    check.add_argument("--strict", action="store_true", help="treat warnings (a commune code the bundled list of "
                       "units lacks, nodes of another province) as problems: exit 1")
    check.set_defaults(func=cmd_check)


@handles_errors(1)
def cmd_run(args: argparse.Namespace) -> int:
    """Run the monitor until SIGTERM or Ctrl-C."""
    from monitor.procs import raise_open_files_limit, tune_malloc
    from monitor.runtime import app, logs, sandbox

    tune_malloc()
    cfg = load_config(args.config, inventory=args.inventory, web_config=args.web_config)
    logs.setup(cfg.log_level)
    raise_open_files_limit()
    inventory = load_inventory_for(cfg)
    for w in inventory.warnings:  # once, at start (and again on a reload that still has it)
        log.warning("inventory", extra={"problem": w})
    reload_check = None
    if sandbox.inside():
        def reload_check(inv: Inventory) -> list[str]:
            return [f"{p}: this monitor runs in a network namespace of its own, where only loopback answers "
                    "(no ICMP permission for its user): restart it with one to monitor real nodes"
                    for p in sandbox.loopback_only_problems(inv, bool(cfg.snmp_profiles))]
    try:
        monitor = app.build(cfg, inventory, inventory_path=cfg.inventory_path, reload_check=reload_check)
    except IcmpPermissionError as e:
        _sandbox_or_raise(e, cfg, inventory, args)

    def ready(url: str) -> None:
        print(f"tslcd: monitoring {len(inventory.nodes)} nodes of {cfg.province}; status page {url} "
              f"(metrics {url}metrics). Ctrl-C stops.", file=sys.stderr, flush=True)

    asyncio.run(monitor.run(args.listen, ready=ready))
    return 0


def _sandbox_or_raise(refused: IcmpPermissionError, cfg: Config, inventory: Inventory,
                      args: argparse.Namespace) -> NoReturn:
    """No ICMP socket may be opened here. When every node is on loopback (the shipped demo inventory) and the
    user may make a user namespace, run again inside one, where this user holds CAP_NET_RAW and loopback
    answers as here; otherwise raise the refusal, which says which setting allows ICMP."""
    from monitor.runtime import sandbox

    if os.geteuid() == 0 or sandbox.inside() or sandbox.loopback_only_problems(inventory, bool(cfg.snmp_profiles)):
        raise refused
    reason = sandbox.unavailable()
    if reason is not None:
        raise IcmpPermissionError(f"{refused} (A network namespace of its own would do for this loopback "
                                  f"inventory, but {reason}.)") from None
    log.warning("no ICMP permission for this user; every node is on loopback, so the monitor runs in a user "
                "and network namespace of its own (where it may ping its own loopback), serving here",
                extra={"user": os.getuid()})
    sandbox.reexec(sys.argv[1:], listen=args.listen or cfg.web.listen)


def cmd_check(args: argparse.Namespace) -> int:
    """Validate config and inventory together; print every problem of both."""
    from inventory.load import load_inventory

    problems: list[str] = []
    cfg: Config | None = None
    try:
        cfg = load_config(args.config, inventory=args.inventory, web_config=args.web_config)
    except ConfigError as e:
        problems += e.problems
    inv_path = Path(args.inventory) if args.inventory else (cfg.inventory_path if cfg else None)
    inventory = None
    if inv_path is None:
        problems.append(f"{args.config}: the inventory could not be located (fix the config or pass --inventory)")
    else:
        try:
            inventory = load_inventory(inv_path, snmp_profiles=set(cfg.snmp_profiles) if cfg else None,
                                       default_province=cfg.default_province if cfg else None,
                                       province=cfg.watched if cfg else None)
        except InventoryError as e:
            problems += [str(p) for p in e.problems]
        except OSError as e:
            problems.append(f"{inv_path}: cannot read: {e.strerror}")
    warnings = list(inventory.warnings) if inventory is not None else []
    if args.strict or (cfg is not None and cfg.strict_inventory):
        problems += warnings
        warnings = []
    if problems:
        print(f"{len(problems)} problem(s):")
        for p in problems:
            print(f"  {p}")
        return 1
    assert cfg is not None and inventory is not None
    today = datetime.now(cfg.tz).date()
    active = inventory.active(today)
    communes = [n for n in active if n.is_commune]
    print(f"OK: {args.config} and {inv_path}: {len(inventory.nodes)} nodes, {len(active)} active today "
          f"({len(communes)} communes, {sum(1 for n in communes if n.address)} with a circuit)")
    if warnings:
        print(f"{len(warnings)} warning(s) (the monitor runs with them; --strict refuses them):")
        for w in warnings:
            print(f"  {w}")
    return 0
