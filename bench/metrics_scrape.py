"""Benchmark: /metrics at N nodes — render cost, scrape latency, and event-loop stalls while rendering.

    python bench/metrics_scrape.py [--nodes 20000] [--scrapes 20]

Compares tslcd's cached exposition (rendered once per sweep in a worker thread, served
as bytes) with the plain prometheus_client way (generate_latest on every scrape, in the
event loop). Prints figures; it is not a test.
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

from exporters.metrics import SnapshotCollector, render_snapshot  # noqa: E402
from inventory.model import Node  # noqa: E402
from monitor.core.rates import CommuneNow, current_rates  # noqa: E402
from monitor.core.snapshot import NodeStatus, Snapshot  # noqa: E402


def snapshot(n: int) -> Snapshot:
    statuses = []
    for i in range(n):
        node = Node(f"{10000 + i:05d}", f"Xã Số {i}", "commune", "Đắk Lắk", area=f"Khu vực {i % 40}",
                    address=f"198.18.{i // 250}.{i % 250 + 1}")
        statuses.append(NodeStatus(node, "up" if i % 17 else "down", since=1.7e9, changes=i % 5, last_change=1.7e9,
                                   rtt_min=0.001, rtt_avg=0.002, rtt_max=0.003, jitter=0.0004, loss=0.0,
                                   ipv6_ok=None))
    rates = current_rates(CommuneNow(s.node.province, s.node.area, True, s.state == "up") for s in statuses)
    return Snapshot(time.time(), "Đắk Lắk", "Asia/Ho_Chi_Minh", 1.0, tuple(statuses), rates)


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
    args = ap.parse_args()
    snap = snapshot(args.nodes)
    print(f"nodes: {args.nodes}, python {sys.version.split()[0]}, {os.cpu_count()} cpus")

    c0, w0 = cpu(), time.perf_counter()
    expo = render_snapshot(snap)
    c1, w1 = cpu(), time.perf_counter()
    samples = expo.text.count(b"\n") - expo.text.count(b"\n#")
    print(f"render once per sweep: {samples} samples, {len(expo.text) / 1e6:.1f} MB text, "
          f"{len(expo.gzipped) / 1e6:.2f} MB gzipped, CPU {c1 - c0:.2f} s, wall {w1 - w0:.2f} s")

    lag, _ = await loop_lag_during(lambda: asyncio.to_thread(render_snapshot, snap))
    print(f"render in a worker thread: worst event-loop stall {lag * 1000:.1f} ms")

    def direct() -> bytes:
        reg = CollectorRegistry(auto_describe=False)
        reg.register(SnapshotCollector(snap))
        return generate_latest(reg)

    async def in_loop() -> bytes:
        await asyncio.sleep(0.01)  # let the ticker start, then block the loop as a per-scrape render would
        return direct()

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
    mon.metrics.update(expo)  # type: ignore[attr-defined]
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
