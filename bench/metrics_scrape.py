"""Benchmark: /metrics at N nodes — render cost, scrape latency, and event-loop stalls while rendering.

    python bench/metrics_scrape.py [--nodes 20000] [--scrapes 20]

Compares tslcd's cached exposition (written straight into a buffer in a worker thread, the
"nodes" part once per sweep and the "snmp" part once per poll, served as bytes) with the plain
prometheus_client way (generate_latest of the same families, on every scrape, in the event
loop). Each node carries what an SNMP poll leaves unless --no-snmp. Prints figures; it is not
a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402
from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402

from exporters.metrics import PARTS, SnapshotCollector, render_snapshot  # noqa: E402
from inventory.model import Node  # noqa: E402
from monitor.core.rates import CommuneNow, current_rates  # noqa: E402
from monitor.core.snapshot import NodeStatus, Snapshot  # noqa: E402
from monitor.core.snmp import SnmpStatus  # noqa: E402


def _snmp(i: int) -> SnmpStatus:
    """What a router polled over SNMP shows (uptime, reboots, uplink status, traffic and errors)."""
    return SnmpStatus(up=True, reason="ok", detail="", polled_at=1.7e9 + i % 60, last_ok_at=1.7e9, sys_name=None,
                      sys_descr=None, sys_object_id=None, uptime_s=86400.0 + i * 1.37, reboots=i % 3,
                      last_reboot_at=1.69e9 + i, uplink_name="ge-0/0/0", uplink_if_index=2, uplink_oper_up=True,
                      uplink_oper_status="up", uplink_counter_bits=64, rx_bytes_total=10**9 + i * 7919,
                      tx_bytes_total=4 * 10**8 + i * 104729, rx_errors_total=i % 7, tx_errors_total=0,
                      bytes_today=3 * 10**6 + i)


def snapshot(n: int, snmp: bool = True) -> Snapshot:
    """N commune routers as a sweep and an SNMP poll leave them (every 17th down); addresses are never probed."""
    statuses = []
    for i in range(n):
        node = Node(f"{10000 + i:05d}", f"Xã Số {i}", "commune", "Đắk Lắk", area=f"Khu vực {i % 40}",
                    address=f"198.18.{i // 250}.{i % 250 + 1}")
        statuses.append(NodeStatus(node, "up" if i % 17 else "down", since=1.7e9, changes=i % 5, last_change=1.7e9,
                                   rtt_min=0.001 + i % 11 / 1e4, rtt_avg=0.002 + i % 13 / 1e4,
                                   rtt_max=0.003 + i % 17 / 1e4, jitter=0.0004 + i % 7 / 1e5, loss=i % 3 / 3,
                                   ipv6_ok=None, snmp=_snmp(i) if snmp else None))
    rates = current_rates(CommuneNow(s.node.province, s.node.area, True, s.state == "up") for s in statuses)
    return Snapshot(time.time(), "Đắk Lắk", "Asia/Ho_Chi_Minh", 1.0, tuple(statuses), rates)


NL = b"\n"


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def loop_lag_during(coro_factory, period: float = 0.001) -> tuple[float, object]:
    """Run the coroutine while a ticker measures the worst event-loop delay."""
    worst = 0.0
    done = False

    async def ticker() -> None:
        nonlocal worst
        while not done:
            t = time.perf_counter()
            await asyncio.sleep(period)
            worst = max(worst, time.perf_counter() - t - period)

    task = asyncio.create_task(ticker())
    result = await coro_factory()
    done = True
    await task
    return worst, result


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=20000)
    ap.add_argument("--scrapes", type=int, default=20)
    ap.add_argument("--no-snmp", action="store_true", help="ICMP families only (no SNMP status per node)")
    args = ap.parse_args()
    snap = snapshot(args.nodes, snmp=not args.no_snmp)
    print(f"nodes: {args.nodes}{'' if args.no_snmp else ' (with SNMP)'}, python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cpus")

    def reference() -> bytes:
        reg = CollectorRegistry(auto_describe=False)
        reg.register(SnapshotCollector(snap))
        return generate_latest(reg)

    render_snapshot(snap)  # the first render fills the cache of label sets, as the first sweep does
    for name, fn in (("tslcd render_snapshot (direct, gzipped as it is written)", lambda: render_snapshot(snap)),
                     ("prometheus_client generate_latest (same families)", reference)):
        runs = []
        for _ in range(3):
            c0, w0 = cpu(), time.perf_counter()
            out = fn()
            runs.append((cpu() - c0, time.perf_counter() - w0))
        text = out.text if hasattr(out, "text") else out
        samples = text.count(b"\n") - text.count(b"\n#")
        best = min(runs)
        print(f"{name}: {samples} samples, {len(text) / 1e6:.1f} MB, CPU {best[0]:.3f} s, wall {best[1]:.3f} s "
              f"(best of 3)")
    expo = render_snapshot(snap)
    print(f"gzipped once per render: {len(expo.gzipped) / 1e6:.2f} MB")
    # What the monitor renders: the "nodes" part after each ICMP sweep, the "snmp" part after each SNMP poll.
    for part in PARTS:
        c0, w0 = cpu(), time.perf_counter()
        out = render_snapshot(snap, part)
        spent = cpu() - c0
        print(f"  part {part!r} alone (after each {'sweep' if part == 'nodes' else 'poll'}): "
              f"{out.text.count(NL) - out.text.count(NL + b'#')} samples, CPU {spent:.3f} s")

    lag, _ = await loop_lag_during(lambda: asyncio.to_thread(render_snapshot, snap))
    print(f"render in a worker thread: worst event-loop stall {lag * 1000:.1f} ms")

    async def in_loop() -> bytes:
        await asyncio.sleep(0.01)  # let the ticker start, then block the loop as a per-scrape render would
        return reference()

    lag, _ = await loop_lag_during(in_loop)
    print(f"peer way (generate_latest per scrape, in the loop): worst event-loop stall {lag * 1000:.0f} ms")

    # Scrape latency of the cached exposition over real HTTP.
    from exporters.metrics import MetricsCache, SelfMetrics
    from exporters.web import start_server
    from monitor.config import Config

    class Holder:
        pass

    mon = Holder()
    mon.metrics = MetricsCache(SelfMetrics())  # type: ignore[attr-defined]
    for part in PARTS:
        mon.metrics.update(render_snapshot(snap, part), part)  # type: ignore[attr-defined]
    mon.snapshot = snap  # type: ignore[attr-defined]
    mon.cfg = Config.model_validate({"province": "x", "inventory": "x"})  # type: ignore[attr-defined]
    mon.health_problem = lambda: None  # type: ignore[attr-defined]
    runner, url = await start_server(mon, "127.0.0.1:0")  # type: ignore[arg-type]
    try:
        for gz in (False, True):
            times = []
            async with aiohttp.ClientSession(auto_decompress=False) as http:
                for _ in range(args.scrapes):
                    t = time.perf_counter()
                    async with http.get(url + "metrics",
                                        headers={"Accept-Encoding": "gzip" if gz else "identity"}) as r:
                        await r.read()
                    times.append(time.perf_counter() - t)
            print(f"scrape {'gzip' if gz else 'plain'}: median {statistics.median(times) * 1000:.1f} ms, "
                  f"max {max(times) * 1000:.1f} ms over {args.scrapes} scrapes")
    finally:
        await runner.cleanup()
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    asyncio.run(main())
