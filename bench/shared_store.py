"""Benchmark: several pollers writing one history store, PostgreSQL against SQLite (issue 14, part 6).

    nice -n 15 .venv/bin/python bench/shared_store.py [--pollers 2] [--nodes 10000] [--days 365]
        [--backend both|sqlite|postgresql] [--sim-days 2] [--interval 30] [--paced-sweeps 100] [--speedup 30]

For each backend (a SQLite file in a temporary folder; a throwaway PostgreSQL server from Debian's binaries,
``monitor.lab.postgres.server()``, on a Unix socket and 127.0.0.1 only; both removed at the end):

1. **Pollers.** ``--pollers`` separate processes (multiprocessing, spawn), each the history side of a real
   poller: the real ``Recorder`` with a config whose ``shard`` is its own areas, fed synthetic ``Snapshot``s of
   its ``--nodes`` communes (of one inventory of pollers x nodes, which every poller records whole, as real
   pollers do) at a fake clock: a sweep every ``--interval`` fake seconds, about 2% of each poller's communes
   losing their link once a fake day (5 min to 4 h), SNMP uplink deltas every second sweep, sample sums flushed
   every ``store.samples_flush_sweeps`` sweeps, days sealed and raw events purged by the recorder itself. The
   pollers stay within one sweep of each other (as pollers sharing a wall clock are). The first
   ``--paced-sweeps`` sweeps are paced at ``--interval / --speedup`` real seconds (poller i offset by i/pollers
   of that, as pollers started at different times are), the rest run flat out, for ``--sim-days`` fake days
   and the seal of the last one. Per write transaction: its time, and the time spent waiting for the store's
   write lock (a ``begin`` listener after the store's own, which takes PostgreSQL's advisory lock or SQLite's
   ``BEGIN IMMEDIATE``). Store size after each day sealed.
2. **A year.** ``bench/history_size.py``'s ``build`` (imported) writes ``--days`` days of pollers x nodes
   communes into a new store; then ``build_report`` of the whole period and its CSV are timed. With fewer than
   365 days the one-year figures are extrapolated linearly (and labelled so).

Prints a markdown table of the figures, with the machine and the versions, to stdout; progress to stderr.
Sends no packet (the nodes' addresses are data only; PostgreSQL listens on loopback and a socket).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import date, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import history_size  # noqa: E402  (bench/history_size.py: the year's build, reused)
from sqlalchemy import event  # noqa: E402

from exporters.audit import build_report, write_csv  # noqa: E402
from inventory.model import Inventory, Node  # noqa: E402
from monitor.config import load_config  # noqa: E402
from monitor.core.history import day_span  # noqa: E402
from monitor.store import SqlStore  # noqa: E402

PROVINCE = history_size.PROVINCE
AREAS_PER_POLLER = 50
SIM_FIRST = date(2026, 1, 5)
WORKER_TIMEOUT_S = 4 * 3600  # every wait of a poller process, and the parent's wait for them, is bounded


# -- the inventory and the pollers' configs ------------------------------------------------------------


def area_of(poller: int, k: int) -> str:
    return f"P{poller} Khu {k:02d}"


def inventory(pollers: int, nodes: int) -> Inventory:
    """pollers x nodes communes; poller p's are codes p*nodes .. (p+1)*nodes-1, in its own 50 areas. The
    addresses (127.16.0.0/12) are data only: nothing is probed."""
    out = []
    for i in range(pollers * nodes):
        p, j = divmod(i, nodes)
        out.append(Node(f"{i:06d}", f"Xã Thử {i}", "commune", PROVINCE, area=area_of(p, j % AREAS_PER_POLLER),
                        address=f"127.{16 + i // 62_500}.{(i // 250) % 250}.{i % 250 + 1}"))
    return Inventory.of(out, source="bench-shared-store")


def write_config(path: Path, interval_s: float, poller: int | None) -> Path:
    lines = [f"province: {PROVINCE}", "inventory: none.yaml", "icmp:", f"  interval_s: {interval_s:g}"]
    if poller is not None:
        areas = [area_of(poller, k) for k in range(AREAS_PER_POLLER)]
        lines += ["shard:", f"  areas: {json.dumps(areas, ensure_ascii=False)}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- measuring the store -------------------------------------------------------------------------------


def store_bytes(store: SqlStore) -> int:
    """Bytes the store uses: SQLite pages in use (page_count - freelist_count: what VACUUM would leave, WAL
    content included), or PostgreSQL's pg_database_size."""
    with store.engine.connect() as c:
        if store.sqlite:
            pages = c.exec_driver_sql("PRAGMA page_count").scalar_one()
            free = c.exec_driver_sql("PRAGMA freelist_count").scalar_one()
            return int((pages - free) * c.exec_driver_sql("PRAGMA page_size").scalar_one())
        return int(c.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one())


def table_sizes(store: SqlStore) -> dict[str, int]:
    """Bytes per table and index (SQLite's dbstat), or per table with its indexes and TOAST (PostgreSQL)."""
    if store.sqlite:
        return history_size.sizes(Path(store.engine.url.database or ""))[1]
    with store.engine.connect() as c:
        rows = c.exec_driver_sql(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n ON "
            "n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 2 DESC").all()
    return {str(name): int(size) for name, size in rows}


def pg_dead_tuples(store: SqlStore) -> dict[str, int]:
    with store.engine.connect() as c:
        return {str(r[0]): int(r[1]) for r in c.exec_driver_sql(
            "SELECT relname, n_dead_tup FROM pg_stat_user_tables WHERE n_dead_tup > 0 ORDER BY 2 DESC")}


def compact(store: SqlStore) -> int:
    """The store's size after VACUUM (SQLite: the file; PostgreSQL: VACUUM FULL, then pg_database_size)."""
    if store.sqlite:  # the store's own connections BEGIN on every use: VACUUM needs one of its own
        path = Path(store.engine.url.database or "")
        store.engine.dispose()
        con = sqlite3.connect(path, isolation_level=None)
        try:
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            con.execute("VACUUM")
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            con.close()
        return path.stat().st_size
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.exec_driver_sql("VACUUM FULL")
    return store_bytes(store)


def postmaster_children_cpu(store: SqlStore) -> float | None:
    """CPU seconds (user + sys) of the PostgreSQL server's processes that have exited (backends of closed
    connections, autovacuum workers), from the postmaster's /proc stat; None when unreadable."""
    try:
        with store.engine.connect() as c:
            data = c.exec_driver_sql("SHOW data_directory").scalar_one()
        pid = int(Path(data, "postmaster.pid").read_text().split()[0])
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")  # cutime, cstime
    except (OSError, ValueError, IndexError, KeyError):
        return None


# -- one poller process --------------------------------------------------------------------------------


class Probe:
    """Times what the recorder asks of the store, without changing it: each write_sweep (with the time to get
    the write lock, seen by a ``begin`` listener that runs after the store's own) and each seal_due."""

    def __init__(self, store: SqlStore) -> None:
        self.locked: float | None = None
        self.writes: list[tuple[float, float, int, bool]] = []  # (seconds, lock wait, rows, with samples)
        self.seals: list[tuple[float, int]] = []  # (seconds, days sealed by this poller)
        self.failures = 0
        event.listen(store.engine, "begin", self._begun)
        write_sweep, seal_due = store.write_sweep, store.seal_due

        def timed_write(batch: Any) -> None:
            self.locked = None
            t0 = time.perf_counter()
            try:
                write_sweep(batch)
            except Exception:
                self.failures += 1
                raise
            t1 = time.perf_counter()
            rows = 1 + len(batch.changes) + len(batch.samples)  # the window's heartbeat, changes, sample sums
            self.writes.append((t1 - t0, (self.locked or t0) - t0, rows, bool(batch.samples)))

        def timed_seal(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            done = seal_due(*args, **kwargs)
            self.seals.append((time.perf_counter() - t0, len(done)))
            return done

        store.write_sweep = timed_write  # type: ignore[method-assign]
        store.seal_due = timed_seal  # type: ignore[method-assign]

    def _begun(self, conn: Any) -> None:
        if conn.get_execution_options().get("tslcd_write"):
            self.locked = time.perf_counter()


def poller_main(spec: dict[str, Any], progress: Any, out: Any) -> None:
    """A poller process: its result (or its traceback) goes to ``out``; its progress (last sweep done) to
    ``progress[index]``, which the others read to stay within one sweep of it."""
    try:
        out.put(asyncio.run(_poll(spec, progress)))
    except BaseException:  # noqa: BLE001  (the parent reports it)
        out.put({"index": spec["index"], "error": traceback.format_exc()})
    finally:
        progress[spec["index"]] = 1 << 60  # never hold the others


async def _poll(spec: dict[str, Any], progress: Any) -> dict[str, Any]:
    from monitor.core.snapshot import NodeStatus, Snapshot
    from monitor.runtime.recorder import Recorder, UplinkCounters

    me, pollers, interval = spec["index"], spec["pollers"], spec["interval"]
    cfg = load_config(write_config(Path(spec["tmp"]) / f"poller{me}.yaml", interval, me))
    inv = inventory(pollers, spec["nodes"])
    mine = [n for n in inv.nodes if cfg.owns(n)]
    assert len(mine) == spec["nodes"], (len(mine), spec["nodes"])
    store = SqlStore(spec["url"])
    probe = Probe(store)
    t0 = spec["t0"]
    fake = [t0 - 1.0]
    # Today's rates are refreshed after the start and after each seal only: at a compressed clock the recorder's
    # own rule (every 60 s of its clock, at most 1% of its time) would refresh every other sweep. The refresh
    # reads; it never takes the write lock. Its cost is measured below.
    rec = Recorder(store, cfg, clock=lambda: fake[0], today_refresh_s=1e12)
    rnd = random.Random(spec["seed"] * 1000 + me)
    up = [NodeStatus(n, "up", rtt_avg=rnd.uniform(0.002, 0.040), loss=0.0) for n in mine]
    down = [NodeStatus(n, "down", loss=1.0) for n in mine]
    statuses = list(up)
    counters = {n.code: UplinkCounters(rnd.randint(10**5, 10**7), rnd.randint(10**5, 10**7), 0) for n in mine}
    changes: list[tuple[float, int, bool]] = []  # (at, node, down): ~2% of the shard down once a day
    for d in range(spec["sim_days"] + 1):
        s, e = day_span(SIM_FIRST + timedelta(days=d), cfg.tz)
        for j in rnd.sample(range(len(mine)), max(1, len(mine) // 50)):
            down_at = s + rnd.uniform(0, 86_000)
            changes += [(down_at, j, True), (min(down_at + rnd.uniform(300, 4 * 3600), e - 1), j, False)]
    changes.sort()
    next_change = 0

    deadline = time.monotonic() + WORKER_TIMEOUT_S

    def wait_for_others(k: int) -> None:
        while min(progress[j] for j in range(pollers) if j != me) < k - 1:
            if time.monotonic() > deadline:
                raise TimeoutError(f"poller {me}: the others did not reach sweep {k - 1}")
            time.sleep(0.0005)

    await rec.on_start(inv)
    progress[me] = -1
    wait_for_others(0)
    paced_step = interval / spec["speedup"] if spec["speedup"] > 0 else 0.0
    origin = time.monotonic() + 0.5
    sweeps: list[tuple[float, float, float | None, int]] = []  # (monotonic start, seconds, refresh s, writes)
    sizes: list[tuple[str, int]] = []
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_marks: list[float] = []
    for k in range(spec["sweeps"]):
        wait_for_others(k)
        if k < spec["paced"] and paced_step:
            delay = origin + (k + me / pollers) * paced_step - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        if k == spec["paced"]:
            ru = resource.getrusage(resource.RUSAGE_SELF)
            cpu_marks.append(ru.ru_utime + ru.ru_stime)
        now = t0 + k * interval
        fake[0] = now
        while next_change < len(changes) and changes[next_change][0] <= now:
            _, j, is_down = changes[next_change]
            statuses[j] = down[j] if is_down else up[j]
            next_change += 1
        snap = Snapshot(now, cfg.province, "Asia/Ho_Chi_Minh", 1.0, nodes=tuple(statuses))
        sealed_before, refreshed_before, writes_before = rec.sealed_through, rec._recent_at, len(probe.writes)
        started = time.monotonic()
        await rec.on_sweep(now, snap, (), inv, counters if k % 2 else None)
        took = time.monotonic() - started
        progress[me] = k
        refresh = rec._refresh_cost_s if rec._recent_at != refreshed_before else None
        sweeps.append((started, took, refresh, len(probe.writes) - writes_before))
        if rec.sealed_through != sealed_before and rec.sealed_through is not None and me == 0:
            sizes.append((rec.sealed_through.isoformat(), store_bytes(store)))
    ru = resource.getrusage(resource.RUSAGE_SELF)
    cpu_marks.append(ru.ru_utime + ru.ru_stime)
    await rec.on_stop()
    store.close()
    return {"index": me, "sweeps": sweeps, "writes": probe.writes, "seals": probe.seals, "sizes": sizes,
            "write_failures": rec.write_failures + probe.failures, "cpu0": ru0.ru_utime + ru0.ru_stime,
            "cpu_marks": cpu_marks, "sealed_through": rec.sealed_through.isoformat() if rec.sealed_through else None}


# -- the parent ----------------------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s)) - 1))]


def run_pollers(url: str, tmp: Path, args: argparse.Namespace, tz: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    progress = ctx.Array("q", [-2] * args.pollers, lock=False)
    out = ctx.Queue()
    per_day = round(86_400 / args.interval)
    max_gap = 3 * args.interval
    n_sweeps = args.sim_days * per_day + int(max_gap // args.interval) + 2  # the last day sealed too
    t0 = day_span(SIM_FIRST, tz)[0]
    procs = []
    for i in range(args.pollers):
        spec = {"index": i, "pollers": args.pollers, "nodes": args.nodes, "interval": args.interval,
                "url": url, "tmp": str(tmp), "t0": t0, "sweeps": n_sweeps, "paced": args.paced_sweeps,
                "speedup": args.speedup, "sim_days": args.sim_days, "seed": args.seed}
        p = ctx.Process(target=poller_main, args=(spec, progress, out), name=f"poller{i}")
        p.start()
        procs.append(p)
    results: list[dict[str, Any]] = []
    deadline = time.monotonic() + WORKER_TIMEOUT_S + 300
    try:
        while len(results) < args.pollers:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the pollers did not finish in time")
            try:
                results.append(out.get(timeout=min(left, 30)))
            except Exception:  # queue.Empty: report progress, and notice a poller that died without a word
                done = [progress[i] for i in range(args.pollers)]
                print(f"  sweeps done per poller: {done} of {n_sweeps}", file=sys.stderr, flush=True)
                if any(not p.is_alive() and p.exitcode not in (0, None) for p in procs):
                    raise RuntimeError(f"a poller died: exit codes {[p.exitcode for p in procs]}") from None
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():  # ours, by its own handle (its PID)
                p.terminate()
                p.join(timeout=10)
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise RuntimeError("a poller failed:\n" + "\n".join(errors))
    return {"results": sorted(results, key=lambda r: r["index"]), "sweeps": n_sweeps, "per_day": per_day}


def summarize(run: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    res = run["results"]
    paced = args.paced_sweeps
    s: dict[str, Any] = {}
    for phase, lo, hi in (("paced", 1, paced), ("flat", max(paced, 1), run["sweeps"])):
        if hi <= lo:
            continue
        writes: list[tuple[float, float, int, bool]] = []
        starts, ends, rows, rates = [], [], 0, []
        for r in res:
            sw = r["sweeps"][lo:hi]
            # The writes of these sweeps: a sweep makes one write, except the first, whose sweep also starts
            # the run; the writes list holds write_sweep calls only, in order.
            first = sum(x[3] for x in r["sweeps"][:lo])
            n = sum(x[3] for x in sw)
            ws = r["writes"][first:first + n]
            writes += ws
            rows += sum(w[2] for w in ws)
            starts.append(sw[0][0])
            ends.append(sw[-1][0] + sw[-1][1])
            rates.append(len(sw) / (sw[-1][0] + sw[-1][1] - sw[0][0]))
        wall = max(ends) - min(starts)
        hb = [w[0] for w in writes if not w[3]]
        fl = [w[0] for w in writes if w[3]]
        wait = [w[1] for w in writes]
        s[phase] = {"sweeps": hi - lo, "wall": wall, "rows_s": rows / wall, "tx_s": len(writes) / wall,
                    "sweeps_s": min(rates), "hb": hb, "flush": fl, "wait": wait,
                    "all": [w[0] for w in writes], "rows_per_flush": statistics.mean(
                        [w[2] for w in writes if w[3]]) if fl else 0}
    seals = [t for r in res for t, n in r["seals"] if n]
    s["seal"] = seals
    # The other pollers' seal_due of the same day: they wait for the lock, then find the day sealed.
    s["seal_others"] = [t for r in res for t, n in r["seals"][1:] if not n]
    s["refresh"] = [x[2] for r in res for x in r["sweeps"][1:] if x[2] is not None]
    s["failures"] = sum(r["write_failures"] for r in res)
    s["sizes"] = res[0]["sizes"]
    flat_days = (run["sweeps"] - paced) / run["per_day"]
    s["cpu_per_day"] = [(r["cpu_marks"][-1] - r["cpu_marks"][0]) / flat_days for r in res] if flat_days > 0 else []
    s["sealed_through"] = res[0]["sealed_through"]
    return s


@contextmanager
def backend_url(name: str, tmp: Path, pg: str | None, db: str) -> Iterator[str]:
    if name == "sqlite":
        yield f"sqlite:///{tmp / db}.sqlite"
    else:
        from monitor.lab.postgres import database

        assert pg is not None
        yield database(pg, db)


def check_shared(url: str, cfg: Any, args: argparse.Namespace) -> dict[str, Any]:
    """What the pollers left: the chain verifies, every commune has a row on every sealed day, the audit of the
    simulated days counts every commune of every shard; sizes."""
    store = SqlStore(url, create=False)
    try:
        out: dict[str, Any] = {}
        verified = store.verify()
        out["verify_ok"], out["sealed"] = verified.ok, verified.checked
        out["problems"] = list(verified.problems[:3])
        last = SIM_FIRST + timedelta(days=args.sim_days - 1)
        t = time.perf_counter()
        report = build_report(store, cfg, SIM_FIRST, last, now=day_span(last, cfg.tz)[1] + 3 * args.interval + 1)
        out["audit_s"] = time.perf_counter() - t
        out["communes"] = [d.rate.communes for d in report.daily]
        out["connected"] = [d.rate.connected for d in report.daily]
        out["coverage"] = [round(d.coverage, 4) for d in report.daily]
        out["rows"] = [s.rows for s in store.seals()]
        out["bytes"] = store_bytes(store)
        out["tables"] = table_sizes(store)
        if not store.sqlite:
            out["dead"] = pg_dead_tuples(store)
        out["compact"] = compact(store)
        out["tables_compact"] = table_sizes(store)
        return out
    finally:
        store.close()


def year(url: str, tmp: Path, cfg: Any, args: argparse.Namespace) -> dict[str, Any]:
    nodes = args.pollers * args.nodes
    store = SqlStore(url)
    try:
        empty = store_bytes(store)
        print(f"  building {args.days} days of {nodes} communes ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        built = history_size.build(store, nodes, args.days, cfg.tz, random.Random(args.seed))
        build_s = time.perf_counter() - t
        size = store_bytes(store)
        tables = table_sizes(store)
        last = history_size.FIRST + timedelta(days=args.days - 1)
        print("  counting the audit ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        report = build_report(store, cfg, history_size.FIRST, last, now=day_span(last, cfg.tz)[1] + 7200)
        report_s = time.perf_counter() - t
        csv_path = tmp / "audit.csv"
        t = time.perf_counter()
        with csv_path.open("w", encoding="utf-8-sig", newline="") as f:
            write_csv(report, f)
        csv_s = time.perf_counter() - t
        assert report.daily[0].rate.communes == nodes, report.daily[0].rate
        return {"build_s": build_s, "empty": empty, "size": size, "tables": tables, "report_s": report_s,
                "csv_s": csv_s, "csv_bytes": csv_path.stat().st_size, **built}
    finally:
        store.close()


def fsync_ms(folder: Path, n: int = 30) -> float:
    """Median time of a 4 KiB write and fsync in ``folder`` (what a durable commit costs on this disk)."""
    times = []
    path = folder / "fsync.probe"
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        for _ in range(n):
            t = time.perf_counter()
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
            times.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(times) * 1000


def machine() -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    return {"cpus": str(os.cpu_count()), "ram": f"{mem / 1024 / 1024:.1f} GiB", "cpu": cpu,
            "kernel": platform.release(), "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "sqlalchemy": version("sqlalchemy"), "psycopg": version("psycopg")}


# -- the table ---------------------------------------------------------------------------------------


def ms(x: float) -> str:
    return f"{x * 1000:,.1f} ms" if x < 10 else f"{x:,.1f} s"


def mib(b: float) -> str:
    return f"{b / 2**20:,.1f} MiB"


def inventory_bytes(y: dict[str, Any]) -> int:
    return sum(v for k, v in y["tables"].items() if "units" in k or "inventory" in k)


def per_day_bytes(y: dict[str, Any], n_days: int) -> float:
    """What the store grows by a day: all but the inventory and day_samples (emptied by every seal; on PostgreSQL
    its dead rows wait for autovacuum, a bounded bloat, not growth)."""
    transient = sum(v for k, v in y["tables"].items() if k.startswith("day_samples")
                    or k == "sqlite_autoindex_day_samples_1")
    return (y["size"] - y["empty"] - inventory_bytes(y) - transient) / n_days


def render(args: argparse.Namespace, info: dict[str, str], got: dict[str, dict[str, Any]], wall_s: float) -> str:
    names = list(got)
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
    n_total = args.pollers * args.nodes
    rows: list[tuple[str, list[str]]] = []

    def row(title: str, fn: Any) -> None:
        cells = []
        for n in names:
            try:
                cells.append(fn(got[n]))
            except (KeyError, IndexError, ZeroDivisionError, TypeError, ValueError):
                cells.append("")
        rows.append((title, cells))

    per_day = 86_400 / args.interval
    if args.paced_sweeps > 1:
        p = f"paced ({args.paced_sweeps - 1} sweeps/poller, one every {args.interval / args.speedup:.2f} s = " \
            f"{args.speedup:g}x real time)"
        row(f"{p}: rows written per second (all pollers)", lambda g: f"{g['s']['paced']['rows_s']:,.0f}")
        row(f"{p}: heartbeat + changes transaction p50 / p99 / max", lambda g: " / ".join(
            ms(f(g["s"]["paced"]["hb"])) for f in (lambda v: pct(v, 50), lambda v: pct(v, 99), max)))
        row(f"{p}: with the sample sums of {args.nodes:,} nodes p50 / max", lambda g: " / ".join(
            ms(f(g["s"]["paced"]["flush"])) for f in (lambda v: pct(v, 50), max)))
        row(f"{p}: of which waiting for the write lock (and a connection) p50 / p99 / max", lambda g: " / ".join(
            ms(f(g["s"]["paced"]["wait"])) for f in (lambda v: pct(v, 50), lambda v: pct(v, 99), max)))
    f = "flat out"
    row(f"{f}: sweeps per second per poller (slowest poller)", lambda g: f"{g['s']['flat']['sweeps_s']:,.1f}")
    row(f"{f}: = headroom against one sweep per {args.interval:g} s",
        lambda g: f"{g['s']['flat']['sweeps_s'] * args.interval:,.0f}x")
    row(f"{f}: rows written per second (all pollers)", lambda g: f"{g['s']['flat']['rows_s']:,.0f}")
    row(f"{f}: write transactions per second (all pollers)", lambda g: f"{g['s']['flat']['tx_s']:,.1f}")
    row(f"{f}: heartbeat + changes transaction p50 / p99 / max", lambda g: " / ".join(
        ms(fn(g["s"]["flat"]["hb"])) for fn in (lambda v: pct(v, 50), lambda v: pct(v, 99), max)))
    row(f"{f}: with the sample sums of {args.nodes:,} nodes p50 / p99 / max", lambda g: " / ".join(
        ms(fn(g["s"]["flat"]["flush"])) for fn in (lambda v: pct(v, 50), lambda v: pct(v, 99), max)))
    row(f"{f}: of which waiting for the write lock (and a connection) p50 / p99 / max", lambda g: " / ".join(
        ms(fn(g["s"]["flat"]["wait"])) for fn in (lambda v: pct(v, 50), lambda v: pct(v, 99), max)))
    row(f"{f}: share of write time spent waiting for the lock",
        lambda g: f"{sum(g['s']['flat']['wait']) / sum(g['s']['flat']['all']):.0%}")
    row(f"poller process CPU per simulated day ({per_day:,.0f} sweeps, flat out)",
        lambda g: " / ".join(f"{c:,.0f} s" for c in g["s"]["cpu_per_day"]))
    row("PostgreSQL server CPU per simulated day (backends, autovacuum)",
        lambda g: f"{g['pg_cpu'] / (args.sim_days + args.paced_sweeps / per_day):,.0f} s" if g.get("pg_cpu")
        else "-")
    row(f"sealing one day of {n_total:,} communes (by whichever poller gets there first) mean / max",
        lambda g: f"{statistics.mean(g['s']['seal']):.2f} s / {max(g['s']['seal']):.2f} s")
    row("the other poller's seal_due of that day (waits for the lock, finds it sealed) max",
        lambda g: f"{max(g['s']['seal_others']):.2f} s")
    row("today's rates refresh (a read, outside the write lock) median / max",
        lambda g: f"{statistics.median(g['s']['refresh']):.2f} s / {max(g['s']['refresh']):.2f} s")
    row("history write failures", lambda g: f"{g['s']['failures']}")
    row(f"check: chain verifies; communes counted per day (of {n_total:,}); coverage", lambda g: (
        f"{'yes' if g['chk']['verify_ok'] else 'NO'} ({g['chk']['sealed']} days); "
        f"{', '.join(f'{c:,}' for c in g['chk']['communes'])}; {', '.join(map(str, g['chk']['coverage']))}"))
    row("store size after each day sealed (pollers writing)", lambda g: ", ".join(
        f"{d[5:]}: {mib(b)}" for d, b in g["s"]["sizes"]))
    row("growth from one sealed day to the next (pollers writing; PostgreSQL: as autovacuum allows)",
        lambda g: ", ".join(
            mib(b2 - b1) for (_, b1), (_, b2) in zip(g["s"]["sizes"], g["s"]["sizes"][1:], strict=False)) or "-")
    row(f"store after {args.sim_days} days, compacted (SQLite VACUUM; PostgreSQL VACUUM FULL)",
        lambda g: f"{mib(g['chk']['bytes'])} -> {mib(g['chk']['compact'])}")
    row("largest tables then (compacted)", lambda g: ", ".join(
        f"{k} {mib(v)}" for k, v in list(sorted(g["chk"]["tables_compact"].items(), key=lambda kv: -kv[1]))[:4]))
    row("PostgreSQL dead tuples left before VACUUM", lambda g: ", ".join(
        f"{k} {v:,}" for k, v in list(g["chk"].get("dead", {}).items())[:3]) or "-")
    yr = f"{args.days} days of {n_total:,} communes (`history_size.build`)"
    row(f"{yr}: building (hourly sweeps, one seal a day)", lambda g: f"{g['y']['build_s']:,.0f} s")
    row(f"{yr}: sealing one day mean / max",
        lambda g: f"{g['y']['seal']:.2f} s / {g['y']['seal_max']:.2f} s")
    row(f"{yr}: store size, minus the empty store", lambda g: mib(g["y"]["size"] - g["y"]["empty"]))
    row(f"{yr}: of which the inventory (units, inventory_*: once)", lambda g: mib(inventory_bytes(g["y"])))
    row(f"{yr}: the rest but day_samples (emptied by each seal), per day",
        lambda g: mib(per_day_bytes(g["y"], args.days)))
    row(f"{yr}: `daily` (with its key index) per node-day", lambda g: (
        f"{g['y']['tables']['daily'] / (n_total * args.days):.0f} B"))
    row(f"{yr}: largest tables", lambda g: ", ".join(
        f"{k} {mib(v)}" for k, v in list(sorted(g["y"]["tables"].items(), key=lambda kv: -kv[1]))[:3]))
    row(f"{yr}: audit counting (`build_report`)", lambda g: f"{g['y']['report_s']:,.1f} s")
    row(f"{yr}: audit CSV", lambda g: f"{g['y']['csv_s']:,.1f} s, {mib(g['y']['csv_bytes'])}")
    if args.days < 365:
        k = 365 / args.days
        x = f"EXTRAPOLATED to 365 days (x{k:.2f}, linear)"
        row(f"{x}: store size (inventory + 365 x the rest per day)",
            lambda g: mib(inventory_bytes(g["y"]) + 365 * per_day_bytes(g["y"], args.days)))
        row(f"{x}: audit counting + CSV", lambda g: f"{(g['y']['report_s'] + g['y']['csv_s']) * k:,.0f} s")
    else:
        row("one-year audit, counting + CSV", lambda g: f"{g['y']['report_s'] + g['y']['csv_s']:,.0f} s")

    pg_ver = next((g.get("version", "") for g in got.values() if g.get("version")), "")
    head = [
        "## Shared store: pollers writing one PostgreSQL, and SQLite",
        "",
        f"`bench/shared_store.py --pollers {args.pollers} --nodes {args.nodes} --days {args.days} "
        f"--sim-days {args.sim_days} --interval {args.interval:g} --paced-sweeps {args.paced_sweeps} "
        f"--speedup {args.speedup:g}` ({date.today().isoformat()}, {wall_s / 60:.0f} min in all, "
        f"niceness {os.nice(0)}).",
        "",
        f"**Machine:** {info['cpus']} CPUs ({info['cpu']}), {info['ram']} RAM, kernel {info['kernel']}; "
        f"Python {info['python']}, SQLite {info['sqlite']}, PostgreSQL {pg_ver or 'not run'}, "
        f"SQLAlchemy {info['sqlalchemy']}, psycopg {info['psycopg']}. Load average before / after: "
        f"{info['load_before']} / {info['load_after']} (a shared machine: other jobs ran beside it). "
        f"A 4 KiB write + fsync on this disk: {info['fsync_ms']} ms (median).",
        "",
        "**Stores:** SQLite file, WAL, synchronous=FULL (an fsync per commit), BEGIN IMMEDIATE per write; "
        "PostgreSQL: the lab server (`monitor.lab.postgres.server()`: fsync=off, so commits cost no fsync), "
        "one transaction-scoped advisory lock per write transaction.",
        "",
        f"**Load:** {args.pollers} poller processes x {args.nodes:,} communes (one inventory of {n_total:,}, "
        f"sharded by areas), a sweep every {args.interval:g} s of a fake clock, ~2% of communes down once a "
        f"day, SNMP deltas every second sweep, sample sums every 10th sweep; {args.sim_days} simulated days.",
        "",
        "| figure | " + " | ".join(label[n] for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    return "\n".join(head + [f"| {t} | " + " | ".join(c) + " |" for t, c in rows]) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=10_000, help="communes per poller")
    p.add_argument("--pollers", type=int, default=2)
    p.add_argument("--days", type=int, default=365, help="days of the year's build and audit")
    p.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--sim-days", type=int, default=2, help="fake days the poller processes write")
    p.add_argument("--interval", type=float, default=30.0, help="fake seconds between sweeps")
    p.add_argument("--paced-sweeps", type=int, default=100, help="sweeps paced at interval/speedup first")
    p.add_argument("--speedup", type=float, default=30.0, help="real-time compression of the paced sweeps")
    p.add_argument("--skip-year", action="store_true", help="only the pollers")
    p.add_argument("--seed", type=int, default=5)
    args = p.parse_args()
    if args.pollers < 2 or args.nodes < AREAS_PER_POLLER or args.sim_days < 1 or args.days < 1:
        p.error("at least 2 pollers, 50 nodes each, 1 simulated day and 1 day of history")
    args.paced_sweeps = min(args.paced_sweeps, round(86_400 / args.interval) // 2)
    started = time.monotonic()
    info = machine()
    info["load_before"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    got: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="tslcd-bench-shared-") as tmp_dir:
        tmp = Path(tmp_dir)
        info["fsync_ms"] = f"{fsync_ms(tmp):.2f}"
        cfg = load_config(write_config(tmp / "config.yaml", args.interval, None))
        year_cfg = load_config(history_size_config(tmp))
        with ExitStack() as stack:
            pg = None
            if "postgresql" in backends:
                from monitor.lab.postgres import server

                pg = stack.enter_context(server())  # stopped and removed when the stack closes
            for name in backends:
                g: dict[str, Any] = {}
                print(f"{name}: {args.pollers} pollers x {args.nodes} nodes, {args.sim_days} simulated days ...",
                      file=sys.stderr, flush=True)
                with backend_url(name, tmp, pg, "shared") as url:
                    setup = SqlStore(url)  # migrated once, before the pollers open it
                    if not setup.sqlite:
                        with setup.engine.connect() as c:
                            g["version"] = c.exec_driver_sql("SHOW server_version").scalar_one()
                    pg_cpu0 = None if setup.sqlite else postmaster_children_cpu(setup)
                    setup.close()
                    t = time.perf_counter()
                    run = run_pollers(url, tmp, args, cfg.tz)
                    g["pollers_s"] = time.perf_counter() - t
                    g["s"] = summarize(run, args)
                    if pg_cpu0 is not None:
                        probe = SqlStore(url)
                        after = postmaster_children_cpu(probe)
                        probe.close()
                        g["pg_cpu"] = None if after is None else after - pg_cpu0
                    print(f"  pollers done in {g['pollers_s']:.0f} s; checking ...", file=sys.stderr, flush=True)
                    g["chk"] = check_shared(url, cfg, args)
                if not args.skip_year:
                    with backend_url(name, tmp, pg, "year") as url:
                        g["y"] = year(url, tmp, year_cfg, args)
                got[name] = g
                print(json.dumps({name: {k: v for k, v in g.items() if k in ("pollers_s", "chk")}}, default=str),
                      file=sys.stderr, flush=True)
    info["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(render(args, info, got, time.monotonic() - started))
    return 0


def history_size_config(tmp: Path) -> Path:
    """The config bench/history_size.py audits with (its province; no shard)."""
    path = tmp / "year.yaml"
    path.write_text(f"province: {history_size.PROVINCE}\ninventory: none.yaml\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    sys.exit(main())
