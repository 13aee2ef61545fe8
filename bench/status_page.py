"""Benchmark: the status page at N nodes with every one down — its size and render time.

    python bench/status_page.py [--nodes 20000] [--runs 5]

Renders the page as the server does (one page of each list, PAGE_ROWS rows) and, for comparison,
with every row on one page (what the page did before it had pages). Also a search and an area's
page. Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporters.status import PAGE_ROWS, _env, render_status_page, status_view  # noqa: E402
from inventory.model import Node  # noqa: E402
from monitor.core.rates import CommuneNow, current_rates  # noqa: E402
from monitor.core.snapshot import NodeStatus, Snapshot  # noqa: E402


def snapshot(n: int) -> Snapshot:
    """N communes in 40 areas, every one down for an hour; addresses are never probed."""
    statuses = []
    for i in range(n):
        node = Node(f"{10000 + i:05d}", f"Xã Ea Số {i}", "commune", "Đắk Lắk", area=f"Khu vực {i % 40}",
                    address=f"198.18.{i // 250}.{i % 250 + 1}")
        statuses.append(NodeStatus(node, "down", since=time.time() - 3600, changes=1, last_change=time.time() - 3600,
                                   loss=1.0))
    rates = current_rates(CommuneNow(s.node.province, s.node.area, True, False) for s in statuses)
    return Snapshot(time.time(), "Đắk Lắk", "Asia/Ho_Chi_Minh", 1.0, tuple(statuses), rates)


def best(fn: object, runs: int) -> tuple[float, str]:
    times, out = [], ""
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    snap = snapshot(args.nodes)
    print(f"nodes: {args.nodes}, all down; python {sys.version.split()[0]}, {os.cpu_count()} cpus; "
          f"{PAGE_ROWS} rows a page")
    cases = {
        "status page (page 1)": lambda: render_status_page(snap),
        "status page (page 100)": lambda: render_status_page(snap, page=100),
        "search 'ea so 1234'": lambda: render_status_page(snap, q="ea so 1234"),
        "area page 'Khu vực 7'": lambda: render_status_page(snap, area="Khu vực 7"),
        "every row on one page (before)": lambda: _env.get_template("status.html").render(
            v=status_view(snap, page_rows=len(snap.nodes)), refresh_s=30, base=""),
    }
    for name, fn in cases.items():
        seconds, html = best(fn, args.runs)
        print(f"{name}: {len(html.encode()) / 1000:.0f} KB, render {seconds * 1000:.0f} ms (best of {args.runs})")


if __name__ == "__main__":
    main()
