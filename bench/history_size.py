"""Benchmark: store size of a year of rollups for 20,000 nodes, and the time to write, seal and audit it.

    .venv/bin/python bench/history_size.py [--nodes 20000] [--days 365] [--append docs/benchmarks.md]
    .venv/bin/python bench/history_size.py --store /tmp/year.sqlite   # keep the store; run again to time the audit

Builds a real SQLite store through the Store API (the same calls the recorder makes):
an inventory of N communes in 100 areas, one run observing the whole period, a
heartbeat every hour, about 2% of communes with an outage each day, ICMP sample sums
and uplink traffic for every node every day, and every day sealed into the hash chain.
Then it times a whole-period audit (build, CSV, XLSX, HTML): what an auditor waits for
is the counting plus the writing of one format. Everything stays in a temporary
directory, removed at the end, unless --store names where to keep the store (a store
already there is reused: only the audit and `audit verify` are timed).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import sqlite3
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exporters.audit import build_report, render_html, write_csv, write_xlsx  # noqa: E402
from inventory.model import Inventory, Node  # noqa: E402
from monitor.config import load_config  # noqa: E402
from monitor.core.history import DOWN, UNKNOWN, UP, day_span  # noqa: E402
from monitor.store import ChangeRow, SampleRow, SqlStore, SweepBatch  # noqa: E402

PROVINCE = "Tỉnh Thử"
FIRST = date(2025, 1, 1)


def estimate_row_bytes() -> int:
    """A daily row as SQLite lays it out (record format), for a node up all day with traffic data.

    Header: 1 size byte + 1 type byte per column (16). Payload: day as text (10), unit id
    (2), up_s 86400 as an integer-valued REAL (3; the other seconds are 0: 0 bytes),
    samples and rtt_samples 2880 (2 each), rtt_sum_us (4), loss_sum_ppm (2), bytes in
    and out (4 each), reboots NULL (0). Plus the cell's size varint and pointer (~3).
    """
    return 16 + 10 + 2 + 3 + 2 + 2 + 4 + 2 + 4 + 4 + 3


def build(store: SqlStore, nodes: int, n_days: int, tz: object, rnd: random.Random) -> dict[str, float]:
    inv = Inventory.of([Node(f"{i:05d}", f"Xã Thử {i}", "commune", PROVINCE, area=f"Khu {i % 100:02d}",
                             address=f"198.18.{i // 250}.{i % 250 + 1}") for i in range(nodes)], source="bench")
    t_start = day_span(FIRST, tz)[0]  # type: ignore[arg-type]
    units = list(store.record_inventory(inv, t_start - 60).units.values())
    run = store.start_run(t_start, max_gap_s=7200)
    store.write_sweep(SweepBatch(run, t_start, [ChangeRow(u, t_start, UNKNOWN, UP) for u in units]))
    write_s: list[float] = []
    flush_s: list[float] = []
    seal_s: list[float] = []
    outages = 0
    for d in range(n_days):
        day = FIRST + timedelta(days=d)
        s, e = day_span(day, tz)  # type: ignore[arg-type]
        changes: dict[int, list[ChangeRow]] = {}
        for u in rnd.sample(units, max(1, nodes // 50)):  # ~2% of communes lose their link once a day
            down_at = s + rnd.uniform(0, 86_000)
            up_at = min(down_at + rnd.uniform(300, 4 * 3600), e - 1)
            changes.setdefault(int((down_at - s) // 3600), []).append(ChangeRow(u, down_at, UP, DOWN))
            changes.setdefault(int((up_at - s) // 3600), []).append(ChangeRow(u, up_at, DOWN, UP))
            outages += 1
        for h in range(1, 25):
            t = s + h * 3600
            samples = []
            if h == 24:
                samples = [SampleRow(day, u, 2880, 2880, 2880 * rnd.randint(2_000, 40_000), rnd.randint(0, 20_000),
                                     rnd.randint(10**6, 10**9), rnd.randint(10**6, 10**9)) for u in units]
            t0 = time.perf_counter()
            store.write_sweep(SweepBatch(run, t, sorted(changes.get(h - 1, []), key=lambda c: c.at), samples))
            (flush_s if samples else write_s).append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        store.seal_due(e + 7201, tz, 7200)  # type: ignore[arg-type]
        seal_s.append(time.perf_counter() - t0)
        if d % 30 == 29:
            print(f"  {d + 1} days built, last seal {seal_s[-1]:.2f} s", file=sys.stderr, flush=True)
    return {"write": sum(write_s) / len(write_s), "flush": sum(flush_s) / len(flush_s),
            "seal": sum(seal_s) / len(seal_s), "seal_max": max(seal_s), "outages": outages}


def sizes(db: Path) -> tuple[int, dict[str, int]]:
    con = sqlite3.connect(db)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        try:
            per = dict(con.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall())
        except sqlite3.OperationalError:  # SQLite built without the dbstat table
            per = {}
    finally:
        con.close()
    return db.stat().st_size, per


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=20_000)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--append", metavar="FILE", help="append the results as a 'History store' section")
    p.add_argument("--store", metavar="FILE", type=Path,
                   help="keep the built SQLite store in FILE, or reuse FILE when it exists (then only the audit "
                        "and verify are timed; the build figures are left out)")
    p.add_argument("--skip-verify", action="store_true", help="do not time `audit verify`")
    args = p.parse_args()
    load_before = os.getloadavg()
    rnd = random.Random(args.seed)
    t: dict[str, float] | None = None
    build_s = 0.0
    with tempfile.TemporaryDirectory(prefix="tslcd-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        (tmp / "config.yaml").write_text(f"province: {PROVINCE}\ninventory: none.yaml\n", encoding="utf-8")
        cfg = load_config(tmp / "config.yaml")
        db = args.store.resolve() if args.store else tmp / "var" / "tslcd.sqlite"
        reuse = db.exists()
        store = SqlStore(f"sqlite:///{db}")
        if reuse:
            print(f"reusing the store {db} (built with --nodes {args.nodes} --days {args.days}?)", file=sys.stderr)
        else:
            print(f"building {args.days} days of {args.nodes} nodes in {db} ...", file=sys.stderr)
            t0 = time.perf_counter()
            t = build(store, args.nodes, args.days, cfg.tz, rnd)
            build_s = time.perf_counter() - t0
        size, per_table = sizes(db)
        rows = args.nodes * args.days
        last = FIRST + timedelta(days=args.days - 1)
        # Wall and CPU time (this process, user + system): on a machine others share, the CPU time is what the
        # wall time would be on an idle one.
        t0, c0 = time.perf_counter(), time.process_time()
        report = build_report(store, cfg, FIRST, last, now=day_span(last, cfg.tz)[1] + 7200)
        report_s, report_cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"  counting: {report_s:.1f} s (CPU {report_cpu:.1f} s)", file=sys.stderr, flush=True)
        out: dict[str, tuple[float, int, float]] = {}
        for fmt in ("csv", "xlsx", "html"):
            path = tmp / f"audit.{fmt}"
            t0, c0 = time.perf_counter(), time.process_time()
            if fmt == "csv":
                with path.open("w", encoding="utf-8-sig", newline="") as f:
                    write_csv(report, f)
            elif fmt == "xlsx":
                write_xlsx(report, path)
            else:
                path.write_text(render_html(report), encoding="utf-8")
            out[fmt] = (time.perf_counter() - t0, path.stat().st_size, time.process_time() - c0)
            print(f"  {fmt}: {out[fmt][0]:.1f} s (CPU {out[fmt][2]:.1f} s)", file=sys.stderr, flush=True)
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        verify_s = verify_cpu = None
        if not args.skip_verify:
            t0, c0 = time.perf_counter(), time.process_time()
            verified = store.verify()
            verify_s, verify_cpu = time.perf_counter() - t0, time.process_time() - c0
            assert verified.ok, verified.problems[:3]
        store.close()

    mib = 1024 * 1024
    lines = [
        "",
        "## History store",
        "",
        f"`bench/history_size.py --nodes {args.nodes} --days {args.days}` on {platform.machine()}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs "
        f"(SQLite file, WAL, synchronous=FULL; {date.today().isoformat()}).",
        "",
        "| figure | value |",
        "|---|---|",
        f"| daily rollup rows ({args.nodes:,} nodes x {args.days} days) | {rows:,} |",
        f"| estimated size of a row (record format, `estimate_row_bytes`) | {estimate_row_bytes()} B "
        f"-> {rows * estimate_row_bytes() / mib:,.0f} MiB of rollups |",
        f"| measured store file (after checkpoint) | {size / mib:,.0f} MiB ({size / rows:.0f} B per node-day) |",
    ]
    for name, b in list(per_table.items())[:6]:
        lines.append(f"| - of which `{name}` | {b / mib:,.1f} MiB |")
    if t is not None:
        lines += [
            f"| outages in the year (~2% of communes a day) | {t['outages']:,} |",
            f"| one sweep's write, heartbeat and changes (one transaction) | {t['write'] * 1000:.1f} ms |",
            f"| one sweep's write with the sample sums of all {args.nodes:,} nodes | {t['flush'] * 1000:.0f} ms |",
            f"| sealing one day of {args.nodes:,} nodes (mean / max) | {t['seal']:.2f} s / {t['seal_max']:.2f} s |",
            f"| building the whole store | {build_s:,.0f} s |",
        ]
    lines.append(f"| one-period audit of {args.nodes:,} communes, {args.days} days: counting | {report_s:.1f} s "
                 f"(CPU {report_cpu:.1f} s) |")
    for fmt, (secs, b, cpu) in out.items():
        lines.append(f"| - writing {fmt.upper()} | {secs:.1f} s (CPU {cpu:.1f} s), {b / mib:,.1f} MiB |")
    lines.append("| - counting and writing, per format (what `tslcd audit` takes) | "
                 + ", ".join(f"{fmt.upper()} {report_s + secs:.1f} s (CPU {report_cpu + cpu:.1f} s)"
                             for fmt, (secs, _, cpu) in out.items()) + " |")
    lines.append(f"| - peak memory of the process (RSS) | {peak_mib:,.0f} MiB |")
    if verify_s is not None:
        lines.append(f"| `audit verify` of {args.days} sealed days | {verify_s:.1f} s (CPU {verify_cpu:.1f} s) |")
    lines += [
        "",
        f"Load average (1 min) at the start and the end of the run: {load_before[0]:.1f} and {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs (other jobs share the machine: wall times are upper bounds, CPU times are this "
        "process's own).",
        "",
        "Sample sums are written every `store.samples_flush_sweeps` sweeps (default 10), not every sweep; state "
        "changes and the heartbeat are written every sweep, in the same single transaction.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.append:
        path = Path(args.append)
        # Others append to the same file: read it just before writing and only ever append.
        with path.open("a", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
