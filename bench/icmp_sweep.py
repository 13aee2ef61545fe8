"""Benchmark: tslcd's ICMP sweep engine against fping on loopback, at the same packet rate."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GNU_TIME = shutil.which("time", path="/usr/bin:/bin")  # Debian package "time"


@dataclass(frozen=True)
class Run:
    """Figures of one tool run in its own process."""

    received: int
    expected: int
    wall_s: float
    cpu_s: float
    user_s: float
    sys_s: float
    rss_mb: float
    sweep_wall_s: float | None = None  # inside the process, sweep only (tslcd)
    sweep_cpu_s: float | None = None


def loopback_targets(n: int) -> list[str]:
    """n distinct addresses in 127.16.0.0/12; Linux answers all of 127/8 on lo."""
    return [f"127.{16 + (i >> 16)}.{(i >> 8) & 0xFF}.{i & 0xFF}" for i in range(1, n + 1)]


def _measure(cmd: list[str], out_path: str) -> tuple[float, float, float, float, int]:
    """Run cmd; return wall s, user s, sys s, peak RSS MB and the exit code."""
    # A child's ru_maxrss keeps the high-water mark of the process it was
    # forked from (this Python, ~23 MB) across exec, so peak RSS comes from
    # GNU time, whose own child is forked from a ~2 MB process. CPU comes from
    # wait4 (microseconds, not time's centiseconds); it includes time's own
    # ~1 ms, the same for both tools.
    with open(out_path, "w") as out, tempfile.NamedTemporaryFile(suffix=".rss") as rss:
        if GNU_TIME:
            cmd = [GNU_TIME, "-f", "%M", "-o", rss.name, *cmd]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        rss_kb = float(Path(rss.name).read_text().split()[-1]) if GNU_TIME else float(usage.ru_maxrss)
    return wall, usage.ru_utime, usage.ru_stime, rss_kb / 1024, proc.returncode


def run_fping(targets_file: str, hosts: int, count: int, pps: int, period_ms: float, timeout_ms: float) -> Run:
    """fping -C in its own process; replies counted from its per-target RTT lists."""
    cmd = ["fping", "-C", str(count), "-q", "-i", f"{1000 / pps:g}", "-p", f"{period_ms:g}"]
    cmd += ["-t", f"{timeout_ms:g}", "-r", "0", "-B", "1", "-f", targets_file]
    with tempfile.NamedTemporaryFile(suffix=".out") as out:
        wall, user, sys_, rss_mb, _rc = _measure(cmd, out.name)  # fping exits 1 when a host is unreachable
        received = 0
        for line in Path(out.name).read_text().splitlines():
            if " : " in line:
                received += sum(1 for v in line.split(" : ", 1)[1].split() if v != "-")
    return Run(received, hosts * count, wall, user + sys_, user, sys_, rss_mb)


def run_tslcd(targets_file: str, hosts: int, count: int, pps: int, period_ms: float, timeout_ms: float) -> Run:
    """tslcd's engine in its own Python process (interpreter start-up included)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", targets_file, "--count", str(count),
           "--pps", str(pps), "--period-ms", f"{period_ms:g}", "--timeout-ms", f"{timeout_ms:g}"]
    with tempfile.NamedTemporaryFile(suffix=".out") as out:
        wall, user, sys_, rss_mb, rc = _measure(cmd, out.name)
        text = Path(out.name).read_text()
    if rc != 0:
        raise SystemExit(f"tslcd child failed ({rc}):\n{text}")
    child = json.loads(text.strip().splitlines()[-1])
    return Run(child["received"], hosts * count, wall, user + sys_, user, sys_, rss_mb, child["wall_s"],
               child["cpu_s"])


def child(targets_file: str, count: int, pps: int, period_ms: float, timeout_ms: float) -> None:
    """The tslcd side of one run: one sweep, figures as JSON on stdout."""
    sys.path.insert(0, str(REPO))
    from monitor.probes.icmp import IcmpEngine

    targets = Path(targets_file).read_text().split()

    async def sweep() -> dict[str, float]:
        with IcmpEngine() as engine:
            wall, cpu = time.perf_counter(), time.process_time()
            results = await engine.sweep(targets, count=count, pps=pps, interval_s=period_ms / 1000,
                                         timeout_s=timeout_ms / 1000)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return {"received": sum(r.received for r in results.values()), "wall_s": wall, "cpu_s": cpu}

    print(json.dumps(asyncio.run(sweep())))


def _median(runs: list[Run], field: str) -> float:
    return float(statistics.median(getattr(r, field) for r in runs))


def main() -> None:
    """Parse arguments, run both tools alternately, print medians and ratios."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--hosts", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--pps", type=int, default=10_000, help="total packets per second, both tools")
    p.add_argument("--period-ms", type=float, default=200, help="per-host interval (fping -p)")
    p.add_argument("--timeout-ms", type=float, default=1000, help="per-echo timeout (fping -t)")
    p.add_argument("--child", metavar="TARGETS_FILE", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(a.child, a.count, a.pps, a.period_ms, a.timeout_ms)
        return

    fping_version = subprocess.run(["fping", "-v"], capture_output=True, text=True).stdout.strip()
    import icmplib

    print(f"# {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, icmplib {icmplib.__version__}, "
          f"{fping_version}, uid {os.getuid()}, peak RSS from {GNU_TIME or 'wait4 (inflated by this parent)'}")
    print(f"# {a.count} echoes/host, {a.pps} pps, period {a.period_ms:g} ms, timeout {a.timeout_ms:g} ms, "
          f"median of {a.runs}")
    print(f"{'hosts':>6} {'tool':<6} {'replies/expected':>17} {'wall s':>7} {'CPU s':>6} {'user':>5} {'sys':>5} "
          f"{'RSS MB':>6}  {'sweep wall/CPU s (in-process)':>24}")
    for hosts in a.hosts:
        with tempfile.NamedTemporaryFile("w", suffix=".targets") as f:
            f.write("\n".join(loopback_targets(hosts)) + "\n")
            f.flush()
            runs: dict[str, list[Run]] = {"fping": [], "tslcd": []}
            for i in range(a.runs):
                # Alternate the order so neither tool always runs on a warmer machine.
                order = ("fping", "tslcd") if i % 2 == 0 else ("tslcd", "fping")
                for tool in order:
                    fn = run_fping if tool == "fping" else run_tslcd
                    runs[tool].append(fn(f.name, hosts, a.count, a.pps, a.period_ms, a.timeout_ms))
        med = {tool: {k: _median(rs, k) for k in ("received", "wall_s", "cpu_s", "user_s", "sys_s", "rss_mb")}
               for tool, rs in runs.items()}
        for tool, rs in runs.items():
            m = med[tool]
            inproc = ""
            if tool == "tslcd":
                inproc = f"{_median(rs, 'sweep_wall_s'):.3f} / {_median(rs, 'sweep_cpu_s'):.3f}"
            lost = min(r.received for r in rs)
            print(f"{hosts:>6} {tool:<6} {int(m['received']):>8}/{hosts * a.count:<8} {m['wall_s']:>7.3f} "
                  f"{m['cpu_s']:>6.3f} {m['user_s']:>5.2f} {m['sys_s']:>5.2f} {m['rss_mb']:>6.1f}  {inproc:>24}"
                  f"{'' if lost == hosts * a.count else f'  (worst run: {lost})'}")
        f_, t_ = med["fping"], med["tslcd"]
        sweep_cpu = _median(runs["tslcd"], "sweep_cpu_s")
        sweep_wall = _median(runs["tslcd"], "sweep_wall_s")
        print(f"{hosts:>6} ratio  tslcd/fping: wall {t_['wall_s'] / f_['wall_s']:.2f}x, "
              f"CPU {t_['cpu_s'] / f_['cpu_s']:.2f}x (sweep only: wall {sweep_wall / f_['wall_s']:.2f}x, "
              f"CPU {sweep_cpu / f_['cpu_s']:.2f}x), RSS {t_['rss_mb'] / f_['rss_mb']:.1f}x")


if __name__ == "__main__":
    main()
