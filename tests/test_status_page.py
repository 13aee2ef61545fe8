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
