"""The monitor with SNMP: real snmpsim agents on loopback, results on /metrics and the status page."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inventory.model import Inventory, Node
from monitor.lab.agents import Agent, Interface, router_recording, start_snmpsim, write_recording
from monitor.lab.demo import inventory_yaml
from monitor.runtime.service import Monitor
from tests.conftest import ScriptedSweeper, write_config
from tests.test_exporter import fetch, samples, value

HOSTS = ("127.0.0.21", "127.0.0.22", "127.0.0.23")


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    data = tmp_path_factory.mktemp("snmpsim-data")
    write_recording(data / "c-up.snmprec", router_recording(sys_name="ubnd-buon-ma-thuot", interfaces=[
        Interface(1, "lo"), Interface(2, "wan0", alias="TSLCD uplink", in_octets=10**9, out_octets=5 * 10**8,
                                      in_rate=50_000, out_rate=20_000)]))
    write_recording(data / "c-linkdown.snmprec", router_recording(sys_name="ubnd-tan-an", interfaces=[
        Interface(1, "lo"), Interface(2, "wan0", oper_up=False)]))
    with start_snmpsim(data, hosts=HOSTS, workdir=tmp_path_factory.mktemp("agent")) as a:
        yield a


async def test_snmp_status_reaches_metrics_and_the_page(tmp_path: Path, agent: Agent, served: Any) -> None:
    p = "Đắk Lắk"
    inv = Inventory.of([
        Node("24133", "Phường Buôn Ma Thuột", "commune", p, area="A", address=HOSTS[0], snmp="up", uplink="wan0"),
        Node("24121", "Phường Tân An", "commune", p, area="A", address=HOSTS[1], snmp="linkdown", uplink="wan0"),
        Node("24154", "Xã Hòa Phú", "commune", p, area="A", address=HOSTS[2], snmp="wrong", uplink="wan0"),
    ])
    path = tmp_path / "inv.yaml"
    path.write_text(inventory_yaml(inv.nodes), encoding="utf-8")
    profiles = "".join(
        f"  {name}:\n    version: '2c'\n    community: {community}\n    port: {agent.port}\n"
        f"    timeout_s: 0.5\n    retries: 0\n"
        for name, community in (("up", "c-up"), ("linkdown", "c-linkdown"), ("wrong", "not-the-community")))
    cfg = write_config(tmp_path, path, f"snmp_profiles:\n{profiles}")
    mon = Monitor(cfg, inv, ScriptedSweeper(), inventory_path=path)
    try:
        url = await served(mon)
        await mon.sweep_once()
        snap = await mon.poll_snmp_once()
        by = {ns.node.code: ns.snmp for ns in snap.nodes}
        up, down, wrong = by["24133"], by["24121"], by["24154"]
        assert up is not None and up.up and up.uplink_oper_up is True and up.uplink_name == "wan0"
        assert up.sys_name == "ubnd-buon-ma-thuot" and up.uptime_s is not None and up.rx_bytes_total is not None
        assert down is not None and down.up and down.uplink_oper_up is False
        assert wrong is not None and not wrong.up and wrong.reason in ("wrong_community", "timeout")
        assert "community" in wrong.detail  # says that a wrong community looks like a timeout
        assert "not-the-community" not in wrong.detail  # never the secret itself

        # A sweep between polls shows the same SNMP statuses: the poll's objects, not 20,000 new ones a sweep.
        swept = await mon.sweep_once()
        assert all(a.snmp is b.snmp for a, b in zip(snap.nodes, swept.nodes, strict=True))
        assert {ns.node.code: ns.snmp for ns in swept.nodes}["24133"] is up

        _, _, body = await fetch(url + "metrics")
        s = samples(body.decode())
        assert value(s, "tslcd_snmp_up", code="24133") == 1
        assert value(s, "tslcd_snmp_up", code="24154") == 0
        assert value(s, "tslcd_snmp_ping_only", code="24154") == 1
        assert value(s, "tslcd_snmp_ping_only", code="24133") == 0
        assert value(s, "tslcd_uplink_oper_up", code="24133") == 1
        assert value(s, "tslcd_uplink_oper_up", code="24121") == 0
        assert value(s, "tslcd_uplink_receive_bytes_total", code="24133") >= 10**9
        assert value(s, "tslcd_snmp_sys_uptime_seconds", code="24133") > 0
        assert value(s, "tslcd_node_reboots_total", code="24133") == 0
        assert value(s, "tslcd_probes_total", probe="snmp", result="failure") == 1
        assert "not-the-community" not in body.decode()

        _, _, page = await fetch(url)
        html = page.decode()
        assert 'id="ping-only"' in html and 'data-code="24154"' in html
        assert 'id="snmp-nodes"' in html and "wan0" in html
        assert "not-the-community" not in html

        # Counters move between polls and never go backwards.
        first = up.rx_bytes_total
        for _ in range(20):  # bounded: snmpsim's numeric variation moves with time
            snap = await mon.poll_snmp_once()
            again = {ns.node.code: ns.snmp for ns in snap.nodes}["24133"]
            assert again is not None and again.rx_bytes_total is not None and again.rx_bytes_total >= first
            if again.rx_bytes_total > first:
                break
            await asyncio.sleep(0.2)  # polling a real agent whose counters move with time
        assert again.rx_bytes_total > first
    finally:
        if mon.snmp is not None:
            mon.snmp.close()
