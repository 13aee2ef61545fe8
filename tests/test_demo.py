"""`tslcd demo`: the simulated province goes down and comes back on the status page, and leaves nothing."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from monitor.lab.demo import demo_nodes, inventory_yaml
from tests.conftest import stop, wait_for_url

ROOT = Path(__file__).parent.parent


def test_shipped_demo_inventory_is_in_sync_with_the_generator() -> None:
    shipped = (ROOT / "inventory" / "dak_lak_demo.yaml").read_text(encoding="utf-8")
    body = shipped[shipped.index("province:"):]
    assert body == inventory_yaml(demo_nodes(netns=False))


def test_demo_nodes_are_the_official_communes_with_some_without_circuit() -> None:
    for netns in (False, True):
        nodes = demo_nodes(netns=netns)
        communes = [n for n in nodes if n.is_commune]
        assert len(communes) == 102
        assert sum(1 for n in communes if not n.address) == 3
        assert next(n for n in communes if n.code == "24133").name == "Phường Buôn Ma Thuột"
        addresses = [n.address for n in nodes if n.address]
        assert len(addresses) == len(set(addresses))
        for a in addresses:  # only loopback and the test ranges of docs/design.md
            assert a.startswith(("127.", "198.18.")), a


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"


async def _read_in_chromium(url: str) -> None:
    """The commune's page at 1280 and 390 px, JavaScript off: its strip, outage and charts, no sideways scroll."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            for width in (1280, 390):
                page = await browser.new_page(viewport={"width": width, "height": 844}, java_script_enabled=False)
                await page.goto(url, wait_until="load")
                ARTIFACTS.mkdir(exist_ok=True)
                await page.screenshot(path=str(ARTIFACTS / f"demo-commune-{width}.png"), full_page=True)
                assert await page.locator('#strip span[data-verdict="not_connected"]').count() >= 1
                assert await page.locator("#outages tbody tr").count() >= 1
                assert await page.locator("svg.chart").count() >= 2
                assert await page.evaluate("document.documentElement.scrollWidth") <= width
                await page.close()
        finally:
            await browser.close()


def _netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


@pytest.mark.netns
@pytest.mark.skipif(os.geteuid() != 0, reason="the demo's namespaces need root (CI runs as root)")
def test_demo_shows_outages_and_recoveries_then_cleans_up() -> None:
    before = _netns_names()
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "demo", "--listen", "127.0.0.1:0", "--interval", "2",
         "--flap-every", "7", "--duration", "120"],
        cwd=ROOT, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
)
    try:
        url = wait_for_url(proc, 60)
        assert any(n.startswith("tslcdemo") for n in _netns_names() - before)

        seen: set[str] = set()
        unreachable_page = ""
        came_back = False
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not came_back:
            with urllib.request.urlopen(url, timeout=5) as r:
                page = r.read().decode()
            states = set(re.findall(r'data-state="(\w+)"', page))
            rate = re.search(r'id="connection-rate">([\d.]+)%', page)
            assert rate is not None
            seen |= states
            if "unreachable" in states:
                unreachable_page = page
            # Outages seen (a commune down, and communes unreachable behind the failed
            # aggregation node), then every provisioned node up again: 99 of 102.
            came_back = {"down", "unreachable"} <= seen and not states and rate.group(1) == "97.1"
            time.sleep(0.5)  # polling a page with a deadline
        assert {"down", "unreachable"} <= seen, seen
        assert came_back
        # The page of the first commune whose link went down (issue 15): today not connected in its strip,
        # the outage listed, loss in this hour's bar; read in Chromium on a desktop and a phone, no script.
        flapped = next(n for n in demo_nodes(netns=True) if n.address.startswith("198.18.3."))
        with urllib.request.urlopen(f"{url}node/{flapped.code}", timeout=10) as r:
            commune = r.read().decode()
        assert "not_connected" in re.findall(r'data-verdict="(\w+)"', commune)[-2:]  # today (yesterday at 0:00)
        assert re.search(r'<table id="outages">.*?<tr data-start=', commune, re.S)
        loss_bars = re.findall(r'<rect [^>]*class="bar"><title>\d\dh: ([\d.]+) %</title>', commune)
        # The outage was within the last minute: this hour's bar, or the last one's when the hour just turned.
        assert loss_bars and max(float(x) for x in loss_bars[-2:]) > 0, loss_bars
        if Path(CHROMIUM).exists():
            asyncio.run(_read_in_chromium(f"{url}node/{flapped.code}"))
        assert 'sau nút <a href="node/66-AGG-NS">66-AGG-NS' in unreachable_page  # behind which node, linked
        # SNMP: every loopback commune's router answers, but one profile has the wrong
        # community (answers ping, not SNMP) and one router's uplink is down.
        import json

        view: dict = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not view.get("ping_only"):
            with urllib.request.urlopen(url + "api/status.json", timeout=5) as r:
                view = json.loads(r.read())
            time.sleep(0.5)  # polling with a deadline
        assert [n["snmp"]["reason"] for n in view["ping_only"]] == ["wrong_community"]
        snmp = {n["code"]: n["snmp"] for n in view["snmp_nodes"]}
        assert len(snmp) == 92 and sum(1 for s in snmp.values() if s["up"]) == 91
        assert sum(1 for s in snmp.values() if s["uplink_oper_up"] is False) == 1
        assert any(s["rx_bytes_total"] for s in snmp.values())
        # IPv6 readiness (issue 17, part 5): the dual-stack communes (::1, and those in the namespaces) answer.
        assert view["ipv6_ready"] >= 1 and view["ipv6_rate"] > 0
        with urllib.request.urlopen(url + "metrics", timeout=5) as r:
            metrics = r.read().decode()
        ready = re.search(r'^tslcd_communes_ipv6_ready\{area="",province="Đắk Lắk"\} ([\d.]+)$', metrics, re.M)
        assert ready is not None and float(ready.group(1)) >= 1  # (a flapping host may have changed since)
    finally:
        status = stop(proc, signal.SIGINT)
    assert status == 0
    assert not any(n.startswith("tslcdemo") for n in _netns_names())
    # The demo's own blackhole guard (metric base + its pid) is gone too.
    from monitor.lab.netns import GUARD_METRIC_BASE

    routes = subprocess.run(["ip", "route", "show", "type", "blackhole"], capture_output=True, text=True,
                            check=True).stdout
    assert f"metric {GUARD_METRIC_BASE + proc.pid}" not in routes


@pytest.mark.skipif(os.geteuid() != 0, reason="ICMP needs root here (CI runs as root)")
def test_a_two_province_demo_shows_a_national_row_equal_to_the_rate_over_both() -> None:
    """Issue 15, part 4: `tslcd demo --two-provinces` watches Đắk Lắk and Lai Châu. The page and the JSON show the
    national figure first, then one row per province; the provinces' counts add up to the national ones, and
    the national rate is the rate over both provinces' communes (99 + 33 of 102 + 38)."""
    import json

    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "demo", "--listen", "127.0.0.1:0", "--interval", "2", "--no-netns",
         "--no-snmp", "--two-provinces", "--duration", "90"],
        cwd=ROOT, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        url = wait_for_url(proc, 60)
        view: dict = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (view.get("sweeps") and not view.get("not_up")):
            with urllib.request.urlopen(url + "api/status.json", timeout=5) as r:
                view = json.loads(r.read())
            time.sleep(0.5)  # polling with a deadline
        assert view.get("sweeps") and not view["not_up"], view.get("not_up")
        provinces = {p["province"]: p for p in view["provinces"]}
        assert set(provinces) == {"Đắk Lắk", "Lai Châu"}
        assert view["national"] and view["province"] == "Toàn quốc"
        assert view["communes"] == sum(p["communes"] for p in provinces.values()) == 140
        assert view["connected"] == sum(p["connected"] for p in provinces.values()) == 132
        assert view["connection_rate"] == 132 / 140
        assert provinces["Lai Châu"]["connection_rate"] == 33 / 38
        with urllib.request.urlopen(url, timeout=5) as r:
            page = r.read().decode()
        assert re.search(r'id="connection-rate">94\.3%', page)
        assert page.index('data-province=""') < page.index('data-province="Đắk Lắk"')  # the nation first
        with urllib.request.urlopen(url + "metrics", timeout=5) as r:
            metrics = r.read().decode()
        assert 'tslcd_connection_rate_ratio{area="",province="Toàn quốc"} 0.9428571428571428' in metrics
    finally:
        status = stop(proc, signal.SIGINT)
    assert status == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="ICMP needs root here (CI runs as root)")
async def test_the_demos_ipv6_readiness_is_on_metrics_the_page_the_email_and_the_audit(tmp_path: Path) -> None:
    """Issue 17, part 5: the demo's dual-stack commune (IPv6 address ::1) answers over IPv6 with the real ICMP
    engine (loopback only), and its IPv6 readiness, 1 of 99 communes with data, is on the four outputs."""
    from datetime import datetime

    from exporters.audit import build_report, tables
    from exporters.email import report_from_store
    from exporters.metrics import render_snapshot
    from exporters.status import status_view
    from inventory.model import Inventory
    from monitor.config import load_config
    from monitor.probes.icmp import IcmpEngine
    from monitor.runtime.recorder import Recorder
    from monitor.runtime.service import Monitor
    from monitor.store import open_store

    nodes = demo_nodes(netns=False)
    assert [n.code for n in nodes if n.address6] == [next(n.code for n in nodes if n.address6 == "::1")]
    (tmp_path / "inv.yaml").write_text(inventory_yaml(nodes), encoding="utf-8")
    (tmp_path / "config.yaml").write_text(
        "province: Đắk Lắk\ninventory: inv.yaml\nicmp:\n  interval_s: 5\n  count: 1\n  timeout_s: 1\n"
        "states:\n  down_after: 1\n  up_after: 1\nstore:\n  path: h.sqlite\n", encoding="utf-8")
    cfg = load_config(tmp_path / "config.yaml")
    rec = Recorder(open_store(cfg), cfg)
    mon = Monitor(cfg, Inventory.of(nodes), IcmpEngine(), recorder=rec)
    try:
        for _ in range(2):
            await mon.sweep_once()
        await rec.on_stop()
        text = render_snapshot(mon.snapshot, "nodes").text.decode()
        assert 'tslcd_communes_ipv6_ready{area="",province="Đắk Lắk"} 1.0' in text
        view = status_view(mon.snapshot)
        assert (view["ipv6_ready"], view["communes"]) == (1, 102)
        now = mon.snapshot.taken_at
        today = datetime.fromtimestamp(now, cfg.tz).date()
        store = rec.store
        report = report_from_store(store, cfg, today, now=now + 1)
        assert (report.ipv6.count, report.ipv6.total) == (1, 102)  # 99 observed + 3 without a circuit
        audit = build_report(store, cfg, today, today, now=now + 1)
        daily = next(t for t in tables(audit) if t.id == "daily")
        row = dict(zip([c.key for c in daily.columns], daily.rows[0], strict=True))
        assert row["ipv6_ready"] == 1 and row["ipv6_rate"] == pytest.approx(1 / 102)
    finally:
        mon.engine.close()
        rec.store.close()
