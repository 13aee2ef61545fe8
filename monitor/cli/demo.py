"""`tslcd demo`: the monitor against a simulated province built on this machine (monitor.lab.demo)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from monitor.cli.common import DEFAULT_CONFIG, handles_errors
from monitor.config import load_config


def add_parser(sub: Any) -> None:
    """Add ``demo`` to the ``tslcd`` command's subparsers."""
    demo = sub.add_parser(
        "demo", help="monitor a simulated province built on this machine",
        description="Build a small simulated Đắk Lắk from the official list of communes: most on loopback "
                    "addresses, some in network namespaces (as root) whose links go down and up on a "
                    "schedule, one aggregation node whose failure makes its communes unreachable, and a few "
                    "communes with no circuit yet. Runs the monitor against it and removes everything it "
                    "created on exit (Ctrl-C included). Without root it runs in a user and network namespace of its "
                    "own where the kernel allows unprivileged user namespaces (Debian does), namespaces and "
                    "flapping links included, with the status page served here; where it does not, the "
                    "loopback part only, saying which setting would allow the rest.",
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
    demo.add_argument("--two-provinces", action="store_true",
                      help="also Lai Châu's 38 communes (5 without a circuit): the national rate first, then each "
                           "province's, as a deployment watching several provinces shows them")

    demo.set_defaults(func=cmd_demo)


@handles_errors(1, prefix="tslcd demo")
def cmd_demo(args: argparse.Namespace) -> int:
    """Build the simulated province, monitor it, remove everything on exit."""
    import importlib.util

    from monitor.lab import demo
    from monitor.runtime import logs, sandbox

    if not args.no_snmp and importlib.util.find_spec("snmpsim") is None:
        print("tslcd demo: the simulated routers' SNMP agents need snmpsim, which is an extra: "
              "pip install 'tslcd-monitor[demo]' (or run `tslcd demo --no-snmp`, ICMP only)", file=sys.stderr)
        return 2

    cfg = load_config(args.config)
    logs.setup(cfg.log_level)
    no_netns = None
    if not args.no_netns and os.geteuid() != 0 and not sandbox.inside():
        no_netns = sandbox.unavailable()
        if no_netns is None:
            print("tslcd demo: not root: running in a user and network namespace of its own (nothing sent there "
                  "can leave it); the status page is served here", file=sys.stderr, flush=True)
            sandbox.reexec(sys.argv[1:], listen=args.listen or cfg.web.listen)
        no_netns = f"not root, and {no_netns}; or run it as root"
    return demo.run_demo(cfg, listen=args.listen, netns=not args.no_netns, flap_every_s=args.flap_every,
                         interval_s=args.interval, duration_s=args.duration, snmp=not args.no_snmp,
                         no_netns=no_netns, two_provinces=args.two_provinces)
