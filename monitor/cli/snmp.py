"""`tslcd snmp probe CODE`: poll one node's SNMP profile by hand and print what was read or why it failed.

Every request and every value read is printed as it happens; secrets never are (the
profile is described by its protocols, and all output is scrubbed of the profile's
community and keys). Exit status: 0 when the poll read everything, 1 when it failed,
2 when the config, the inventory or the node is unusable.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from exporters.fmt import clock_duration
from inventory.model import Node
from monitor.cli.common import handles_errors, load_inventory_for
from monitor.config import Config, load_config
from monitor.text import scrub

if TYPE_CHECKING:  # pysnmp is imported only when a probe runs: `tslcd --help` stays fast
    from monitor.core.snmp import SnmpReading
    from monitor.probes.snmp import SnmpPoller

__all__ = ["add_parser", "run"]

_EPILOG = """\
examples:
  tslcd snmp probe 24133                      poll commune 24133 with its profile from ./config.yaml
  tslcd snmp probe 24133 --timeout 5          the same, waiting up to 5 s per request
  tslcd snmp probe 66-CORE --uplink Gi0/0/1   look for another uplink than the inventory's

Reasons a poll fails: timeout, wrong_community, auth_failure, unknown_user, privacy_failure,
v3_report, no_such_object, uplink_not_found, unexpected_type, agent_error, local_error.
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add ``snmp`` (with ``probe``) to the ``tslcd`` command's subparsers; return the ``snmp`` parser."""
    snmp = subparsers.add_parser("snmp", help="SNMP tools: probe one node by hand",
                                 description="SNMP tools.")
    actions = snmp.add_subparsers(dest="snmp_command", metavar="ACTION", required=True)
    probe = actions.add_parser(
        "probe", help="poll one node's SNMP profile and show what was read, or exactly what failed",
        description="Poll one node over SNMP with the profile the inventory gives it, exactly as the monitor "
                    "does (discover the uplink by ifName/ifAlias/ifDescr, then read uptime, uplink status, "
                    "traffic and error counters), printing every request and every value read, then the "
                    "result. Secrets are never printed. Exit status 0 when everything was read, 1 when the "
                    "poll failed, 2 when the config, inventory or node is unusable.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    probe.add_argument("code", help="the node's code (as in the inventory)")
    probe.add_argument("--config", default="config.yaml", metavar="F", help="config file (default: %(default)s)")
    probe.add_argument("--inventory", metavar="F", help="inventory file, instead of the config's")
    probe.add_argument("--timeout", type=float, metavar="S", help="seconds to wait per request (default: the "
                                                                  "profile's timeout_s)")
    probe.add_argument("--retries", type=int, metavar="N", help="retries per request (default: the profile's)")
    probe.add_argument("--uplink", metavar="NAME", help="the uplink's ifName/ifAlias/ifDescr, instead of the "
                                                        "inventory's")
    probe.set_defaults(func=run)
    return snmp


def _find(nodes: tuple[Node, ...], code: str, today: datetime) -> Node | None:
    """The node with ``code`` active today, else the latest one with that code."""
    same = [n for n in nodes if n.code == code]
    active = [n for n in same if n.active_on(today.date())]
    if active:
        return active[0]
    return max(same, key=lambda n: n.active_until or n.active_from or today.date(), default=None)


@handles_errors(2)
def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run ``tslcd snmp probe``; return the exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    from monitor.probes.snmp import SnmpPoller, describe_profile

    cfg: Config = load_config(args.config, inventory=args.inventory)
    inventory = load_inventory_for(cfg)
    node = _find(inventory.nodes, args.code, datetime.now(cfg.tz))
    if node is None:
        print(f"tslcd: no node with code {args.code!r} in {Path(cfg.inventory_path)}", file=err)
        return 2
    if not node.address:
        print(f"tslcd: node {node.code} ({node.name}) has no address (no circuit yet): nothing to probe", file=err)
        return 2
    if not node.snmp:
        print(f"tslcd: node {node.code} ({node.name}) has no snmp profile in the inventory", file=err)
        return 2
    profile_name = node.snmp
    profile = cfg.snmp_profiles[profile_name]
    changes: dict[str, object] = {}
    if args.timeout is not None:
        changes["timeout_s"] = args.timeout
    if args.retries is not None:
        changes["retries"] = args.retries
    if changes:
        profile = profile.model_copy(update=changes)
    if args.uplink is not None:
        node = replace(node, uplink=args.uplink or None)
    secrets = [s.get_secret_value() for s in (profile.community, profile.auth_key, profile.priv_key) if s]

    def say(line: str) -> None:
        print(scrub(line, secrets), file=out, flush=True)

    where = f"{node.address}:{profile.port}" if ":" not in node.address else f"[{node.address}]:{profile.port}"
    say(f"node {node.code} {node.name} at {where}, uplink {node.uplink!r}" if node.uplink
        else f"node {node.code} {node.name} at {where}, no uplink in the inventory (system group only)")
    say(describe_profile(profile_name, profile))
    reading = asyncio.run(_probe(SnmpPoller({profile_name: profile}, max_in_flight=1), node, say))
    _summary(reading, say)
    return 0 if reading.ok else 1


async def _probe(poller: SnmpPoller, node: Node, say: Callable[[str], None]) -> SnmpReading:
    try:
        return await poller.poll_node(node, trace=say)
    finally:
        poller.close()


def _summary(r: SnmpReading, say: Callable[[str], None]) -> None:
    say("")
    say("read:" if r.ok else f"FAILED: {r.reason.value}: {r.detail}")
    if r.sys_name is not None:
        say(f"  sysName      {r.sys_name}")
    if r.sys_descr is not None:
        say(f"  sysDescr     {' / '.join(line.strip() for line in r.sys_descr.splitlines() if line.strip())}")
    if r.sys_object_id is not None:
        say(f"  sysObjectID  {r.sys_object_id}")
    if r.uptime_ticks is not None:
        say(f"  sysUpTime    {clock_duration(r.uptime_ticks / 100)} ({r.uptime_ticks} ticks)")
    u = r.uplink
    if u is not None:
        say(f"  uplink       {u.name} = ifIndex {u.if_index} (by {u.matched_by}), ifOperStatus "
            f"{u.oper_text}({u.oper_status})")
        errors = "" if u.in_errors is None else f"; errors in {u.in_errors}, out {u.out_errors}"
        say(f"  counters     {u.bits}-bit: in {u.in_octets} bytes, out {u.out_octets} bytes{errors}")
    say(f"  requests     {r.requests} in {r.duration_s:.3f} s")
