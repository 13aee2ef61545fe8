"""A simulated province on this machine: Đắk Lắk's real communes on loopback and in test namespaces."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
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


def _carrier(node: Node) -> Node:
    """A demo commune with who provides its circuit: VNPT in the former Đắk Lắk, Viettel elsewhere (with an id)."""
    carrier = "VNPT" if node.area == AREA_DAK_LAK else "Viettel"
    return replace(node, carrier=carrier, circuit_id=f"{carrier}-{node.code}")


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
                nodes.append(_carrier(Node(code, name, "commune", PROVINCE, area=area, address=f"198.18.2.{j + 1}",
                                           address6=f"2001:db8:66:2::{j + 1}", parent=AGG_NS)))
            else:
                nodes.append(_carrier(Node(code, name, "commune", PROVINCE, area=area, address=f"198.18.3.{j + 1}",
                                           address6=f"2001:db8:66:3::{j + 1}", parent=AGG[area])))
        else:
            nodes.append(_carrier(Node(code, name, "commune", PROVINCE, area=area, address=_loopback(i),
                                       parent=AGG[area])))
    # One loopback commune is dual-stack: its IPv6 address is ::1, the only IPv6 loopback address (IPv6 readiness).
    first = next(k for k, n in enumerate(nodes) if n.is_commune and n.address.startswith("127."))
    nodes[first] = replace(nodes[first], address6="::1")
    return nodes


SECOND_PROVINCE = "12"  # Lai Châu, 38 communes: the second province of `tslcd demo --two-provinces`
SECOND_NO_CIRCUIT = 5


def second_province_nodes() -> list[Node]:
    """Lai Châu's communes on loopback (127.12.x.y) behind a core node, the last five without a circuit."""
    from inventory.units import for_province

    units = sorted((u.code, u.name, u.province_name) for u in for_province(SECOND_PROVINCE) or [])
    assert units, "the shipped list of units lacks Lai Châu"
    province = units[0][2]
    nodes = [Node("12-CORE", f"Trung tâm dữ liệu {province} (lõi)", "core", province, address="127.12.0.1")]
    for i, (code, name, _) in enumerate(units):
        address = "" if i >= len(units) - SECOND_NO_CIRCUIT else f"127.12.{i // 250 + 1}.{i % 250 + 1}"
        nodes.append(Node(code, name, "commune", province, area="", address=address, parent="12-CORE"))
    return nodes


def inventory_yaml(nodes: Sequence[Node], header: str = "") -> str:
    """Write nodes as an inventory YAML file (codes quoted: leading zeros matter)."""
    rows: list[dict[str, Any]] = []
    for n in nodes:
        row: dict[str, Any] = {"code": n.code, "name": n.name, "kind": n.kind}
        if n.province != PROVINCE:
            row["province"] = n.province
        for key in ("area", "address", "address6", "snmp", "uplink", "parent", "carrier", "circuit_id", "lat", "lon",
                    "active_from", "active_until"):
            value = getattr(n, key)
            if value not in (None, ""):
                row[key] = value
        rows.append(row)
    body: str = yaml.safe_dump({"province": PROVINCE, "nodes": rows}, allow_unicode=True, sort_keys=False,
                          default_style=None, width=120)
    return header + body


# The SNMP side of the demo: every loopback commune's router answers through snmpsim.
SNMP_WRONG = "sai-community"  # one commune's profile has the wrong community
SNMP_V3_EVERY = 5  # every 5th commune is polled with SNMPv3 authPriv (SHA/AES)


def snmp_demo(nodes: Sequence[Node], port: int, v3_keys: tuple[str, str] | None
              ) -> tuple[list[Node], dict[str, Any], dict[str, str]]:
    """Give the loopback communes SNMP profiles; return the nodes, the profiles and one recording per commune.

    Recordings are snmpsim .snmprec texts named by commune code (the v2c community, or the
    v3 context): traffic counters that move, one router that reboots every two minutes,
    one uplink down, and one commune whose profile has the wrong community.
    """
    from monitor.lab.agents import Interface, router_recording

    loop_communes = [n for n in nodes if n.is_commune and n.address.startswith("127.")]
    wrong, reboots, linkdown = (loop_communes[i].code for i in (1, 2, 3))
    profiles: dict[str, Any] = {}
    recordings: dict[str, str] = {}
    out: list[Node] = []
    for n in nodes:
        if n not in loop_communes:
            out.append(n)
            continue
        i = loop_communes.index(n)
        seed = int(n.code) if n.code.isdigit() else i
        recordings[n.code] = router_recording(
            sys_name=f"ubnd-{n.code}", sys_descr=f"Router UBND {n.name} (mô phỏng)",
            reboot_every_s=120.0 if n.code == reboots else None,
            interfaces=[Interface(1, "lo", descr="loopback"),
                        Interface(2, "ge-0/0/0", descr="TSLCD uplink", alias="WAN TSLCD", oper_up=n.code != linkdown,
                                  in_octets=seed * 10**6, out_octets=seed * 4 * 10**5,
                                  in_rate=0.0 if n.code == linkdown else 2_000 + seed % 7 * 1_000,
                                  out_rate=0.0 if n.code == linkdown else 800 + seed % 5 * 300)])
        name = f"demo-{n.code}"
        if v3_keys and i % SNMP_V3_EVERY == 0 and n.code != wrong:
            profiles[name] = {"version": "3", "user": "tslcd-demo", "auth_protocol": "sha", "auth_key": v3_keys[0],
                              "priv_protocol": "aes128", "priv_key": v3_keys[1], "context": n.code,
                              "port": port, "timeout_s": 1.0, "retries": 1}
        else:
            profiles[name] = {"version": "2c", "community": SNMP_WRONG if n.code == wrong else n.code,
                              "port": port, "timeout_s": 1.0, "retries": 1}
        out.append(replace(n, snmp=name, uplink="ge-0/0/0"))
    return out, profiles, recordings


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


def _start_snmp(nodes: list[Node], tmp: Path, agents: contextlib.ExitStack) -> tuple[list[Node], dict[str, Any]]:
    """Start one snmpsim for all loopback communes (v2c and v3); it is stopped with ``agents``."""
    from monitor.lab.agents import UsmUser, free_udp_port, start_snmpsim, write_recording

    hosts = [n.address for n in nodes if n.is_commune and n.address.startswith("127.")]
    port = free_udp_port(*hosts)
    keys = (secrets.token_hex(12), secrets.token_hex(12))  # this run's v3 keys, never shown
    nodes, profiles, recordings = snmp_demo(nodes, port, keys)
    data = tmp / "snmpsim"
    data.mkdir()
    for code, text in recordings.items():
        write_recording(data / f"{code}.snmprec", text)
    print(f"tslcd demo: starting SNMP agents for {len(recordings)} communes (snmpsim, v2c and v3)...",
          file=sys.stderr, flush=True)
    user = UsmUser("tslcd-demo", "sha", keys[0], "aes128", keys[1])
    agents.enter_context(start_snmpsim(data, hosts=hosts, port=port, user=user, workdir=tmp / "agent"))
    return nodes, profiles


def run_demo(cfg: Config, *, listen: str | None, netns: bool, flap_every_s: float, interval_s: float = 5.0,
             duration_s: float | None = None, snmp: bool = True, no_netns: str | None = None,
             two_provinces: bool = False) -> int:
    """Build the simulated province, monitor it until Ctrl-C (or ``duration_s``), remove everything.

    ``no_netns``: why the namespaces cannot be made here, known beforehand (said instead of probing).
    A store, address or ICMP permission problem raises its TslcdError (after the cleanup).
    """
    from monitor.runtime import app

    # SIGTERM before the event loop takes over must still run the cleanup below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    lab = None
    reason = no_netns
    if netns and reason is None:
        from monitor.lab import netns as nsmod

        reason = nsmod.available()
        if reason is None:
            nsmod.cleanup_stale("tslcdemo")
            lab = nsmod.Lab("tslcdemo")
    if reason:
        print(f"tslcd demo: loopback only (no link goes down): {reason}", file=sys.stderr)
    try:
        nodes = demo_nodes(netns=lab is not None)
        if two_provinces:
            nodes += second_province_nodes()
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
        with tempfile.TemporaryDirectory(prefix="tslcd-demo-") as tmp, contextlib.ExitStack() as agents:
            profiles: dict[str, Any] = {}
            if snmp:
                nodes, profiles = _start_snmp(nodes, Path(tmp), agents)
            path = Path(tmp) / "demo-inventory.yaml"
            path.write_text(inventory_yaml(nodes), encoding="utf-8")
            # The demo's history goes to a store of its own, gone with the demo.
            store = cfg.store.model_copy(update={"path": Path(tmp) / "demo.sqlite", "url": None})
            # Faster sweeps than production so that changes show within seconds; validated
            # again so that a too short interval is refused like in config.yaml.
            icmp = type(cfg.icmp).model_validate({**cfg.icmp.model_dump(), "interval_s": interval_s})
            # No email: the demo must never write to the configured recipients.
            demo_cfg = cfg.model_copy(update={"inventory": path, "icmp": icmp, "store": store, "email": None})
            if two_provinces:  # the national figure first, then each province's
                from monitor.config import NATIONAL

                demo_cfg = demo_cfg.model_copy(update={
                    "province": NATIONAL, "provinces": (PROVINCE, second_province_nodes()[0].province)})
            if profiles:
                from monitor.config import SnmpProfile

                demo_cfg = demo_cfg.model_copy(update={
                    "snmp_profiles": {k: SnmpProfile.model_validate(v) for k, v in profiles.items()},
                    "snmp": cfg.snmp.model_copy(update={"interval_s": max(10.0, 2 * interval_s)})})
            from inventory.load import load_inventory

            inventory = load_inventory(path, default_province=PROVINCE)
            monitor = app.build(demo_cfg, inventory, inventory_path=path)
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

