"""`tslcd outage list|annotate|exclude`: the outages of a period with their ids, what operators say of them (a note,
a ticket, the cause as they know it), and approved exclusions from availability (issue 17, part 2)."""

from __future__ import annotations

import argparse
import time
from datetime import date, datetime, timedelta
from typing import Any

from monitor.cli.common import DEFAULT_CONFIG, handles_errors
from monitor.cli.maintenance import who
from monitor.config import load_config
from monitor.core.causes import CAUSES
from monitor.core.notes import EXCLUSION, NOTE, notes_of, outage_id, parse_outage_id
from monitor.errors import OutageNoteError

_EPILOG = """\
examples:
  tslcd outage list --from 2026-11-01 --to 2026-11-30 --code 24133
  tslcd outage annotate 24133@2026-11-02T08:00:00 --note "đứt cáp quang / fibre cut" --ticket VNPT-4411 --cause line
  tslcd outage exclude 24133@2026-11-02T08:00:00 --reason "thi công đường dây đã báo trước / planned works" \\
      --approved-by "Trần Thị B"

An exclusion takes an outage out of availability only with a named approver, and never silently: reports give
every figure it changes twice, as measured and with the approved exclusions. An outage on a day already sealed
re-seals the hash chain from that day (the reports list it). The same through HTTP:
POST /api/outages/ID/notes (docs/design.md).
"""


def add_parser(sub: Any) -> None:
    """Add ``outage`` (list, annotate, exclude) to the ``tslcd`` command's subparsers."""
    o = sub.add_parser("outage", help="list outages, annotate them, exclude one with an approver",
                       description="Outages and what operators say of them.", epilog=_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = o.add_subparsers(dest="outage_command", metavar="ACTION", required=True)
    ls = actions.add_parser("list", help="the outages of a period with their ids and notes",
                            description="The outages of the communes and nodes in a period (default: the last 7 "
                                        "days), longest first, with their ids, causes and notes.")
    ls.add_argument("--from", dest="first", type=date.fromisoformat, metavar="YYYY-MM-DD")
    ls.add_argument("--to", dest="last", type=date.fromisoformat, metavar="YYYY-MM-DD")
    ls.add_argument("--code", help="one node's outages only")
    ls.add_argument("--config", default=DEFAULT_CONFIG, metavar="C", help="config file (default: %(default)s)")
    ls.set_defaults(func=cmd_list)
    an = actions.add_parser("annotate", help="add a note (a ticket, the cause as you know it) to an outage",
                            epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    an.add_argument("id", metavar="ID", help="CODE@YYYY-MM-DDTHH:MM:SS, as `tslcd outage list` prints")
    an.add_argument("--note", required=True, help="what happened, what was done")
    an.add_argument("--ticket", help="the ticket in the province's ticketing system")
    an.add_argument("--cause", choices=[c.value for c in CAUSES], help="the cause as the operator knows it")
    an.add_argument("--by", default=None, help="who says so (default: the user running tslcd)")
    an.add_argument("--config", default=DEFAULT_CONFIG, metavar="C", help="config file (default: %(default)s)")
    an.set_defaults(func=cmd_annotate)
    ex = actions.add_parser("exclude", help="exclude an outage from availability (with a named approver)",
                            epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ex.add_argument("id", metavar="ID", help="CODE@YYYY-MM-DDTHH:MM:SS, as `tslcd outage list` prints")
    ex.add_argument("--reason", required=True, help="why it should not count (shown beside every figure)")
    ex.add_argument("--approved-by", required=True, metavar="NAME", help="who approved it")
    ex.add_argument("--by", default=None, help="who asks (default: the user running tslcd)")
    ex.add_argument("--config", default=DEFAULT_CONFIG, metavar="C", help="config file (default: %(default)s)")
    ex.set_defaults(func=cmd_exclude)


@handles_errors(1)
def cmd_list(args: argparse.Namespace) -> int:
    from monitor.core.history import day_span, merge_outages
    from monitor.store import open_store

    cfg = load_config(args.config)
    tz = cfg.tz
    today = datetime.now(tz).date()
    last = args.last or today
    first = args.first or last - timedelta(days=6)
    store = open_store(cfg, create=False)
    code_of: dict[Any, str]
    try:
        if args.code:
            pieces = [(u, p) for h in store.unit_history(args.code, first, last, tz) for u, p in h.outages]
            code_of = {u: args.code for u, _ in pieces}
        else:
            days = list(store.history(first, last, tz))
            pieces = [(u, p) for h in days for u, p in h.outages]
            version = store.version_for(last, tz)
            code_of = {n.unit: n.code for n in store.inventory_nodes(version)} if version is not None else {}
        notes = store.outage_notes(day_span(first, tz)[0], day_span(last, tz)[1])
    finally:
        store.close()
    def said(o: Any) -> list[str]:
        return [(f"EXCLUDED ({n.note}; approved by {n.approved_by})" if n.kind == EXCLUSION else n.note)
                + (f" [ticket {n.ticket}]" if n.ticket else "") + (f" [cause {n.cause}]" if n.cause else "")
                for n in notes_of(notes, o.unit, o.start, o.end)]

    merged = sorted(merge_outages(pieces), key=lambda o: -o.duration)
    if not merged:
        print(f"no outage from {first} to {last}")
        return 0
    for o in merged:
        code = code_of.get(o.unit, "?")
        lines = said(o)
        print(f"{outage_id(code, o.start, tz)}  until {datetime.fromtimestamp(o.end, tz):%Y-%m-%d %H:%M:%S}  "
              f"{o.duration / 60:.0f} min  {'unreachable' if o.unreachable_s > o.down_s else 'down'}  "
              f"cause {o.why or 'not recorded'}" + "".join(f"\n    {x}" for x in lines))
    return 0


def _note(args: argparse.Namespace, kind: str) -> int:
    from monitor.store import open_store

    cfg = load_config(args.config)
    try:
        code, start = parse_outage_id(args.id, cfg.tz)
    except ValueError as e:
        raise OutageNoteError(str(e)) from None
    store = open_store(cfg, create=False)
    try:
        note, reseal = store.add_outage_note(
            code, start, kind=kind, note=args.note if kind == NOTE else args.reason, by=(args.by or who()),
            at=time.time(), ticket=getattr(args, "ticket", None), cause=getattr(args, "cause", None),
            approved_by=getattr(args, "approved_by", None))
    finally:
        store.close()
    what = "exclusion" if kind == EXCLUSION else "note"
    print(f"{what} added to {outage_id(code, note.start, cfg.tz)}")
    if reseal is not None:
        print(f"the hash chain was re-sealed from {reseal.from_day}: new head {reseal.new_head} "
              f"(was {reseal.old_head}); the reports say so")
    return 0


@handles_errors(1)
def cmd_annotate(args: argparse.Namespace) -> int:
    return _note(args, NOTE)


@handles_errors(1)
def cmd_exclude(args: argparse.Namespace) -> int:
    return _note(args, EXCLUSION)
