"""A simulated province on this machine: Đắk Lắk's real communes on loopback and in test namespaces."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from inventory.model import Node
from monitor.config import Config

log = logging.getLogger("tslcd.demo")

PROVINCE = "Đắk Lắk"
AREA_DAK_LAK = "Đắk Lắk (cũ)"
AREA_PHU_YEN = "Phú Yên (cũ)"
CORE = "66-CORE"
AGG = {AREA_DAK_LAK: "66-AGG-DL", AREA_PHU_YEN: "66-AGG-PY"}
AGG_NS = "66-AGG-NS"  # the aggregation node in a namespace, whose failure makes its communes unreachable
NO_CIRCUIT = 3  # communes without a TSLCD circuit yet, as in a real province
BEHIND_ROUTER = 4
DIRECT_FLAPPING = 3


def _units() -> list[tuple[str, str]]:
    from inventory.units import for_province

    units = for_province("66")
    assert units, "the shipped Đắk Lắk list is missing"
    return [(u.code, u.name) for u in units]


def _area(code: str) -> str:
    # Codes 22xxx were Phú Yên's communes before the 1 July 2025 merger; 24xxx Đắk Lắk's.
    return AREA_PHU_YEN if code.startswith("22") else AREA_DAK_LAK


def _loopback(i: int) -> str:
    return f"127.66.{i // 250 + 1}.{i % 250 + 1}"


def demo_nodes(*, netns: bool) -> list[Node]:
    """The demo inventory. With ``netns`` some communes live in test namespaces (198.18.0.0/15)."""
    nodes = [Node(CORE, "Trung tâm Tích hợp dữ liệu tỉnh (lõi)", "core", PROVINCE, address="127.66.0.1")]
    for k, (area, code) in enumerate(AGG.items()):
        nodes.append(Node(code, f"Nút tập trung {area}", "aggregation", PROVINCE, area=area,
                          address=f"127.66.0.{k + 2}", parent=CORE))
    units = sorted(_units())
    special = units[-NO_CIRCUIT:]
    # The namespace communes hang off an aggregation node of the former Đắk Lắk.
    ns_units = [u for u in units if _area(u[0]) == AREA_DAK_LAK][: BEHIND_ROUTER + DIRECT_FLAPPING] if netns else []
    if netns:
        nodes.append(Node(AGG_NS, "Nút tập trung Buôn Hồ (mô phỏng)", "aggregation", PROVINCE,
                          area=AREA_DAK_LAK, address="198.18.1.1", address6="2001:db8:66:1::1", parent=CORE))
    for i, (code, name) in enumerate(units):
        area = _area(code)
        if (code, name) in special:
            nodes.append(Node(code, name, "commune", PROVINCE, area=area, parent=AGG[area]))
        elif (code, name) in ns_units:
            j = ns_units.index((code, name))
            if j < BEHIND_ROUTER:
                nodes.append(Node(code, name, "commune", PROVINCE, area=area, address=f"198.18.2.{j + 1}",
                                  address6=f"2001:db8:66:2::{j + 1}", parent=AGG_NS))
            else:
                nodes.append(Node(code, name, "commune", PROVINCE, area=area, address=f"198.18.3.{j + 1}",
                                  address6=f"2001:db8:66:3::{j + 1}", parent=AGG[area]))
        else:
            nodes.append(Node(code, name, "commune", PROVINCE, area=area, address=_loopback(i),
                              parent=AGG[area]))
    return nodes


def inventory_yaml(nodes: Sequence[Node], header: str = "") -> str:
    """Write nodes as an inventory YAML file (codes quoted: leading zeros matter)."""
    rows: list[dict[str, Any]] = []
    for n in nodes:
        row: dict[str, Any] = {"code": n.code, "name": n.name, "kind": n.kind}
        for key in ("area", "address", "address6", "snmp", "uplink", "parent", "lat", "lon",
                    "active_from", "active_until"):
            value = getattr(n, key)
            if value not in (None, ""):
                row[key] = value
        rows.append(row)
    body: str = yaml.safe_dump({"province": PROVINCE, "nodes": rows}, allow_unicode=True, sort_keys=False,
                          default_style=None, width=120)
    return header + body


class _Flapper:
    """Takes the namespace links down and up in turn, so the demo shows outages and recoveries."""

    def __init__(self, lab: Any, router: Any, direct: Sequence[Any]) -> None:
        self.lab = lab
        steps: list[tuple[Any, bool, str]] = []
        for host in direct:
            steps.append((host, False, f"link of {host.name} down"))
            steps.append((router, False, "aggregation node down: its communes become unreachable"))
            steps.append((host, True, f"link of {host.name} up"))
            steps.append((router, True, "aggregation node up"))
        self.steps = steps
        self.i = 0

    def step(self) -> None:
        host, up, what = self.steps[self.i % len(self.steps)]
        self.i += 1
        self.lab.set_link(host, up)
        print(f"tslcd demo: {what}", file=sys.stderr, flush=True)


def run_demo(cfg: Config, *, listen: str | None, netns: bool, flap_every_s: float, interval_s: float = 5.0,
             duration_s: float | None = None) -> int:
    """Build the simulated province, monitor it until Ctrl-C (or ``duration_s``), remove everything."""
    from monitor.cli import _engine
    from monitor.service import Monitor

    # SIGTERM before the event loop takes over must still run the cleanup below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    lab = None
    reason = None
    if netns:
        from monitor import netns as nsmod

        reason = nsmod.available()
        if reason is None:
            nsmod.cleanup_stale("tslcdemo")
            lab = nsmod.Lab("tslcdemo")
    if reason:
        print(f"tslcd demo: loopback only: {reason}", file=sys.stderr)
    try:
        nodes = demo_nodes(netns=lab is not None)
        flapper = None
        if lab is not None:
            by_code = {n.code: n for n in nodes}
            router_node = by_code[AGG_NS]
            router = lab.add_router("agg", router_node.address, router_node.address6 or None)
            direct = []
            for n in nodes:
                if n.parent == AGG_NS:
                    lab.add_host(f"c{n.address.rsplit('.', 1)[1]}", n.address, n.address6 or None, behind=router)
                elif n.address.startswith("198.18.3."):
                    direct.append(lab.add_host(f"d{n.address.rsplit('.', 1)[1]}", n.address, n.address6 or None))
            flapper = _Flapper(lab, router, direct)
        with tempfile.TemporaryDirectory(prefix="tslcd-demo-") as tmp:
            path = Path(tmp) / "demo-inventory.yaml"
            path.write_text(inventory_yaml(nodes), encoding="utf-8")
            # The demo's history goes to a store of its own, gone with the demo.
            store = cfg.store.model_copy(update={"path": Path(tmp) / "demo.sqlite", "url": None})
            # Faster sweeps than production so that changes show within seconds; validated
            # again so that a too short interval is refused like in config.yaml.
            icmp = type(cfg.icmp).model_validate({**cfg.icmp.model_dump(), "interval_s": interval_s})
            demo_cfg = cfg.model_copy(update={"inventory": path, "icmp": icmp, "store": store})
            from inventory.load import load_inventory

            inventory = load_inventory(path, default_province=PROVINCE)
            monitor = Monitor(demo_cfg, inventory, _engine(), inventory_path=path)  # type: ignore[arg-type]
            from monitor.cli import attach_recorder

            if not attach_recorder(monitor, demo_cfg):
                return 1
            asyncio.run(_serve(monitor, listen, flapper, flap_every_s, duration_s))
    finally:
        if lab is not None:
            lab.close()
            print("tslcd demo: namespaces, links and routes removed", file=sys.stderr)
    return 0


async def _serve(monitor: Any, listen: str | None, flapper: _Flapper | None, flap_every_s: float,
                 duration_s: float | None) -> None:
    stop = asyncio.Event()

    def ready(url: str) -> None:
        print(f"tslcd demo: {len(monitor.inventory.nodes)} nodes of a simulated {PROVINCE}; "
              f"status page {url} (metrics {url}metrics). Ctrl-C stops and cleans up.", file=sys.stderr,
              flush=True)

    async def flap() -> None:
        while flapper is not None and not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), flap_every_s)
            except TimeoutError:
                await asyncio.to_thread(flapper.step)

    async def stop_later() -> None:
        if duration_s is not None:
            try:
                await asyncio.wait_for(stop.wait(), duration_s)
            except TimeoutError:
                stop.set()

    tasks = [asyncio.create_task(flap()), asyncio.create_task(stop_later())]
    try:
        await monitor.run(listen, ready=ready, stop=stop)
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

