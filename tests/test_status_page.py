"""The status page rendered in headless Chromium (Debian's), checked as a person would read it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ScriptedSweeper
from tests.test_exporter import make

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed "
                       "(scripts/test.sh installs it as root)"),
]


async def _with_outages(tmp_path: Path, served: Any) -> str:
    """The page's URL once AGG (and the communes behind it) and 22015 are down."""
    sweeper = ScriptedSweeper()
    mon = make(tmp_path, sweeper)
    url = await served(mon)
    await mon.sweep_once()
    sweeper.down = {"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.6"}
    await mon.sweep_once()
    await mon.sweep_once()
    return str(url)


async def test_page_shows_rates_and_communes_not_up(tmp_path: Path, served: Any, browser: Any) -> None:
    url = await _with_outages(tmp_path, served)

    page = await browser.new_page(viewport={"width": 390, "height": 844}, java_script_enabled=False)
    await page.goto(url, wait_until="load")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "status-page-phone.png"), full_page=True)
    rows = {await r.get_attribute("data-code"): (await r.get_attribute("data-state"), await r.inner_text())
            for r in await page.locator("#not-up tbody tr").all()}
    seen = {
        "rate": await page.inner_text("#connection-rate"),
        "provisioned": await page.inner_text("#provisioned-rate"),
        "rows": rows,
        "no_circuit": await page.inner_text("#no-circuit"),
        "areas": await page.inner_text("#areas"),
        "html": await page.content(),
    }
    hoa_phu = await page.locator('#not-up tr[data-code="24154"]').count()
    await page.close()
    assert seen["rate"] == "20.0%"
    assert seen["provisioned"] == "80.0%"
    rows = seen["rows"]
    assert rows["22015"][0] == "down"
    assert rows["24133"][0] == "unreachable" and "AGG" in rows["24133"][1] and "Tập trung" in rows["24133"][1]
    assert rows["AGG"][0] == "down"
    assert "24154" not in rows and hoa_phu == 0
    assert "Phường Bình Kiến" in seen["no_circuit"]
    assert "33.3%" in seen["areas"]
    # A name with HTML in it is shown as text, not markup.
    assert "Phường <b>Tuy Hòa</b>" in rows["22015"][1]
    assert "&lt;b&gt;Tuy Hòa&lt;/b&gt;" in seen["html"]


async def test_page_fits_a_phone_whatever_the_fonts(tmp_path: Path, served: Any, browser: Any) -> None:
    """With every letter 15% wider than here (fonts differ between machines), the page of a province with
    communes down still fits 390 px: no sideways scrolling of the page itself (wide tables scroll in their box)."""
    url = await _with_outages(tmp_path, served)
    page = await browser.new_page(viewport={"width": 390, "height": 844}, java_script_enabled=False)
    try:
        await page.goto(url, wait_until="load")
        wider = "<style>* { letter-spacing: 0.15em !important; }</style></head>"
        html = (await page.content()).replace("</head>", wider)
        assert "letter-spacing: 0.15em" in html
        await page.set_content(html, wait_until="load")
        width = await page.evaluate("document.documentElement.scrollWidth")
    finally:
        await page.close()
    assert width <= 390


async def test_search_paging_areas_and_caching_at_national_size(tmp_path: Path, served: Any) -> None:
    """Issue 15, part 2: 1,000 communes of which 950 down. The page holds one page of them (with a pager),
    search ignores accents and case, an area has its own page and rate, bad parameters are a 400 naming
    them, and a page already fetched for this sweep costs a 304."""
    import re

    import aiohttp

    from inventory.model import Inventory, Node
    from monitor.runtime.service import Monitor
    from tests.conftest import write_config

    nodes = [Node(f"{20000 + i}", "Xã Ea Kao" if i == 7 else f"Phường Số {i}", "commune", "Đắk Lắk",
                  area="Buôn Đôn" if i % 2 else "Krông Pắc", address=f"127.0.{i // 250}.{i % 250 + 1}")
             for i in range(1000)]
    inv = Inventory.of(nodes)
    sweeper = ScriptedSweeper()
    cfg = write_config(tmp_path, tmp_path / "inv.yaml", "states:\n  down_after: 1\n  up_after: 1\n")
    mon = Monitor(cfg, inv, sweeper)  # type: ignore[arg-type]
    url = await served(mon)
    sweeper.down = {n.address for n in nodes[50:]}
    await mon.sweep_once()

    async with aiohttp.ClientSession() as http:
        async def get(path: str, **headers: str) -> tuple[int, Any, str]:
            async with http.get(url + path, headers=headers) as r:
                return r.status, r.headers.copy(), await r.text()  # case-insensitive names

        status, headers, html = await get("")
        assert status == 200 and len(html.encode()) < 200_000
        assert len(re.findall(r'<tr data-code="\d+" data-state="down"', html)) == 100
        assert "Trang / page 1 / 10" in html and 'rel="next"' in html
        status, _, html2 = await get("?page=10")
        assert status == 200 and len(re.findall(r'data-state="down"', html2)) == 50 and 'rel="next"' not in html2
        # Accents and case aside: "ea kao" and "XA EA KAO" find "Xã Ea Kao"; a code prefix finds its codes.
        for q in ("ea kao", "XA EA KAO", "xã ea kao"):
            _, _, found = await get(f"?q={q}")
            rows = re.findall(r'<table id="found">.*?</table>', found, re.S)
            assert rows and "20007" in rows[0] and rows[0].count("<tr data-code") == 1, q
        _, _, found = await get("?q=2001")
        assert "Kết quả tìm" in found and "(10)" in found  # 20010-20019
        # An area's page: its own communes and rate, links back to the commune pages.
        status, _, area = await get("area/Bu%C3%B4n%20%C4%90%C3%B4n")
        assert status == 200 and "Khu vực Buôn Đôn" in area
        assert re.search(r'id="connection-rate">5\.0%', area)  # 25 of its 500 communes up
        assert 'href="../node/20051"' in area and 'href="../node/20052"' not in area  # its own, not the other's
        assert (await get("area/Nowhere"))[0] == 404
        # Bad parameters say which.
        status, _, text = await get("?page=zero")
        assert status == 400 and "page" in text
        # The same sweep's page again: 304 without a body; the next sweep: 200 again.
        etag = headers["ETag"]
        status, h304, body = await get("", **{"If-None-Match": etag})
        assert status == 304 and body == "" and h304["ETag"] == etag
        status, _, _ = await get("", **{"If-Modified-Since": headers["Last-Modified"]})
        assert status == 304
        await mon.sweep_once()
        status, headers2, _ = await get("", **{"If-None-Match": etag})
        assert status == 200 and headers2["ETag"] != etag


async def test_a_person_finds_a_commune_typed_without_accents(tmp_path: Path, served: Any, browser: Any) -> None:
    """In Chromium with JavaScript off: typing "ea kao" in the search box finds "Xã Ea Kao" (issue 15, part 2)."""
    from inventory.model import Inventory, Node
    from monitor.runtime.service import Monitor
    from tests.conftest import write_config

    nodes = [Node("24160", "Xã Ea Kao", "commune", "Đắk Lắk", area="A", address="127.0.0.2"),
             Node("24133", "Phường Buôn Ma Thuột", "commune", "Đắk Lắk", area="A", address="127.0.0.3")]
    mon = Monitor(write_config(tmp_path, tmp_path / "inv.yaml"), Inventory.of(nodes), ScriptedSweeper())
    url = await served(mon)
    await mon.sweep_once()
    page = await browser.new_page(viewport={"width": 390, "height": 844}, java_script_enabled=False)
    try:
        await page.goto(url, wait_until="load")
        await page.fill('input[name="q"]', "ea kao")
        await page.click('form.search button[type="submit"]')
        await page.wait_for_selector("#found")
        found = await page.inner_text("#found")
        await page.click('#found a:text("Xã Ea Kao")')
        await page.wait_for_selector("#identity")
        title = await page.inner_text("#name")
    finally:
        await page.close()
    assert "Xã Ea Kao" in found and "24160" in found and "Buôn Ma Thuột" not in found
    assert "Xã Ea Kao" in title and "24160" in title


async def _with_carriers(tmp_path: Path, served: Any) -> tuple[Any, str]:
    """The monitor and page URL of small_inventory with carriers (tests.test_exporter.carrier_inventory) once AGG
    (and the communes behind it) and 22015 are down."""
    from monitor.runtime.service import Monitor
    from tests.conftest import write_config
    from tests.test_exporter import carrier_inventory

    sweeper = ScriptedSweeper()
    cfg = write_config(tmp_path, tmp_path / "inv.yaml", "states:\n  down_after: 2\n  up_after: 1\n")
    mon = Monitor(cfg, carrier_inventory(), sweeper)
    url = await served(mon)
    await mon.sweep_once()
    sweeper.down = {"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.6"}
    await mon.sweep_once()
    await mon.sweep_once()
    return mon, str(url)


async def test_page_shows_each_communes_carrier_and_the_communes_cut_off_per_carrier(
        tmp_path: Path, served: Any) -> None:
    """Issue 17, part 4: with carriers in the inventory the page names each commune's carrier (not up, no circuit,
    search results) and has a table per carrier: communes with a circuit, cut off now / observed; an area's page
    counts its own communes; without carriers in the inventory, neither the column nor the table."""
    import re

    import aiohttp

    from exporters.carriers import NO_CARRIER_LABEL

    mon, url = await _with_carriers(tmp_path, served)
    async with aiohttp.ClientSession() as http:
        async def get(path: str) -> str:
            async with http.get(url + path) as r:
                assert r.status == 200, path
                return await r.text()

        html = await get("")
        table = re.search(r'<table id="carriers">.*?</table>', html, re.S)
        assert table, "no per-carrier table"
        rows = re.findall(r'<tr data-carrier="([^"]*)"><td>([^<]*)</td><td class="num">(\d+)</td>'
                          r'<td class="num cut-off">(\d+) / (\d+)</td>', table.group(0))
        assert rows == [("VNPT", "VNPT", "2", "2", "2"), ("Viettel", "Viettel", "1", "0", "1"),
                        ("", NO_CARRIER_LABEL, "1", "1", "1")]
        assert "tslcd audit" in html
        not_up = re.search(r'<table id="not-up">.*?</table>', html, re.S)
        assert not_up and "<th>Nhà mạng</th>" in not_up.group(0)
        carrier_of = dict(re.findall(r'<tr data-code="(\w+)" data-state="\w+">.*?<td class="carrier">([^<]*)</td>',
                                     not_up.group(0), re.S))
        assert carrier_of == {"AGG": "VNPT", "24133": "VNPT", "24121": "VNPT", "22015": ""}
        no_circuit = re.search(r'<table id="no-circuit">.*?</table>', html, re.S)
        assert no_circuit and '<td class="carrier">Viettel</td>' in no_circuit.group(0)
        found = await get("?q=24154")
        assert '<td class="carrier">Viettel</td>' in found
        # Area A: 24133, 24121 (VNPT, unreachable) and 24154 (Viettel, up); area B's 22015 not counted there.
        area = await get("area/A")
        rows = re.findall(r'<tr data-carrier="([^"]*)">.*?<td class="num cut-off">(\d+) / (\d+)</td>', area)
        assert rows == [("VNPT", "2", "2"), ("Viettel", "0", "1")]

    # The same network without carriers: no column, no table.
    from dataclasses import replace

    from exporters.status import render_status_page

    plain = replace(mon.snapshot, nodes=tuple(replace(ns, node=replace(ns.node, carrier=None, circuit_id=None))
                                              for ns in mon.snapshot.nodes))
    html = render_status_page(plain)
    assert 'id="carriers"' not in html and "Nhà mạng" not in html and 'class="carrier"' not in html


async def test_page_with_carriers_fits_a_phone(tmp_path: Path, served: Any, browser: Any) -> None:
    """In Chromium at 390 px: the per-carrier table reads as counted, and the carrier column leaves the page
    without sideways scrolling (each commune not up is a small card with its carrier)."""
    _, url = await _with_carriers(tmp_path, served)
    page = await browser.new_page(viewport={"width": 390, "height": 844}, java_script_enabled=False)
    try:
        await page.goto(url, wait_until="load")
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "status-page-carriers-phone.png"), full_page=True)
        carriers = await page.inner_text("#carriers")
        card = await page.inner_text('#not-up tr[data-code="24133"]')
        width = await page.evaluate("document.documentElement.scrollWidth")
    finally:
        await page.close()
    assert "VNPT" in carriers and "2 / 2" in carriers and "0 / 1" in carriers
    assert "VNPT" in card
    assert width <= 390
