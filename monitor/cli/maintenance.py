"""`tslcd maintenance add|list|end`: maintenance windows declared at run time, kept in the history store with who
declared them and why; the running monitor applies them with its next sweep, without a restart."""

from __future__ import annotations

import argparse
import getpass
import os
import re
import time
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from monitor.cli.common import DEFAULT_CONFIG, handles_errors
from monitor.config import load_config
from monitor.core.maintenance import RECURRENCES, MaintenanceWindow
from monitor.errors import MaintenanceError

_EPILOG = """\
examples:
  tslcd maintenance add --codes 66-AGG-DL --start 2026-12-06T22:00 --duration 4h \\
      --reason "thay thiết bị chuyển mạch / switch replacement" --by "Nguyễn Văn A"
  tslcd maintenance add --areas "Phú Yên (cũ)" --start 2026-12-06T22:00 --end 2026-12-07T02:00 \\
      --every weekly --until 2027-03-31 --reason "bảo trì định kỳ / weekly maintenance" --by ops
  tslcd maintenance list
  tslcd maintenance end 3 --by "Nguyễn Văn A"

A window covers the nodes it names and every node behind them (a window on an aggregation node covers its
communes). Times are the province's (config: timezone) unless they carry an offset. A window that began before
it is declared takes recorded time out of availability: it needs --approved-by NAME, and reports show it.
The same through HTTP: GET/POST /api/maintenance, POST /api/maintenance/ID/end (docs/design.md).
"""

_DURATION = re.compile(r"(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?")


def duration(text: str) -> timedelta:
    """``4h``, ``90m``, ``1d2h``, ``2h30m``: a positive duration (argparse type)."""
    m = _DURATION.fullmatch(text.strip())
    if not m or not any(m.groups()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (examples: 4h, 90m, 1d2h, 2h30m)")
    d, h, mi = (int(x or 0) for x in m.groups())
    value = timedelta(days=d, hours=h, minutes=mi)
    if value <= timedelta(0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive duration")
    return value


def moment(text: str, tz: tzinfo, now: float) -> float:
    """``now``, or an ISO date-time (naive: in ``tz``) as epoch seconds."""
    if text.strip().lower() == "now":
        return now
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError as e:
        raise MaintenanceError(f"{text!r} is not a time (expected YYYY-MM-DDTHH:MM, or now)") from e
    return (at if at.tzinfo else at.replace(tzinfo=tz)).timestamp()


def names(values: list[str] | None) -> tuple[str, ...]:
    """Repeated or comma-separated names, in order, once each."""
    out: list[str] = []
    for v in values or ():
        out += [x.strip() for x in v.split(",") if x.strip() and x.strip() not in out]
    return tuple(out)


def who() -> str:
    """The person at the terminal (through sudo: the one who ran it)."""
    return os.environ.get("SUDO_USER") or getpass.getuser()


def add_parser(sub: Any) -> None:
    """Add ``maintenance`` (add, list, end) to the ``tslcd`` command's subparsers."""
    m = sub.add_parser("maintenance", help="declare, list and end maintenance windows at run time",
                       description="Maintenance windows kept in the history store: the running monitor applies "
                                   "them with its next sweep (no restart); reports show their reasons.",
                       epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = m.add_subparsers(dest="maintenance_command", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="declare a window", epilog=_EPILOG,
                             description="Declare a maintenance window on nodes (codes) and/or areas: inside it they "
                                         "and every node behind them are in maintenance, out of availability.",
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    add.add_argument("--codes", action="append", metavar="CODE[,CODE]", help="node codes (repeatable)")
    add.add_argument("--areas", action="append", metavar="AREA[,AREA]", help="areas (repeatable)")
    add.add_argument("--start", required=True, metavar="T", help="YYYY-MM-DDTHH:MM (province time) or now")
    end = add.add_mutually_exclusive_group(required=True)
    end.add_argument("--end", metavar="T", help="when it ends (province time)")
    end.add_argument("--duration", type=duration, metavar="D", help="how long: 4h, 90m, 1d2h")
    add.add_argument("--every", choices=RECURRENCES, help="repeat the span every day or week")
    add.add_argument("--until", type=date.fromisoformat, metavar="YYYY-MM-DD",
                     help="last day a recurring window starts (default: until ended)")
    add.add_argument("--reason", required=True, help="why: shown on reports and the email")
    add.add_argument("--by", default=None, help="who declares it (default: the user running tslcd)")
    add.add_argument("--approved-by", metavar="NAME",
                     help="who approved it: required for a window that began before it is declared")
    add.add_argument("--config", default=DEFAULT_CONFIG, metavar="C", help="config file (default: %(default)s)")
    add.set_defaults(func=cmd_add)
    ls = actions.add_parser("list", help="windows declared at run time, newest first",
                            description="Windows declared at run time: those not over yet, or --all.")
    ls.add_argument("--all", action="store_true", help="also the windows that are over")
    ls.add_argument("--config", default=DEFAULT_CONFIG, metavar="C", help="config file (default: %(default)s)")
    ls.set_defaults(func=cmd_list)
    stop = actions.add_parser("end", help="end a window now (a recurring one: no later span)",
                              description="End a window now; the time it covered so far stays maintenance.")
    stop.add_argument("id", type=int, metavar="ID", help="the window (tslcd maintenance list)")
    stop.add_argument("--by", default=None, help="who ends it (default: the user running tslcd)")
    stop.add_argument("--config", default=DEFAULT_CONFIG, metavar="C", help="config file (default: %(default)s)")
    stop.set_defaults(func=cmd_end)


def window_from(args: argparse.Namespace, tz: tzinfo, now: float) -> MaintenanceWindow:
    start = moment(args.start, tz, now)
    end = start + args.duration.total_seconds() if args.duration is not None else moment(args.end, tz, now)
    if args.until is not None and args.every is None:
        raise MaintenanceError("--until is for a recurring window (--every daily|weekly)")
    return MaintenanceWindow(0, start, end, names(args.codes), names(args.areas), args.reason.strip(),
                             (args.by or who()).strip(), now, args.every, args.until,
                             args.approved_by.strip() if args.approved_by else None)


def describe(w: MaintenanceWindow, tz: tzinfo, now: float) -> str:
    """One line per window, for people."""
    fmt = "%Y-%m-%d %H:%M"
    span = (f"{datetime.fromtimestamp(w.start, tz):{fmt}} – {datetime.fromtimestamp(w.end, tz):{fmt}}")
    if w.recur:
        span += f", every {'day' if w.recur == 'daily' else 'week'}" + (f" until {w.until}" if w.until else "")
    if w.ended_at is not None:
        status = f"ended {datetime.fromtimestamp(w.ended_at, tz):{fmt}} by {w.ended_by}"
    elif any(True for _ in w.spans(now, now + 1e-6, tz)):
        status = "in progress"
    elif next(w.spans(now, float("inf"), tz), None) is not None:
        status = "upcoming"
    else:
        status = "over"
    nodes = ", ".join([*w.codes, *(f"area {a}" for a in w.areas)])
    approved = f"; approved by {w.approved_by}" if w.approved_by else ""
    return f"{w.id:>4}  {status:<12} {span}  {nodes} (and the nodes behind)  {w.reason!r}  by {w.declared_by}{approved}"


@handles_errors(1)
def cmd_add(args: argparse.Namespace) -> int:
    from monitor.store import open_store

    cfg = load_config(args.config)
    now = time.time()
    w = window_from(args, cfg.tz, now)
    store = open_store(cfg, create=False)
    try:
        added = store.add_window(w)
    finally:
        store.close()
    print(f"declared maintenance window {added.id}: {describe(added, cfg.tz, now).strip()}")
    print("the running monitor applies it with its next sweep")
    return 0


@handles_errors(1)
def cmd_list(args: argparse.Namespace) -> int:
    from monitor.store import open_store

    cfg = load_config(args.config)
    now = time.time()
    store = open_store(cfg, create=False)
    try:
        found = store.maintenance_windows() if args.all else store.maintenance_windows(now, float("inf"))
    finally:
        store.close()
    if not found:
        print("no maintenance window declared" + ("" if args.all else " that is not over (--all: every one)"))
        return 0
    for w in sorted(found, key=lambda w: -w.id):
        print(describe(w, cfg.tz, now))
    return 0


@handles_errors(1)
def cmd_end(args: argparse.Namespace) -> int:
    from monitor.store import open_store

    cfg = load_config(args.config)
    store = open_store(cfg, create=False)
    try:
        w = store.end_window(args.id, time.time(), (args.by or who()).strip())
    finally:
        store.close()
    print(f"ended maintenance window {w.id} ({w.reason!r}); the running monitor applies it with its next sweep")
    return 0
