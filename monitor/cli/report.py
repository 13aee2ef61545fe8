"""`tslcd report daily`: the daily email rendered to a file, or sent now (issue 6)."""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.cli.common import handles_errors, iso_date
from monitor.config import check_address, load_config
from monitor.errors import MailError
from monitor.files import atomic_write_text

_EPILOG = """\
examples:
  tslcd report daily --out report.html                 yesterday's report, as the email would show it
  tslcd report daily --date 2025-11-24 --lang en --out r.html
  tslcd report daily --out -                           the plain-text part on standard output
  tslcd report daily --send                            send yesterday's report now to email.to and email.cc
  tslcd report daily --send --to me@example.gov.vn     a test send to one address (the outbox is not touched)
  tslcd report daily --date 2025-11-24 --resend        send a day already delivered again, on purpose (recorded)
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``report daily`` to the ``tslcd`` command's subparsers; return the ``report`` parser."""
    rep = subparsers.add_parser("report", help="reports: the daily email", description="Reports from the history "
                                "store. `report daily` is the email leaders and IT staff get every morning.")
    rsub = rep.add_subparsers(dest="report_command", metavar="REPORT", required=True)
    daily = rsub.add_parser(
        "daily", help="render the daily email (--out) or send it now (--send)",
        description=textwrap.fill("Build the daily connection report of one day from the history store, exactly as the "
                    "scheduled email says it: render it to a file (--out, HTML; a name ending in .txt or '-' gives "
                    "the plain-text part), and/or send it now (--send) to the configured recipients or to --to. "
                    "A send to the configured recipients is recorded in the outbox, so the scheduler does not "
                    "send that day again, and a second --send of a day already delivered to them refuses (saying "
                    "when it went); --resend sends it again on purpose and records that. Exit status 0 on success, "
                    "1 on a problem (config, store, SMTP, a day already sent).", 100),
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    daily.add_argument("--config", default="config.yaml", metavar="F", help="config file (default: %(default)s)")
    daily.add_argument("--date", type=iso_date, metavar="YYYY-MM-DD",
                       help="the day to report on (default: yesterday, in the report's timezone)")
    daily.add_argument("--out", metavar="F", help="write the report to F (HTML; .txt or '-': plain text)")
    daily.add_argument("--lang", choices=["vi", "en"], help="language (default: email.language, else vi)")
    daily.add_argument("--send", action="store_true", help="send it now")
    daily.add_argument("--to", action="append", metavar="ADDR", help="send to ADDR instead of email.to/cc "
                       "(repeatable)")
    daily.add_argument("--cc", action="append", metavar="ADDR", help="with --to: copy to ADDR (repeatable)")
    daily.add_argument("--resend", action="store_true", help="like --send, also for a day already delivered to the "
                       "configured recipients (recorded in the outbox)")
    daily.set_defaults(func=run)
    return rep  # type: ignore[no-any-return]


def _fail(text: str) -> int:
    print(f"tslcd: {text}", file=sys.stderr)
    return 1


@handles_errors(1)
def run(args: argparse.Namespace) -> int:
    """Run ``report daily``; return the exit status."""
    from exporters.email import (
        build_message,
        recipients_key,
        render_for,
        report_from_store,
        report_tz,
        send_blocking,
    )
    from monitor.store import open_store

    args.send = args.send or args.resend
    if getattr(args, "report_command", None) != "daily":
        return _fail(f"unknown report {getattr(args, 'report_command', None)!r}")
    if not args.out and not args.send:
        return _fail("nothing to do: give --out F to render the report, --send to send it, or both")
    if args.cc and not args.to:
        return _fail("--cc goes with --to (without --to the configured email.to and email.cc are used)")
    try:
        for a in (args.to or []) + (args.cc or []):
            check_address(a)
    except ValueError as e:
        return _fail(f"--to/--cc: {e}")
    cfg = load_config(args.config)
    settings = cfg.email
    if args.send and settings is None:
        return _fail(f"{args.config} has no email: section (sender and SMTP server), so nothing can be sent")
    tz = report_tz(cfg, settings)
    today = datetime.now(tz).date()
    day = args.date or today - timedelta(days=1)
    if day > today:
        return _fail(f"--date {day.isoformat()} is in the future (today is {today.isoformat()} in {tz})")
    store = open_store(cfg, create=False)
    try:
        report = report_from_store(store, cfg, day, settings=settings, tz=tz)
        rendered = render_for(report, settings, base=cfg.source.parent, language=args.lang)
        if day == today:
            print(f"tslcd: {day.isoformat()} is today: the figures cover the day so far", file=sys.stderr)
        if args.out:
            _write(args.out, rendered.text if args.out == "-" or args.out.endswith(".txt") else rendered.html)
            if args.out != "-":
                print(f"wrote {args.out}: {rendered.subject}")
        if not args.send:
            return 0
        assert settings is not None
        to = tuple(args.to) if args.to else settings.to
        cc = tuple(args.cc or ()) if args.to else settings.cc
        key = recipients_key(to, cc)
        before = None if args.to else store.outbox().sent(day, key)
        if before is not None and not args.resend:
            when = datetime.fromtimestamp(before.sent_at or before.last_try or 0, tz).strftime("%Y-%m-%d %H:%M")
            return _fail(f"the report of {day.isoformat()} was already sent to these recipients at {when} ({tz}), "
                         f"Message-ID {before.message_id}; pass --resend to send it again")
        now = time.time()
        msg = build_message(rendered, sender=settings.sender, to=to, cc=cc, reply_to=settings.reply_to, day=day,
                            now=now, tz=tz)
        try:
            sent = send_blocking(settings.smtp, msg)
        except MailError as e:
            return _fail(f"not sent: {e}")
        if before is not None:
            first = datetime.fromtimestamp(before.sent_at or 0, tz).strftime("%Y-%m-%d %H:%M")
            store.outbox().mark_resent(day, key, now, sent.message_id,
                                       f"resent by hand; before: {first} ({tz}) as {before.message_id}")
        elif not args.to:
            store.outbox().mark_sent(day, key, now, sent.message_id,
                                     recipients="To: " + ", ".join(to) + ("; Cc: " + ", ".join(cc) if cc else ""))
        print(f"sent {rendered.subject!r} to {len(sent.recipients)} recipient(s), Message-ID {sent.message_id}")
        for rcpt, (code, text) in sent.refused.items():
            print(f"tslcd: the server refused {rcpt}: {code} {text}", file=sys.stderr)
        return 1 if sent.refused else 0
    finally:
        store.close()


def _write(out: str, text: str) -> None:
    if out == "-":
        sys.stdout.write(text)
        return
    atomic_write_text(Path(out), text)
