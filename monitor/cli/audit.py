"""`tslcd audit` and `tslcd audit verify`: the auditor's report of any period, and the hash chain checked."""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DatabaseError

from exporters.audit import FORMATS, Report, build_report, period_of, render_html, write_csv, write_xlsx
from monitor.cli.common import handles_errors, iso_date
from monitor.config import Config, load_config
from monitor.errors import StoreDamaged
from monitor.files import atomic_write_text
from monitor.store import HistoryStore, describe_url, open_store, store_url

_EPILOG = """\
examples:
  tslcd audit --year 2025 --out tslcd-2025.xlsx            the yearly report (format from the extension)
  tslcd audit --month 2025-07 --area "Phú Yên (cũ)" --format html --out july.html
  tslcd audit --from 2025-07-01 --to 2025-09-30 --format csv --out q3.csv
  tslcd audit verify                                       check the whole hash chain
  tslcd audit verify --from 2025-07-01 --to 2025-07-31

Exit status: 0 done (verify: every day matches), 1 verify found a changed day, 2 usage or store problem,
3 the store is damaged (not an SQLite database, empty, unreadable pages).
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `tslcd audit` (and `tslcd audit verify`) to the CLI's subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "audit", help="connection-rate report for a period (CSV, XLSX, HTML), or verify the hash chain",
        description="Write the report an auditor checks: the method (definitions, thresholds, timezone, "
                    "inventory versions, coverage), the rates against the target, the daily rates, one row per "
                    "commune, every outage, and the digests of the days covered with the chain head. "
                    "`tslcd audit verify` recomputes the digests and names the first day that no longer matches.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", nargs="?", choices=("report", "verify"), default="report",
                   help="report (default) or verify")
    p.add_argument("--config", default="config.yaml", metavar="F", help="config file (default: %(default)s)")
    p.add_argument("--from", dest="first", type=iso_date, metavar="D1", help="first day, YYYY-MM-DD")
    p.add_argument("--to", dest="last", type=iso_date, metavar="D2", help="last day, YYYY-MM-DD (included)")
    p.add_argument("--year", type=int, metavar="Y", help="the calendar year Y")
    p.add_argument("--month", metavar="YYYY-MM", help="one calendar month")
    p.add_argument("--area", metavar="A", help="only the communes of area A")
    p.add_argument("--format", choices=FORMATS, help="csv, xlsx or html (default: from --out's extension)")
    p.add_argument("--out", metavar="F", help="file to write ('-' for standard output, csv and html)")
    p.add_argument("--progress", action="store_true",
                   help="show the progress bar even when standard error is not a terminal")
    p.set_defaults(func=run)
    return p


def _fail(message: str) -> int:
    print(f"tslcd audit: {message}", file=sys.stderr)
    return 2


@handles_errors(2, prefix="tslcd audit")
def run(args: argparse.Namespace) -> int:
    """Run `tslcd audit ...` as parsed by ``add_parser``; return the exit status.

    A config or store that cannot be used raises (ConfigError, StoreError): the ``tslcd``
    command prints it and exits with status 2, as for usage problems.
    """
    cfg = load_config(args.config)
    store = open_store(cfg, create=False)
    try:
        if args.action == "verify":
            return _verify(store, args)
        return _report(store, cfg, args)
    except DatabaseError as e:  # pages the open did not touch are damaged: never a traceback, never "a day changed"
        raise StoreDamaged(f"the history store {store.where} is damaged: {e.orig}; restore a backup") from None
    finally:
        store.close()


def _verify(store: HistoryStore, args: argparse.Namespace) -> int:
    if args.year is not None or args.month is not None:
        first, last = period_of(year=args.year, month=args.month)
    else:
        first, last = args.first, args.last
    res = store.verify(first, last)
    for p in res.problems:
        print(p)
    head = f"{res.head.day} {res.head.digest}" if res.head else "none (no day sealed yet)"
    if res.ok:
        print(f"OK: {res.checked} sealed day(s) verified; chain head {head}")
        return 0
    assert res.first_bad is not None
    print(f"FAILED: first day that no longer matches: {res.first_bad.isoformat()} "
          f"({res.checked} sealed day(s) checked; chain head {head})")
    return 1


def _report(store: HistoryStore, cfg: Config, args: argparse.Namespace) -> int:
    try:
        first, last = period_of(first=args.first, last=args.last, year=args.year, month=args.month)
    except ValueError as e:
        return _fail(str(e))
    if not args.out:
        return _fail("--out F is required (the file to write)")
    fmt = args.format or Path(args.out).suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        return _fail(f"cannot tell the format from {args.out!r}: pass --format csv|xlsx|html")
    if fmt == "xlsx" and args.out == "-":
        return _fail("xlsx cannot go to standard output: give a file name")
    if args.area is not None:
        known = {n.area for v in store.inventory_versions() for n in store.inventory_nodes(v.id)}
        if args.area not in known:
            return _fail(f"no commune has area {args.area!r}; areas: {', '.join(sorted(a for a in known if a))}")
    n_days = (last - first).days + 1
    report = _with_progress(n_days, args.progress, lambda step: build_report(
        store, cfg, first, last, area=args.area, progress=step, store_name=describe_url(store_url(cfg))))
    out = args.out
    if args.progress or sys.stderr.isatty():  # a year of 20,000 communes takes seconds to write, after the bar
        print(f"tslcd audit: {len(report.daily)} days counted, writing {fmt.upper()} ...", file=sys.stderr,
              flush=True)
    if fmt == "xlsx":
        write_xlsx(report, Path(out))
    else:
        text_out = io.StringIO()
        if fmt == "csv":
            write_csv(report, text_out)
        else:
            text_out.write(render_html(report))
        if out == "-":
            sys.stdout.write(text_out.getvalue())
        else:
            # utf-8-sig: Excel opens a CSV of Vietnamese names correctly only with the BOM.
            atomic_write_text(Path(out), text_out.getvalue(), encoding="utf-8-sig" if fmt == "csv" else "utf-8",
                              newline="")
    main = next((p for p in report.summary if p.area == (args.area or "")), None)
    rate = f"connected {main.connected_rate:.2%} (target {report.target:.0%})" if main else "no commune"
    print(f"tslcd audit: wrote {out}: {report.first} to {report.last}, {rate}, coverage {report.coverage:.1%}, "
          f"{len(report.seals)}/{len(report.daily)} days sealed", file=sys.stderr)
    return 0


def _with_progress(total: int, forced: bool, work: Callable[[Callable[[int], None] | None], Report]) -> Report:
    """Run ``work`` with a progress bar on standard error, only on a terminal or when asked."""
    if not (forced or sys.stderr.isatty()):
        return work(None)
    from tqdm import tqdm

    with tqdm(total=total, unit="day", desc="tslcd audit", file=sys.stderr, leave=False) as bar:
        return work(bar.update)


