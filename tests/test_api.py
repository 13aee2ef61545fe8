"""The JSON API (issue 15, part 3): its figures equal the audit's on the same store, bad parameters are a 400
naming them, and every path is in a valid OpenAPI description served at /api/openapi.json."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.test_commune_page import monitored  # noqa: F401  (the fixture: three days and a bit, one outage)

ROOT = Path(__file__).parent.parent


async def _get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        return r.status, await r.json(content_type=None)


def _audit_csv(config: Path, *args: str) -> dict[str, list[dict[str, str]]]:
    """`tslcd audit --format csv` on the same store, as tables by title."""
    out = config.parent / "audit.csv"
    subprocess.run([sys.executable, "-m", "monitor.cli", "audit", "--config", str(config), *args, "--format", "csv",
                    "--out", str(out)], check=True, cwd=ROOT, capture_output=True, timeout=120)
    tables: dict[str, list[dict[str, str]]] = {}
    title, header = "", None
    for row in csv.reader(io.StringIO(out.read_text(encoding="utf-8"))):
        if len(row) == 1 and row[0].startswith("["):
            title, header = row[0].strip("[]"), None
        elif row and header is None and title:
            header = row
            tables[title] = []
        elif row and header is not None and len(row) == len(header):
            tables[title].append(dict(zip(header, row, strict=True)))
    return tables


def _pct(text: str) -> float:
    return float(text.rstrip("%")) / 100 if text.endswith("%") else float(text)


async def test_the_apis_figures_are_the_audits(monitored: Any, served: Any) -> None:  # noqa: F811
    url = await served(monitored)
    config = monitored.cfg.inventory_path.parent / "config.yaml"
    for area in ("", "B"):
        query = "from=2026-11-01&to=2026-11-03" + (f"&area={area}" if area else "")
        status, body = await _get(url + "api/rates?" + query)
        assert status == 200, body
        audit = _audit_csv(config, "--from", "2026-11-01", "--to", "2026-11-03", *(["--area", area] if area else []))
        summary = next(v for k, v in audit.items() if k.lower().startswith("summary"))
        row = summary[0]
        period = next(p for p in body["period"] if p["area"] == area)
        assert period["days"] == int(row["Days counted"])
        assert period["connected_rate"] == pytest.approx(_pct(row["Connected rate (measured)"]), abs=1e-4)
        assert period["provisioned_rate"] == pytest.approx(
            _pct(row["Provisioned rate (registered circuit, not measured)"]), abs=1e-4)
        daily = next(v for k, v in audit.items() if k.lower().startswith("daily"))
        assert [d["day"] for d in body["daily"]] == [d["Day"] for d in daily]
        assert [d["connected"] for d in body["daily"]] == [int(d["Connected"]) for d in daily]
    # 22015 (area B) lost day 2: of area B's communes, fewer connected that day than the days around it.
    _, body = await _get(url + "api/rates?from=2026-11-01&to=2026-11-03&area=B")
    connected = [d["connected"] for d in body["daily"]]
    assert connected[1] == connected[0] - 1 == connected[2] - 1


async def test_one_communes_days_and_outages(monitored: Any, served: Any) -> None:  # noqa: F811
    url = await served(monitored)
    status, body = await _get(url + "api/communes/22015?from=2026-10-31&to=2026-11-03")
    assert status == 200, body
    days = {d["day"]: d for d in body["days"]}
    assert days["2026-11-02"]["connected"] is False and days["2026-11-02"]["availability"] == pytest.approx(0.75)
    assert days["2026-11-01"]["connected"] is True and days["2026-11-03"]["connected"] is True
    assert "2026-10-31" not in days or days["2026-10-31"]["has_data"] is False  # before the monitor ran
    assert body["totals"]["days_connected"] == 2
    (outage,) = body["outages"]
    assert outage["start"].startswith("2026-11-02T01:00:00") and outage["duration_s"] == 6 * 3600
    status, outages = await _get(url + "api/outages?from=2026-11-01&to=2026-11-03")
    assert status == 200 and [o["code"] for o in outages["outages"]] == ["22015"]
    assert outages["outages"][0]["start"] == outage["start"]
    status, _ = await _get(url + "api/communes/99999")
    assert status == 404
    status, inv = await _get(url + "api/inventory")
    assert status == 200 and {n["code"] for n in inv["nodes"]} >= {"22015", "24133", "AGG"}
    assert all("address" not in n for n in inv["nodes"])  # no basic auth configured: no addresses


@pytest.mark.parametrize(("query", "parameter"), [
    ("from=yesterday", "from"), ("to=2026-13-01", "to"), ("from=2026-11-03&to=2026-11-01", "to"),
    ("from=2020-01-01&to=2026-11-03", "from"), ("area=Nowhere", "area"),
])
async def test_a_bad_parameter_is_a_400_naming_it(monitored: Any, served: Any, query: str,  # noqa: F811
                                                  parameter: str) -> None:
    url = await served(monitored)
    for path in ("api/rates", "api/outages"):
        status, body = await _get(f"{url}{path}?{query}")
        assert status == 400 and body["parameter"] == parameter and body["error"].startswith(parameter), body


async def test_the_openapi_description_is_valid_and_names_every_api_path(monitored: Any,  # noqa: F811
                                                                        served: Any) -> None:
    from openapi_spec_validator import validate

    url = await served(monitored)
    status, spec = await _get(url + "api/openapi.json")
    assert status == 200
    validate(spec)
    from exporters.web import make_app

    routes = {r.resource.canonical for r in make_app(monitored).router.routes()  # type: ignore[union-attr]
              if r.resource is not None and r.resource.canonical.startswith("/api/")}
    assert routes - {"/api/openapi.json"} == set(spec["paths"])  # every API path documented, nothing more
    for path, operations in spec["paths"].items():
        if "get" not in operations:
            continue  # a write (POST /api/maintenance/{id}/end): tests/test_maintenance.py
        concrete = path.replace("{code}", "22015")
        status, _ = await _get(url + concrete.lstrip("/"))
        assert status == 200, path
