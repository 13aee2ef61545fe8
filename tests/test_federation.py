"""The national view end to end: deploy/prometheus/national on real processes.

Two `tslcd run` pollers watch `province: [Đắk Lắk, Lai Châu]`, each one province (`shard: {provinces: [...]}`),
and write ONE shared PostgreSQL history (the session's throwaway server, tests/conftest.py). Each is scraped by
its own Prometheus (deploy/prometheus/prometheus.yml, as a province runs it), and a central Prometheus federates
both (deploy/prometheus/national/prometheus.yml and its rules). The communes are network-namespace test hosts
(monitor.lab.netns.Lab), some with their link down from the start, and one of each province has no circuit, so
the rates hold still: Đắk Lắk 2/4, Lai Châu 1/3, the nation 3/7 (the mean of the provinces' rates, 5/12, is not
the national rate).

The test reads, through the central Prometheus' HTTP API, the national and per-province figures at the moment
`tslcd audit` (run on the shared store) generated its report of today, and checks they are the audit's. Then a
poller stops: the nation counts the other province only, and the alert names the poller and province missing.

Time scales as tests/test_deploy_e2e.py's: tslcd sweeps every second, every Prometheus scrapes (and federates)
and evaluates every second, `for:` is 3 s. Packets go only to loopback and to the lab's namespaces
(198.18.0.0/15, behind the lab's blackhole guards).
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from monitor.config import NATIONAL
from monitor.lab.postgres import binaries
from tests.test_deploy_e2e import (
    DEPLOY,
    FAST_ICMP,
    PROMETHEUS,
    ROOT,
    Proc,
    Prometheus,
    check_dashboard_query,
    get_json,
    province_prometheus_config,
    run_tslcd,
    shortened_rules,
    start_prometheus,
    wait_for,
)

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="raw ICMP and network namespaces need root (CI runs as root)"),
    pytest.mark.skipif(PROMETHEUS is None, reason="prometheus missing: apt-get install prometheus"),
    pytest.mark.skipif(binaries() is None, reason="PostgreSQL missing: apt-get install postgresql"),
]

CENTRAL = DEPLOY / "prometheus" / "national"
TZ = ZoneInfo("Asia/Ho_Chi_Minh")  # the config's default timezone: the audit's days and times
DAK_LAK, LAI_CHAU = "Đắk Lắk", "Lai Châu"
PROVINCES = (DAK_LAK, LAI_CHAU)  # the order of the central example's static_configs (pollers dak-lak, lai-chau)
AREA_A, AREA_B = "Buôn Hồ (thử)", "Tuy An (thử)"
# code: (name, province, area, state): "up", "down" (its link down all along) or "" (no circuit)
COMMUNES = {
    "24301": ("Phường Buôn Hồ (thử)", DAK_LAK, AREA_A, "up"),
    "22120": ("Xã Tuy An Đông (thử)", DAK_LAK, AREA_B, "up"),
    "22111": ("Xã An Mỹ (thử)", DAK_LAK, AREA_B, "down"),
    "22114": ("Xã An Hiệp (thử)", DAK_LAK, AREA_B, ""),
    "03541": ("Xã Mường Tè (thử)", LAI_CHAU, "", "up"),
    "03542": ("Xã Bum Nưa (thử)", LAI_CHAU, "", "down"),
    "03545": ("Xã Kan Hồ (thử)", LAI_CHAU, "", ""),
}
LOOKBACK_S = 5  # the central Prometheus' --query.lookback-delta (see the fixture)
# (communes, provisioned, connected) of each province, and of the nation: the provinces' sums.
COUNTS = {DAK_LAK: (4, 3, 2), LAI_CHAU: (3, 2, 1)}
COUNTS[NATIONAL] = (7, 5, 3)


@dataclass
class Federation:
    lab: Any
    hosts: dict[str, Any]
    config: dict[str, Path]                 # province -> its poller's config
    pollers: dict[str, tuple[Proc, str]]    # province -> its `tslcd run` and status page URL
    provincial: dict[str, Prometheus]       # province -> the Prometheus scraping its poller
    central: Prometheus


def _inventory(hosts: dict[str, Any]) -> str:
    from inventory.model import Node
    from monitor.lab.demo import inventory_yaml

    nodes = [Node(code, name, "commune", province, area=area, address=hosts[code].ipv4 if state else "")
             for code, (name, province, area, state) in COMMUNES.items()]
    return inventory_yaml(nodes, header="# tests/test_federation.py\n")


def _poller_config(tmp: Path, province: str, inventory: Path, store_url: str) -> Path:
    """The same config for both pollers (one inventory, one store) but for their shard and nothing shared on
    disk. down_after 2: a first echo lost on a new link never makes an up commune down."""
    path = tmp / f"tslcd-{PROVINCES.index(province)}.yaml"
    path.write_text(
        f"province: [{', '.join(PROVINCES)}]\ninventory: {inventory}\nweb:\n  listen: 127.0.0.1:0\n{FAST_ICMP}"
        "states:\n  down_after: 2\n  up_after: 1\n"
        f"store:\n  url: {json.dumps(store_url)}\n"
        f"shard:\n  provinces: [{province}]\nlog_level: warning\n", encoding="utf-8")
    return path


def _central_config(tmp: Path, provincial: dict[str, str]) -> dict[str, Any]:
    """deploy/prometheus/national/prometheus.yml at test time scales, federating the provinces' Prometheus."""
    cfg: dict[str, Any] = yaml.safe_load((CENTRAL / "prometheus.yml").read_text(encoding="utf-8"))
    cfg["global"].update(scrape_interval="1s", evaluation_interval="1s")
    cfg["rule_files"] = shortened_rules(tmp, CENTRAL / "rules", "national-")
    (job,) = cfg["scrape_configs"]
    job.update(scrape_interval="1s", scrape_timeout="1s")
    assert len(job["static_configs"]) == len(PROVINCES)
    for static, province in zip(job["static_configs"], PROVINCES, strict=True):
        static["targets"] = [urllib.parse.urlsplit(provincial[province]).netloc]
    return cfg


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory, postgres: str) -> Iterator[Federation]:
    pytest.importorskip("psycopg", reason="psycopg missing: pip install -e '.[postgres]'")
    from monitor.lab import netns
    from monitor.lab.postgres import database

    reason = netns.available()
    if reason:
        pytest.skip(reason)
    netns.cleanup_stale("tsfed")
    tmp = tmp_path_factory.mktemp("federation")
    store_url = database(postgres, f"federation_{os.getpid()}")
    procs: list[Proc] = []
    lab = netns.Lab("tsfed")  # its blackhole guards first, before any namespace
    try:
        hosts = {code: lab.add_host(f"c{code}", lab.allocate()[0])
                 for code, (*_, state) in COMMUNES.items() if state}
        for code, (*_, state) in COMMUNES.items():
            if state == "down":
                lab.set_link(hosts[code], False)
        inventory = tmp / "inventory.yaml"
        inventory.write_text(_inventory(hosts), encoding="utf-8")
        config, pollers, provincial = {}, {}, {}
        for province in PROVINCES:  # one after the other: the first creates the store's schema
            config[province] = _poller_config(tmp, province, inventory, store_url)
            pollers[province] = run_tslcd(config[province], tmp / f"tslcd-{PROVINCES.index(province)}.log")
            procs.append(pollers[province][0])
        for province in PROVINCES:
            name = f"prometheus-{PROVINCES.index(province)}"
            cfg = province_prometheus_config(tmp, pollers[province][1], None, f"{name}-")  # no Alertmanager
            proc, url = start_prometheus(tmp, cfg, name)
            procs.append(proc)
            provincial[province] = url
        # Federated samples carry their timestamps, and Prometheus (before 2.48's track_timestamps_staleness)
        # never marks such series stale: a poller gone stays in the national figures for the lookback delta
        # (5 minutes), which the test shortens as it does `for:`.
        proc, url = start_prometheus(tmp, _central_config(tmp, provincial), "prometheus-central",
                                     f"--query.lookback-delta={LOOKBACK_S}s")
        procs.append(proc)
        yield Federation(lab, hosts, config, pollers, {p: Prometheus(u) for p, u in provincial.items()},
                         Prometheus(url))
    finally:
        for p in reversed(procs):
            p.stop()
        lab.close()


# --- helpers ------------------------------------------------------------------------------------------


def _steady(f: Federation) -> None:
    """Each province's Prometheus sees each of its communes with a circuit in its steady state (the ones
    down past `unknown`: the audit counts an unknown commune as without data, the live rate as not up)."""
    for province, prom in f.provincial.items():
        want = {code: state for code, (_, p, _, state) in COMMUNES.items() if p == province and state}

        def seen(prom: Prometheus = prom, want: dict[str, str] = want) -> bool:
            return {s["metric"]["code"]: s["metric"]["state"] for s in prom.query("tslcd_node_state == 1")} == want

        wait_for(f"{province}'s communes {want} in its Prometheus", seen)


def _at(prom: Prometheus, expr: str, at: float) -> dict[str, float]:
    """{province label ("" when none): value} of an instant query evaluated at ``at``."""
    data = get_json(prom.url + "api/v1/query", query=expr, time=f"{at:.3f}")
    assert data["status"] == "success" and data["data"]["resultType"] == "vector", data
    return {s["metric"].get("province", ""): float(s["value"][1]) for s in data["data"]["result"]}


def _central_counts(prom: Prometheus, at: float) -> dict[str, tuple[float, float, float]]:
    """(communes, provisioned, connected) per province and for the nation, recorded by the central Prometheus."""
    out = {}
    for level, key in (("province", None), ("national", NATIONAL)):
        columns = [_at(prom, f"{level}:{m}:sum", at)
                   for m in ("tslcd_communes", "tslcd_communes_provisioned", "tslcd_communes_connected")]
        for province in columns[0]:
            out[key or province] = (columns[0][province], columns[1].get(province, -1), columns[2].get(province, -1))
    return out


def _central_rates(prom: Prometheus, at: float) -> dict[str, float]:
    """The connection rate per province and for the nation, recorded by the central Prometheus."""
    rates = _at(prom, "province:tslcd_connection_rate:ratio", at)
    for v in _at(prom, "national:tslcd_connection_rate:ratio", at).values():
        rates[NATIONAL] = v
    return rates


def _audit(config: Path, day: date) -> tuple[float, dict[str, list[dict[str, str]]]]:
    """`tslcd audit` of ``day`` as CSV: when it was generated (epoch seconds), and its tables by title."""
    r = subprocess.run([sys.executable, "-m", "monitor.cli", "audit", "--config", str(config), "--from",
                        day.isoformat(), "--to", day.isoformat(), "--format", "csv", "--out", "-"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    tables: dict[str, list[dict[str, str]]] = {}
    rows = list(csv.reader(io.StringIO(r.stdout)))
    for i, row in enumerate(rows):
        if len(row) == 1 and row[0].startswith("[") and row[0].endswith("]"):
            header, body = rows[i + 1], []
            for line in rows[i + 2:]:
                if len(line) != len(header):
                    break
                body.append(dict(zip(header, line, strict=True)))
            tables[row[0][1:-1]] = body
    method = {row["Item"]: row["Value"] for row in tables["Method"]}
    generated = datetime.strptime(method["Generated at"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=TZ)
    return generated.timestamp(), tables


# --- the tests ----------------------------------------------------------------------------------------


def test_national_and_province_rates_equal_the_audit_of_the_shared_store(fed: Federation) -> None:
    _steady(fed)
    want = {p: connected / communes for p, (communes, _, connected) in COUNTS.items()}
    # Steady for 2 s already: the audit's moment, to the second, falls after the change to these rates.
    wait_for(f"the central Prometheus' rates {want}, for 2 s", lambda: all(
        _central_rates(fed.central, time.time() - ago) == want for ago in (2, 0)))
    assert want[NATIONAL] != sum(want[p] for p in PROVINCES) / len(PROVINCES), "the scenario tells sum from mean"

    today = datetime.now(TZ).date()
    at, tables = _audit(fed.config[DAK_LAK], today)
    counts = _central_counts(fed.central, at)
    rates = _central_rates(fed.central, at)
    assert counts == {p: tuple(float(n) for n in c) for p, c in COUNTS.items()}, counts
    # The audit's day: the whole nation (the scope of `province: [...]`), counted from the shared store.
    (day,) = tables["Daily rates"]
    assert day["Day"] == today.isoformat(), day
    assert day["Communes without data (not observed)"] == "0", day
    communes, _, connected = counts[NATIONAL]
    assert (int(day["Communes active"]), int(day["Connected"])) == (communes, connected), (day, counts)
    assert abs(float(day["Connected rate"]) - rates[NATIONAL]) < 5e-7, (day, rates)
    # Its summary: the nation first, then each province (area "": the whole province).
    summary = {row["Province"]: float(row["Connected rate (measured)"])
               for row in tables["Summary against the target"] if row["Area (blank: whole province)"] == ""}
    assert list(summary)[0] == NATIONAL
    assert set(summary) == set(rates) == {NATIONAL, *PROVINCES}
    for scope, rate in rates.items():
        assert abs(summary[scope] - rate) < 5e-7, (scope, summary, rates)


def test_the_national_dashboard_row_and_rules_answer_on_the_central_prometheus(fed: Federation) -> None:
    from tests.test_deploy_rules import load_build

    _steady(fed)
    wait_for("the national rate", lambda: fed.central.query("national:tslcd_connection_rate:ratio"))
    build = load_build()
    assert build.CENTRAL
    for uid in build.CENTRAL:
        _, checks = build.dashboards()[uid]
        for check in checks:
            where = f"{uid} / {check.panel} / {check.ref_id}: {check.expr}"
            assert "$" not in check.expr, where
            assert check_dashboard_query(fed.central.url, check, check.expr, where), f"{where}: no data"
    shipped = {r.get("record") or r.get("alert") for f in (CENTRAL / "rules").glob("*.yml")
               for g in yaml.safe_load(f.read_text(encoding="utf-8"))["groups"] for r in g["rules"]}

    def evaluated() -> list[dict[str, Any]] | None:
        rules = [r for g in get_json(fed.central.url + "api/v1/rules")["data"]["groups"] for r in g["rules"]]
        return rules if all(r["lastEvaluation"] > "2000" for r in rules) else None

    rules = wait_for("every national rule evaluated once", evaluated)
    assert {r["name"] for r in rules} == shipped
    assert not [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not fed.central.alerts("TslcdNationalCountsMissing", "pending")
    assert not fed.central.alerts("TslcdNationalCountsMissing")
    # Federated with their own labels (honor_labels) and the provincial Prometheus' `poller`.
    jobs = {(s["metric"]["job"], s["metric"]["poller"], s["metric"]["province"])
            for s in fed.central.query("tslcd_communes")}
    assert jobs == {("tslcd", "dak-lak", DAK_LAK), ("tslcd", "lai-chau", LAI_CHAU)}


def test_a_poller_gone_leaves_its_province_out_and_the_alert_names_it(fed: Federation) -> None:
    """Runs last: it stops Lai Châu's poller."""
    _steady(fed)
    fed.pollers[LAI_CHAU][0].stop()
    communes, _, connected = COUNTS[DAK_LAK]
    wait_for("the nation counting Đắk Lắk only", lambda: _central_rates(fed.central, time.time()) == {
        DAK_LAK: connected / communes, NATIONAL: connected / communes})
    assert fed.central.values("national:tslcd_provinces_reporting:count", "") == {"": 1.0}
    (alert,) = wait_for("TslcdNationalCountsMissing firing", lambda: fed.central.alerts("TslcdNationalCountsMissing"))
    assert alert["labels"] == {"alertname": "TslcdNationalCountsMissing", "severity": "warning", "province": LAI_CHAU}
    assert float(alert["value"]) == COUNTS[LAI_CHAU][0]  # every commune of Lai Châu left out
    assert alert["annotations"]["summary_en"] == f"National view lacks {COUNTS[LAI_CHAU][0]} communes of {LAI_CHAU}"
    assert LAI_CHAU in alert["annotations"]["summary"]
