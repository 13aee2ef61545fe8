"""A commune's page (/node/CODE, issue 15 part 1): its identity, state, 30-day strip, charts and outages,
from the store's rows of that unit alone, on a desktop and on a 390 px phone with JavaScript off."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from inventory.model import Inventory
from monitor.core.history import day_span
from tests.conftest import ScriptedSweeper, small_inventory

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
D1 = date(2026, 11, 1)
T0 = day_span(D1, HCM)[0]
STEP = 600.0  # a sweep every 10 minutes: three days in 432 sweeps
DOWN_FROM, DOWN_TO = T0 + 86_400 + 3_600, T0 + 86_400 + 7 * 3_600  # 22015 down on day 2, 01:00-07:00
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"


@pytest.fixture
async def monitored(tmp_path: Path) -> AsyncIterator[Any]:
    """Three days and a bit of a small province with a real recorder and store, on a scripted clock."""
    from monitor.config import load_config
    from monitor.lab.demo import inventory_yaml
    from monitor.runtime.recorder import Recorder
    from monitor.runtime.service import Monitor
    from monitor.store import SqlStore

    inv = Inventory.of([replace(n, carrier="VNPT", circuit_id="DLK-22015") if n.code == "22015" else n
                        for n in small_inventory().nodes])
    (tmp_path / "inv.yaml").write_text(inventory_yaml(inv.nodes), encoding="utf-8")
    (tmp_path / "config.yaml").write_text(
        "province: Đắk Lắk\ninventory: inv.yaml\nweb:\n  listen: 127.0.0.1:0\nicmp:\n  interval_s: 600\n"
        "states:\n  down_after: 1\n  up_after: 1\nstore:\n  path: h.sqlite\n", encoding="utf-8")
    cfg = load_config(tmp_path / "config.yaml")
    clock = [T0]
    sweeper = ScriptedSweeper()
    rec = Recorder(SqlStore(f"sqlite:///{tmp_path}/h.sqlite"), cfg, clock=lambda: clock[0])
    mon = Monitor(cfg, inv, sweeper, clock=lambda: clock[0], recorder=rec)  # type: ignore[arg-type]
    await rec.on_start(inv)
    for k in range(int(3.5 * 86_400 / STEP)):
        clock[0] = T0 + STEP * (k + 1)
        sweeper.down = {"127.0.0.6"} if DOWN_FROM <= clock[0] < DOWN_TO else set()
        await mon.sweep_once()
    try:
        yield mon
    finally:
        await rec.on_stop()


def test_a_units_own_history_equals_its_part_of_the_provinces(monitored: Any) -> None:
    """unit_history reads one unit's rows and outage pieces (key lookups; its own events for days not sealed)
    and gives exactly what the whole province's history says of that unit, sealed days and today alike."""
    store = monitored.recorder.store
    first, last = D1 - timedelta(days=2), D1 + timedelta(days=3)
    whole = list(store.history(first, last, HCM))
    mine = store.unit_history("22015", first, last, HCM)
    assert [d.day for d in mine] == [d.day for d in whole]
    assert any(d.seal is not None for d in mine) and mine[-1].seal is None
    for w, m in zip(whole, mine, strict=True):
        ids = set(m.rows) | {u for u, _ in m.outages}
        assert ids <= {u for u in w.rows} | {u for u, _ in w.outages}
        assert m.rows == {u: r for u, r in w.rows.items() if u in ids}
        assert m.outages == tuple((u, p) for u, p in w.outages if u in ids)
        assert m.observed_s == w.observed_s
    assert sum(len(d.outages) for d in mine) == 1  # 22015's six hours on day 2
    assert all(len(d.rows) <= 1 for d in mine) and sum(1 for d in mine if d.rows) == 4  # days 1-3 and today


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        return r.status, await r.text()


async def test_the_page_shows_the_days_the_outage_and_the_charts(monitored: Any, served: Any) -> None:
    url = await served(monitored)
    status, html = await _get(url + "node/22015")
    assert status == 200
    verdicts = dict(re.findall(r'data-day="([\d-]+)" data-verdict="(\w+)"', html))
    assert len(verdicts) == 30
    assert verdicts["2026-11-01"] == "connected"
    assert verdicts["2026-11-02"] == "not_connected"  # down 6 h: availability 75% < 90%
    assert verdicts["2026-11-03"] == "connected"
    assert verdicts["2026-10-31"] == "no_data"  # before the monitor ran: unobserved, never "not connected"
    assert list(verdicts.values()).count("not_connected") == 1
    assert "2026-11-02 01:00:00" in html and "6 giờ 0 phút" in html  # the outage, local time
    # and its cause as recorded with it (no SNMP here: no evidence)
    assert '<span class="why">chưa rõ nguyên nhân / cause unknown</span>' in html
    assert '<dd id="carrier">VNPT · mã kênh / circuit DLK-22015</dd>' in html  # inventory: carrier, circuit_id
    assert html.count('<svg class="chart"') == 4
    assert "Phường &lt;b&gt;Tuy Hòa&lt;/b&gt;" in html  # a name with markup is text
    assert "127.0.0.6" not in html and "shown to signed-in users" in html  # no address without auth
    # The status page links each commune to its page; an unknown code is a 404 that names it.
    _, page = await _get(url)
    assert 'href="node/22045"' in page  # the commune without a circuit, listed as such
    status, html45 = await _get(url + "node/22045")
    assert status == 200 and "no circuit yet" in html45 and 'data-verdict="no_circuit"' in html45
    status, text = await _get(url + "node/99999")
    assert status == 404 and "99999" in text
    # The aggregation node's page names the communes' parent link back: 24133's parent is AGG.
    status, html = await _get(url + "node/24133")
    assert status == 200 and 'href="AGG"' in html


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed "
                    "(scripts/test.sh installs it as root)")
@pytest.mark.parametrize(("width", "height"), [(1280, 800), (390, 844)])
async def test_the_page_reads_well_in_a_browser_without_javascript(monitored: Any, served: Any, browser: Any,
                                                                   width: int, height: int) -> None:
    url = await served(monitored)
    page = await browser.new_page(viewport={"width": width, "height": height}, java_script_enabled=False)
    try:
        await page.goto(url + "node/22015", wait_until="load")
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / f"commune-page-{width}.png"), full_page=True)
        state = await page.inner_text("#state")
        bad_day = await page.locator('#strip span[data-verdict="not_connected"]').count()
        strip_box = await page.locator("#strip").bounding_box()
        outage = await page.inner_text("#outages")
        charts = await page.locator("svg.chart").count()
        chart_box = await page.locator("svg.chart").first.bounding_box()
        scroll = await page.evaluate("document.documentElement.scrollWidth")
    finally:
        await page.close()
    assert "hoạt động" in state
    assert bad_day == 1
    assert strip_box is not None and strip_box["height"] >= 20 and strip_box["width"] >= 300
    assert "2026-11-02 01:00:00" in outage
    assert charts == 4 and chart_box is not None and chart_box["width"] >= 300
    assert scroll <= width  # no sideways scrolling of the page, on the phone too


def test_a_down_communes_page_and_the_status_page_say_why_it_is_cut_off() -> None:
    """The cause of the outage as far as ICMP and SNMP tell (monitor.core.causes), in both languages."""
    from exporters.commune import commune_view
    from exporters.status import render_commune_page, render_status_page
    from monitor.core.snapshot import NodeStatus, Snapshot

    nodes = small_inventory().nodes
    statuses = tuple(NodeStatus(n, "down", since=T0, outage_cause="filtered") if n.code == "22015" else
                     NodeStatus(n, "up", since=T0) for n in nodes if n.address)
    snap = Snapshot(T0 + 600, "Đắk Lắk", "Asia/Ho_Chi_Minh", 1.0, statuses, sweeps=1)
    view = commune_view(snap, "22015", None, None, min_availability=0.9, show_address=False)
    assert view is not None
    html = render_commune_page(view)
    assert 'id="outage-cause" data-cause="filtered"' in html
    assert "bị chặn ping (SNMP vẫn trả lời)" in html and "ping filtered (SNMP answers)" in html
    up = commune_view(snap, "24133", None, None, min_availability=0.9, show_address=False)
    assert up is not None and 'id="outage-cause"' not in render_commune_page(up)
    page = render_status_page(snap)
    assert 'data-cause="filtered"' in page and "ping filtered (SNMP answers)" in page
