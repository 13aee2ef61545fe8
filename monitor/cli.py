"""The `tslcd` command: run, demo, check, inventory import."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from monitor.config import Config, ConfigError, load_config

log = logging.getLogger("tslcd.cli")

DEFAULT_CONFIG = "config.yaml"

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

    run = sub.add_parser(
        "run", help="run the monitor: ICMP sweeps, states, /metrics and the status page",
        description="Load the config and inventory, sweep every node on schedule, and serve /metrics, the "
                    "status page (/), /api/status.json and /healthz. SIGHUP (or editing the inventory file) "
                    "reloads the inventory; a bad file keeps the last good one. SIGTERM/Ctrl-C stop cleanly.",
    )
    run.add_argument("--config", default=DEFAULT_CONFIG, metavar="F", help="config file (default: %(default)s)")
    run.add_argument("--inventory", metavar="F", help="inventory file (YAML or CSV), instead of the config's")
    run.add_argument("--listen", metavar="HOST:PORT", help="HTTP address, instead of the config's web.listen")

    demo = sub.add_parser(
        "demo", help="monitor a simulated province built on this machine",
        description="Build a small simulated Đắk Lắk from the official list of communes: most on loopback "
                    "addresses, some in network namespaces (as root) whose links go down and up on a "
                    "schedule, one aggregation node whose failure makes its communes unreachable, and a few "
                    "communes with no circuit yet. Runs the monitor against it and removes everything it "
                    "created on exit (Ctrl-C included). Without root it runs the loopback part only.",
    )
    demo.add_argument("--config", default=DEFAULT_CONFIG, metavar="F",
                      help="config file for the thresholds (default: %(default)s; its inventory is replaced)")
    demo.add_argument("--listen", metavar="HOST:PORT", help="HTTP address (default: the config's web.listen)")
    demo.add_argument("--no-netns", action="store_true", help="loopback only, even as root")
    demo.add_argument("--no-snmp", action="store_true", help="ICMP only: start no SNMP agents")
    demo.add_argument("--flap-every", type=float, default=40.0, metavar="S",
                      help="seconds between link changes in the simulated network (default: %(default)s)")
    demo.add_argument("--interval", type=float, default=5.0, metavar="S",
                      help="seconds between sweeps, shorter than in production so changes show quickly "
                           "(default: %(default)s)")
    demo.add_argument("--duration", type=float, metavar="S", help="stop by itself after S seconds")

    check = sub.add_parser(
        "check", help="validate the config and the inventory, listing every problem",
        description="Parse the config and the inventory it names (or --inventory) and print every problem "
                    "found, each with its file and line (or CSV row). Exit status 0 when both are valid, 1 "
                    "otherwise.",
    )
    check.add_argument("--config", default=DEFAULT_CONFIG, metavar="F", help="config file (default: %(default)s)")
    check.add_argument("--inventory", metavar="F", help="inventory file, instead of the config's")

    from exporters import audit

    audit.add_parser(sub)
    from monitor import snmp_cli

    snmp_cli.add_parser(sub)

    inv = sub.add_parser("inventory", help="inventory tools", description="Inventory tools.")
    inv_sub = inv.add_subparsers(dest="inventory_command", metavar="ACTION", required=True)
    imp = inv_sub.add_parser(
        "import", help="write an inventory skeleton of a province's official communes",
        description="Write a YAML inventory with every commune and ward of a province (official codes and "
                    "names of the current administrative division) for an operator to fill in addresses, "
                    "SNMP profiles, uplinks and parents. Đắk Lắk is shipped; the other 33 provinces need the "
                    "optional package: pip install 'tslcd-monitor[units]'.",
    )
    imp.add_argument("--province", required=True, metavar="NAME", help='name or code, e.g. "Đắk Lắk", "dak lak", 66')
    imp.add_argument("--out", required=True, metavar="F", help="file to write ('-' for standard output)")
    imp.add_argument("--force", action="store_true", help="overwrite F if it exists")

    from monitor import mail_cli

    mail_cli.add_parser(sub)
    return p


def _load_config(path: str, inventory: str | None) -> Config:
    try:
        return load_config(path, inventory=inventory)
    except ConfigError as e:
        print(f"tslcd: invalid configuration ({len(e.problems)} problem(s)):", file=sys.stderr)
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(1) from None


def cmd_check(args: argparse.Namespace) -> int:
    from inventory.load import InventoryError, load_inventory

    problems: list[str] = []
    cfg: Config | None = None
    try:
        cfg = load_config(args.config, inventory=args.inventory)
    except ConfigError as e:
        problems += e.problems
    inv_path = Path(args.inventory) if args.inventory else (cfg.inventory_path if cfg else None)
    inventory = None
    if inv_path is None:
        problems.append(f"{args.config}: the inventory could not be located (fix the config or pass --inventory)")
    else:
        try:
            inventory = load_inventory(inv_path, snmp_profiles=set(cfg.snmp_profiles) if cfg else None,
                                       default_province=cfg.province if cfg else None)
        except InventoryError as e:
            problems += [str(p) for p in e.problems]
        except OSError as e:
            problems.append(f"{inv_path}: cannot read: {e.strerror}")
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
    return 0


def _engine() -> object:
    from monitor.icmp import IcmpEngine, IcmpPermissionError

    try:
        return IcmpEngine()
    except IcmpPermissionError as e:
        print(f"tslcd: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def attach_recorder(monitor: object, cfg: Config) -> bool:
    """Open (and migrate) the history store and let the monitor record into it; False: said why."""
    from monitor.recorder import Recorder
    from monitor.store import StoreError

    try:
        recorder = Recorder.open(cfg)
    except StoreError as e:
        print(f"tslcd: {e}", file=sys.stderr)
        monitor.engine.close()  # type: ignore[attr-defined]
        return False
    monitor.recorder = recorder  # type: ignore[attr-defined]
    monitor.self_metrics.registry.register(recorder.collector())  # type: ignore[attr-defined]
    return True


def cmd_run(args: argparse.Namespace) -> int:
    from inventory.load import InventoryError, load_inventory
    from monitor import logs
    from monitor.service import Monitor

    cfg = _load_config(args.config, args.inventory)
    logs.setup(cfg.log_level)
    try:
        inventory = load_inventory(cfg.inventory_path, snmp_profiles=set(cfg.snmp_profiles),
                                   default_province=cfg.province)
    except InventoryError as e:
        print(f"tslcd: invalid inventory ({len(e.problems)} problem(s)):", file=sys.stderr)
        for p in e.problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"tslcd: cannot read the inventory {cfg.inventory_path}: {e.strerror}", file=sys.stderr)
        return 1
    monitor = Monitor(cfg, inventory, _engine(), inventory_path=cfg.inventory_path)  # type: ignore[arg-type]
    if not attach_recorder(monitor, cfg):
        return 1

    def ready(url: str) -> None:
        print(f"tslcd: monitoring {len(inventory.nodes)} nodes of {cfg.province}; status page {url} "
              f"(metrics {url}metrics). Ctrl-C stops.", file=sys.stderr, flush=True)

    from exporters.web import ListenError
    from monitor.store import StoreError

    try:
        asyncio.run(monitor.run(args.listen, ready=ready))
    except (ListenError, StoreError) as e:
        print(f"tslcd: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from monitor import demo, logs

    cfg = _load_config(args.config, None)
    logs.setup(cfg.log_level)
    return demo.run_demo(cfg, listen=args.listen, netns=not args.no_netns, flap_every_s=args.flap_every,
                         interval_s=args.interval, duration_s=args.duration, snmp=not args.no_snmp)


def cmd_inventory_import(args: argparse.Namespace) -> int:
    from inventory.importer import SkeletonError, build_skeleton

    try:
        text = build_skeleton(args.province)
    except SkeletonError as e:
        print(f"tslcd: {e}", file=sys.stderr)
        return 1
    if args.out == "-":
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"tslcd: {out} exists; pass --force to overwrite it", file=sys.stderr)
        return 1
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    print(f"wrote {out}: fill in address, snmp, uplink, parent and area, then run: tslcd check --inventory {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return cmd_run(args)
    if args.command == "demo":
        return cmd_demo(args)
    if args.command == "check":
        return cmd_check(args)
    if args.command == "snmp":
        from monitor import snmp_cli

        return snmp_cli.run(args)
    if args.command == "audit":
        from exporters import audit

        return audit.run(args)
    if args.command == "inventory" and args.inventory_command == "import":
        return cmd_inventory_import(args)
    if args.command == "report":
        from monitor import mail_cli

        return mail_cli.run(args)
    raise AssertionError(args)


if __name__ == "__main__":
    sys.exit(main())
