"""/metrics scraped over HTTP and parsed; /api/status.json; /healthz; inventory reload."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.lab.demo import inventory_yaml
from monitor.runtime.service import Monitor
from tests.conftest import ScriptedSweeper, small_inventory, write_config


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(s: dict[Any, float], metric: str, **labels: str) -> float:
    return s[(metric, tuple(sorted(labels.items())))]


async def fetch(url: str, gz: bool = False) -> tuple[int, dict[str, str], bytes]:
    headers = {"Accept-Encoding": "gzip" if gz else "identity"}
    async with aiohttp.ClientSession(auto_decompress=False) as http, http.get(url, headers=headers) as r:
        return r.status, dict(r.headers), await r.read()


def make(tmp_path: Path, sweeper: ScriptedSweeper) -> Monitor:
    inv = small_inventory()
    path = tmp_path / "inv.yaml"
    path.write_text(inventory_yaml(inv.nodes), encoding="utf-8")
    cfg = write_config(tmp_path, path, "states:\n  down_after: 2\n  up_after: 1\n")
    return Monitor(cfg, inv, sweeper, inventory_path=path)


async def test_metrics_follow_the_scenario(tmp_path: Path, served: Any) -> None:
    sweeper = ScriptedSweeper()
    mon = make(tmp_path, sweeper)
    url = await served(mon)
    status, _, body = await fetch(url + "healthz")
    assert status == 503  # no sweep yet
    await mon.sweep_once()
    sweeper.down = {"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.6"}  # AGG down, 24154 still answers
    await mon.sweep_once()
    await mon.sweep_once()
    status, headers, body = await fetch(url + "metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    s = samples(body.decode())
    assert value(s, "tslcd_node_up", code="24154") == 1
    assert value(s, "tslcd_node_state", code="AGG", state="down") == 1
    assert value(s, "tslcd_node_state", code="24133", state="unreachable") == 1
    # One series per node, its current state: no zero for the others (issue 13: they carry no information).
    assert ("tslcd_node_state", (("code", "24133"), ("state", "up"))) not in s
    assert sum(1 for name, labels in s if name == "tslcd_node_state" and ("code", "24133") in labels) == 1
    assert value(s, "tslcd_node_state", code="22015", state="down") == 1
    assert value(s, "tslcd_node_up", code="22045") == 0  # no circuit: never up, not a state
    assert ("tslcd_node_state", (("code", "22045"), ("state", "down"))) not in s
    assert value(s, "tslcd_node_info", code="22015", name="Phường <b>Tuy Hòa</b>", kind="commune",
                 province="Đắk Lắk", area="B", address="127.0.0.6", parent="CORE", lat="", lon="") == 1
    assert value(s, "tslcd_node_unreachable_cause", code="24133", cause="AGG") == 1
    assert ("tslcd_node_unreachable_cause", (("cause", "AGG"), ("code", "22015"))) not in s
    assert value(s, "tslcd_sweep_interval_seconds", probe="icmp") == 5
    assert value(s, "tslcd_node_state_changes_total", code="AGG") == 1
    assert value(s, "tslcd_icmp_packet_loss_ratio", code="22015") == 1
    assert value(s, "tslcd_icmp_rtt_seconds", code="24154") == 0.002
    # 5 communes: 24154 up; the other 3 provisioned ones down/unreachable; 22045 without circuit.
    assert value(s, "tslcd_communes", province="Đắk Lắk", area="") == 5
    assert value(s, "tslcd_communes_provisioned", province="Đắk Lắk", area="") == 4
    assert value(s, "tslcd_communes_connected", province="Đắk Lắk", area="") == 1
    assert value(s, "tslcd_connection_rate_ratio", province="Đắk Lắk", area="") == 0.2
    assert value(s, "tslcd_connection_rate_ratio", province="Đắk Lắk", area="A") == 1 / 3
    assert value(s, "tslcd_connection_target_ratio") == 1
    assert value(s, "tslcd_probes_total", probe="icmp", result="failure") == 8
    assert value(s, "tslcd_inventory_last_reload_success") == 1
    assert ("tslcd_sweep_duration_seconds", (("probe", "icmp"),)) in s

    status, headers, zbody = await fetch(url + "metrics", gz=True)
    assert headers["Content-Encoding"] == "gzip"
    assert samples(gzip.decompress(zbody).decode()).keys() == s.keys()

    status, _, body = await fetch(url + "healthz")
    assert status == 200

    status, _, body = await fetch(url + "api/status.json")
    view = json.loads(body)
    assert view["connection_rate"] == 0.2 and view["communes"] == 5 and view["provisioned"] == 4
    not_up = {n["code"]: n for n in view["not_up"]}
    assert not_up["24133"]["state"] == "unreachable" and not_up["24133"]["cause"] == "AGG"
    assert not_up["22015"]["state"] == "down"
    assert [n["code"] for n in view["no_circuit"]] == ["22045"]


async def test_a_bad_reload_keeps_the_last_good_inventory(tmp_path: Path, served: Any) -> None:
    mon = make(tmp_path, ScriptedSweeper())
    url = await served(mon)
    assert mon.inventory_path is not None
    mon.inventory_path.write_text("nodes:\n  - code: 1\n    address: not-an-ip\n", encoding="utf-8")
    assert not await mon.reload_inventory()
    assert len(mon.inventory.nodes) == 7
    _, _, body = await fetch(url + "metrics")
    assert value(samples(body.decode()), "tslcd_inventory_last_reload_success") == 0
    mon.inventory_path.write_text(inventory_yaml(small_inventory().nodes[:3]), encoding="utf-8")
    assert await mon.reload_inventory()
    await mon.sweep_once()
    _, _, body = await fetch(url + "metrics")
    s = samples(body.decode())
    assert value(s, "tslcd_inventory_last_reload_success") == 1
    assert value(s, "tslcd_inventory_nodes") == 3
    assert ("tslcd_node_up", (("code", "22015"),)) not in s


async def test_a_watched_file_that_shrinks_drastically_waits_for_sighup(tmp_path: Path) -> None:
    """105 nodes to 3 by a file change (a truncated copy) is not loaded; SIGHUP's reload (confirmed) is."""
    import os

    from monitor.lab.demo import demo_nodes

    mon = make(tmp_path, ScriptedSweeper())
    assert mon.inventory_path is not None
    nodes = demo_nodes(netns=False)
    mon.inventory_path.write_text(inventory_yaml(nodes), encoding="utf-8")
    assert await mon.reload_inventory() and len(mon.inventory.nodes) == len(nodes) == 105
    mon.inventory_path.write_text(inventory_yaml(nodes[:3]), encoding="utf-8")
    os.utime(mon.inventory_path, (1, 1))  # a change the watch notices, whatever the clock's resolution
    await mon.reload_if_changed()
    assert len(mon.inventory.nodes) == 105
    assert mon.self_metrics.registry.get_sample_value("tslcd_inventory_last_reload_success") == 0
    assert await mon.reload_inventory()  # what SIGHUP does: the operator confirms
    assert len(mon.inventory.nodes) == 3


async def test_a_deeply_nested_inventory_is_a_failed_reload_not_a_dead_task(tmp_path: Path) -> None:
    mon = make(tmp_path, ScriptedSweeper())
    assert mon.inventory_path is not None
    mon.inventory_path.write_text("nodes: " + "[" * 50_000 + "]" * 50_000 + "\n", encoding="utf-8")
    assert not await mon.reload_inventory()
    assert len(mon.inventory.nodes) == 7
    assert mon.self_metrics.registry.get_sample_value("tslcd_inventory_last_reload_success") == 0


def carrier_inventory() -> Any:
    """small_inventory with carriers: 24133 and 24121 (behind AGG) VNPT, 24154 Viettel, 22015 none named,
    22045 (no circuit yet) Viettel, and the aggregation node VNPT (a node, not a commune: never counted)."""
    from dataclasses import replace

    from inventory.model import Inventory

    carriers = {"AGG": "VNPT", "24133": "VNPT", "24121": "VNPT", "24154": "Viettel", "22045": "Viettel"}
    return Inventory.of([replace(n, carrier=carriers.get(n.code), circuit_id=f"CID-{n.code}" if n.code in carriers
                                 else None) for n in small_inventory().nodes])


async def test_carrier_series_count_communes_with_a_circuit_observed_and_cut_off(tmp_path: Path, served: Any) -> None:
    """Issue 17, part 4: per province and carrier, the communes with a circuit, those observed now (up, down,
    unreachable) and those cut off (down, unreachable); carrier "" for none named; a commune without a circuit
    and a node that is no commune are not counted; circuit ids are no label. A standby exports none of them."""
    sweeper = ScriptedSweeper()
    inv = carrier_inventory()
    cfg = write_config(tmp_path, tmp_path / "inv.yaml", "states:\n  down_after: 2\n  up_after: 1\n")
    mon = Monitor(cfg, inv, sweeper)
    url = await served(mon)
    p = "Đắk Lắk"

    def carriers(body: bytes) -> dict[tuple[str, str], float]:
        return {(name.removeprefix("tslcd_carrier_communes").lstrip("_") or "communes", dict(labels)["carrier"]): v
                for (name, labels), v in samples(body.decode()).items()
                if name.startswith("tslcd_carrier_") and dict(labels)["province"] == p}

    sweeper.down = {"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.6"}  # AGG down, 24154 still answers
    await mon.sweep_once()  # the first failures of a node never seen (down_after 2): unknown, so not observed
    _, _, body = await fetch(url + "metrics")
    assert carriers(body) == {
        ("communes", "VNPT"): 2, ("observed", "VNPT"): 0, ("cut_off", "VNPT"): 0,
        ("communes", "Viettel"): 1, ("observed", "Viettel"): 1, ("cut_off", "Viettel"): 0,
        ("communes", ""): 1, ("observed", ""): 0, ("cut_off", ""): 0,
    }
    await mon.sweep_once()
    _, _, body = await fetch(url + "metrics")
    assert carriers(body) == {
        ("communes", "VNPT"): 2, ("observed", "VNPT"): 2, ("cut_off", "VNPT"): 2,  # unreachable behind AGG
        ("communes", "Viettel"): 1, ("observed", "Viettel"): 1, ("cut_off", "Viettel"): 0,  # 22045: no circuit
        ("communes", ""): 1, ("observed", ""): 1, ("cut_off", ""): 1,  # 22015 down
    }
    text = body.decode()
    assert "CID-" not in text
    assert 'tslcd_carrier_communes_cut_off{carrier="",province="Đắk Lắk"} 1.0' in text

    _, _, body = await fetch(url + "api/status.json")
    view = json.loads(body)
    assert view["has_carriers"]
    assert [(c["carrier"], c["communes"], c["observed"], c["cut_off"]) for c in view["carriers"]] == [
        ("VNPT", 2, 2, 2), ("Viettel", 1, 1, 0), ("", 1, 1, 1)]  # the communes of no carrier named last
    assert {n["code"]: n["carrier"] for n in view["not_up"]} == {"AGG": "VNPT", "24133": "VNPT", "24121": "VNPT",
                                                                  "22015": ""}

    await mon._to_standby("pid 1 on elsewhere")  # what a poller superseded by another does
    _, _, body = await fetch(url + "metrics")
    s = samples(body.decode())
    assert value(s, "tslcd_poller_active") == 0
    assert not [name for name, _ in s if name.startswith("tslcd_carrier_")]
    assert "# TYPE tslcd_carrier_communes gauge" in body.decode()  # the family, without samples
    _, _, body = await fetch(url + "api/status.json")
    assert json.loads(body)["carriers"] == []


def _varied_snapshot() -> Any:
    """Every kind of node status the renderer meets, and label values that need escaping."""
    import math

    from inventory.model import Node
    from monitor.core.rates import CommuneNow, current_rates
    from monitor.core.snapshot import NodeStatus, Snapshot
    from monitor.core.snmp import SnmpStatus

    def snmp(i: int) -> SnmpStatus:
        return SnmpStatus(up=i % 3 != 0, reason="ok" if i % 3 else "timeout", detail="", polled_at=1.7e9 + i,
                          last_ok_at=None, sys_name=None, sys_descr=None, sys_object_id=None,
                          uptime_s=None if i % 4 == 0 else 123456.78 + i, reboots=i % 2,
                          last_reboot_at=1.69e9 if i % 2 else None, uplink_name="ge-0/0/0", uplink_if_index=2,
                          uplink_oper_up=None if i % 5 == 0 else bool(i % 2), uplink_oper_status=None,
                          uplink_counter_bits=64, rx_bytes_total=10**19 + i, tx_bytes_total=i * 1000,
                          rx_errors_total=i if i % 2 else None, tx_errors_total=0, bytes_today=2**40 + i)

    weird = ['Xã "Ea" Kao', "Phường \\ Tân\nLập", "Xã A\u202eB", "Thị trấn <b>&amp;</b>", "Xã\x00X", ""]
    states = ["up", "down", "unreachable", "unknown", "maintenance", "no_circuit"]
    nodes = []
    for i in range(60):
        st = states[i % len(states)]
        code = "ok" if i == 59 else f"{10000 + i:05d}"  # "ok": also a reason, in label sets of its own
        node = Node(code, weird[i % len(weird)] + str(i), "commune" if i % 7 else "aggregation",
                    "Đắk Lắk", area=weird[(i + 1) % len(weird)], address="" if st == "no_circuit" else "127.0.0.1",
                    parent="10000" if i else None, lat=12.68 + i / 1000 if i % 2 else None,
                    lon=108.05 if i % 2 else None, carrier=[None, "VNPT", 'Viet"tel\\\nX', ""][i % 4])
        rtt = None if st != "up" else [0.0, 1e-06, 0.00123, 1234567.891, math.inf][i % 5]
        nodes.append(NodeStatus(node, st, since=1.7e9, cause="10000" if st == "unreachable" else None,
                                changes=i, last_change=None if i % 4 == 0 else 1.7e9 + i / 7, flapping=i % 9 == 0,
                                rtt_min=rtt, rtt_avg=rtt, rtt_max=None if rtt is None else rtt * 2, jitter=-0.0,
                                loss=None if st == "no_circuit" else [0.0, 1.0, 1 / 3, math.nan][i % 4],
                                ipv6_ok=None if i % 3 else bool(i % 2), snmp=snmp(i) if i % 2 else None))
    rates = current_rates(CommuneNow(ns.node.province, ns.node.area, ns.state != "no_circuit", ns.state == "up")
                          for ns in nodes if ns.node.kind == "commune")
    return Snapshot(1.7e9, "Đắk Lắk", "Asia/Ho_Chi_Minh", 0.95, tuple(nodes), rates)


def test_the_direct_renderer_writes_what_prometheus_client_writes() -> None:
    """The exposition written straight into a buffer (issue 13) equals prometheus_client's rendering of the same
    families, byte for byte: escaping, number formats (1e-06, 1.234567891e+06, +Inf, NaN, -0.0), empty
    families, counters; rendering twice (the cached label sets) gives the same bytes."""
    from prometheus_client import CollectorRegistry, generate_latest

    from exporters.metrics import Renderer, SnapshotCollector

    snap = _varied_snapshot()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snap))
    reference = generate_latest(registry)
    renderer = Renderer()
    assert renderer.render(snap) == reference
    assert renderer.render(snap) == reference
    # What the monitor keeps: the families compressed as they are written, the plain text never whole.
    from exporters.metrics import PARTS, render_snapshot
    assert b"".join(gzip.decompress(render_snapshot(snap, part).gzipped) for part in PARTS) == reference
    text = reference.decode()
    assert 'name="Xã \\"Ea\\" Kao0"' in text and "+Inf" in text and "NaN" in text and "e-06" in text
    assert 'tslcd_carrier_communes{carrier="Viet\\"tel\\\\\\nX",province="Đắk Lắk"}' in text


def test_promtool_accepts_the_whole_exposition() -> None:
    """Issue 13, part 2: Prometheus's own linter passes on what /metrics serves (both parts and the live
    self-metrics), with every kind of node status and label values that need escaping."""
    import shutil
    import subprocess

    import pytest

    from exporters.metrics import PARTS, MetricsCache, SelfMetrics, render_snapshot

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool missing: apt-get install prometheus (scripts/test.sh does as root)")
    snap = _varied_snapshot()
    cache = MetricsCache(SelfMetrics())
    for part in PARTS:
        cache.update(render_snapshot(snap, part), part)
    body = cache.body(gzipped=False)
    r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), (r.stdout + r.stderr).decode()[:2000]
    cached = b"".join(render_snapshot(snap, part).text for part in PARTS)
    assert body.startswith(cached) and gzip.decompress(cache.body(gzipped=True)).startswith(cached)


async def test_ipv6_readiness_now_on_metrics_and_the_status_page(tmp_path: Path, served: Any) -> None:
    """Issue 17, part 5: communes whose IPv6 address answered the last sweep, over the communes (with data), per
    province and area, on /metrics and the status page (the fake sweeper: no packet is sent)."""
    from dataclasses import replace

    from inventory.model import Inventory

    sweeper = ScriptedSweeper()
    inv = Inventory.of([replace(n, address6="::1") if n.code == "22015" else
                        replace(n, address6="::2") if n.code == "24154" else n for n in small_inventory().nodes])
    cfg = write_config(tmp_path, tmp_path / "inv.yaml", "states:\n  down_after: 1\n  up_after: 1\n")
    mon = Monitor(cfg, inv, sweeper)
    url = await served(mon)
    sweeper.down = {"::2"}  # 24154's IPv6 address does not answer; 22015's does
    await mon.sweep_once()
    _, _, body = await fetch(url + "metrics")
    s = samples(body.decode())
    p = "Đắk Lắk"
    assert value(s, "tslcd_communes_ipv6_ready", province=p, area="") == 1
    assert value(s, "tslcd_ipv6_readiness_ratio", province=p, area="") == pytest.approx(1 / 5)
    assert value(s, "tslcd_communes_ipv6_ready", province=p, area="A") == 0
    _, _, body = await fetch(url)
    assert '<div class="big" id="ipv6-rate">20.0%</div>' in body.decode()
    _, _, body = await fetch(url + "api/status.json")
    view = json.loads(body)
    assert (view["ipv6_ready"], view["ipv6_rate"]) == (1, pytest.approx(1 / 5))


def test_a_render_of_20000_nodes_never_holds_the_plain_text() -> None:
    """Issue 13, part 4: the nodes part of 20,000 nodes is 14 MB of text; its render held all of it in a buffer
    per family, then copies, 45 MB above the monitor's steady memory at every sweep (the peak RSS target).
    Compressed a chunk at a time, family by family, a render holds a small fraction of it."""
    import tracemalloc

    from exporters.metrics import Renderer, render_snapshot
    from inventory.model import Node
    from monitor.core.snapshot import NodeStatus, Snapshot
    from monitor.core.snmp import SnmpStatus

    statuses = []
    for i in range(20_000):
        node = Node(f"{10000 + i:05d}", f"Xã Số {i}", "commune", "Đắk Lắk", area=f"Khu vực {i % 40}")
        snmp = SnmpStatus(up=True, reason="ok", detail="", polled_at=1.7e9, last_ok_at=1.7e9, sys_name=None,
                          sys_descr=None, sys_object_id=None, uptime_s=86400.0 + i, reboots=i % 3,
                          last_reboot_at=1.69e9 + i, uplink_name="ge-0/0/0", uplink_if_index=2, uplink_oper_up=True,
                          uplink_oper_status="up", uplink_counter_bits=64, rx_bytes_total=10**9 + i * 7919,
                          tx_bytes_total=4 * 10**8 + i, rx_errors_total=i % 7, tx_errors_total=0, bytes_today=i)
        statuses.append(NodeStatus(node, "up" if i % 17 else "down", since=1.7e9, changes=i % 5, last_change=1.7e9,
                                   rtt_min=0.001 + i % 11 / 1e4, rtt_avg=0.002, rtt_max=0.003, jitter=0.0004,
                                   loss=i % 3 / 3, ipv6_ok=None, snmp=snmp))
    snap = Snapshot(1.7e9, "Đắk Lắk", "Asia/Ho_Chi_Minh", 1.0, tuple(statuses), ())
    for part in ("nodes", "snmp"):
        plain = Renderer().render(snap, part)
        render_snapshot(snap, part)  # the label sets are kept from the first render on, as in the monitor
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            exposition = render_snapshot(snap, part)
            held = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
        assert gzip.decompress(exposition.gzipped) == plain
        assert len(plain) > 10_000_000
        assert held < len(plain) / 3, (part, held, len(plain))  # was 3.2 times the text (nodes), now a quarter
