"""The operators' kit in deploy/ checked offline: promtool, amtool, and the dashboards' JSON model (issue 7).

promtool (Debian's `prometheus`, 2.42) checks the example config and the rule files and
runs the unit tests under deploy/prometheus/tests/; these tests also make sure every
alert and recording rule is covered there, that the upstream-failure grouping stays
pinned, and that rules and dashboards only name metrics tslcd exports (or docs/design.md's
SNMP names, whose poller is being built). amtool (`prometheus-alertmanager`) checks the
Alertmanager example and its routes. The national view's central Prometheus (deploy/prometheus/national)
is checked the same way, and its rules against the definitions (counts summed, the pollers' own national
row left out). End to end against a running Prometheus: tests/test_deploy_e2e.py, and for the national
view tests/test_federation.py.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from exporters import metrics

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
PROM = DEPLOY / "prometheus"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
UNIT_TESTS = sorted((PROM / "tests").glob("*_test.yml"))
NATIONAL = PROM / "national"  # the central Prometheus of the national view, federating the provinces' ones
NATIONAL_RULE_FILES = sorted((NATIONAL / "rules").glob("*.yml"))
NATIONAL_UNIT_TESTS = sorted((NATIONAL / "tests").glob("*_test.yml"))
# Each example Prometheus: its folder (with prometheus.yml), its rule files, their promtool unit tests.
KITS = {"province": (PROM, RULE_FILES, UNIT_TESTS), "national": (NATIONAL, NATIONAL_RULE_FILES, NATIONAL_UNIT_TESTS)}
ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"
GRAFANA = DEPLOY / "grafana"

# docs/design.md's SNMP metrics, which tslcd's SNMP poller exports (names in exporters/metrics.py).
SNMP_METRICS = {
    "tslcd_snmp_up", "tslcd_snmp_sys_uptime_seconds", "tslcd_node_reboots_total", "tslcd_uplink_oper_up",
    "tslcd_uplink_receive_bytes_total", "tslcd_uplink_transmit_bytes_total", "tslcd_uplink_errors_total",
}
# Alerts about tslcd itself name the instance, not a commune.
SELF_ALERTS = {"TslcdMonitorDown", "TslcdSweepsStale", "TslcdInventoryReloadFailed", "TslcdHistoryWriteFailing"}
JOB_ALERTS = {"TslcdNoActivePoller"}  # about a job's pollers together (active/standby), not one of them
ANNOTATIONS = ("summary", "description", "summary_en", "description_en")

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool missing: apt-get install prometheus")
needs_amtool = pytest.mark.skipif(shutil.which("amtool") is None,
                                  reason="amtool missing: apt-get install prometheus-alertmanager")


def run(*argv: str, cwd: Path = PROM) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=300)


def rules(files: list[Path] = RULE_FILES) -> list[dict[str, Any]]:
    return [r for f in files for g in yaml.safe_load(f.read_text(encoding="utf-8"))["groups"]
            for r in g["rules"]]


def alerts(files: list[Path] = RULE_FILES) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for r in rules(files) if "alert" in r}


def records(files: list[Path] = RULE_FILES) -> set[str]:
    return {r["record"] for r in rules(files) if "record" in r}


def unit_tests(files: list[Path] = UNIT_TESTS) -> list[tuple[Path, dict[str, Any]]]:
    return [(f, yaml.safe_load(f.read_text(encoding="utf-8"))) for f in files]


def exported_metrics() -> set[str]:
    """Every metric name spelled in exporters/metrics.py (docs/design.md's single place for them)."""
    return {v for k, v in vars(metrics).items() if k.isupper() and isinstance(v, str) and v.startswith("tslcd_")}


def test_design_snmp_names_are_the_ones_tslcd_exports() -> None:
    assert SNMP_METRICS <= exported_metrics(), sorted(SNMP_METRICS - exported_metrics())
    assert "tslcd_snmp_ping_only" in exported_metrics(), "the 'answers ping but not SNMP' metric"


RECORDED = re.compile(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b")  # level:metric:operations


def metric_names(expr: str) -> set[str]:
    """tslcd_* metric names in a PromQL expression or template, recording-rule names left out."""
    return set(re.findall(r"\btslcd_[a-z0-9_]+\b", RECORDED.sub(" ", expr)))


def load_build() -> ModuleType:
    """deploy/grafana/build.py as a module (deploy/ is not a package)."""
    pytest.importorskip("grafana_foundation_sdk", reason="pip install grafana-foundation-sdk==0.0.21")
    name = "tslcd_grafana_build"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, GRAFANA / "build.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # its dataclasses look their module up by name
        with warnings.catch_warnings():  # the SDK's nudge towards schema v2 (see build.py)
            warnings.filterwarnings("ignore", "Prefer using dashboardv2", DeprecationWarning)
            spec.loader.exec_module(module)
    return sys.modules[name]


# --- promtool ------------------------------------------------------------------------------------------


@needs_promtool
@pytest.mark.parametrize("kit", sorted(KITS))
def test_example_prometheus_config_and_its_rule_files_pass_promtool(kit: str) -> None:
    folder, rule_files, _ = KITS[kit]
    assert rule_files
    r = run("promtool", "check", "config", "prometheus.yml", cwd=folder)
    assert r.returncode == 0, r.stdout + r.stderr
    for f in rule_files:
        assert f"Checking rules/{f.name}" in r.stdout + r.stderr, "the example config must load every rule file"


@needs_promtool
@pytest.mark.parametrize("kit", sorted(KITS))
def test_rule_files_pass_promtool_check_rules(kit: str) -> None:
    folder, rule_files, _ = KITS[kit]
    r = run("promtool", "check", "rules", *(str(f.relative_to(folder)) for f in rule_files), cwd=folder)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("SUCCESS") == len(rule_files)


@needs_promtool
@pytest.mark.parametrize("unit_test", UNIT_TESTS + NATIONAL_UNIT_TESTS, ids=lambda p: str(p.relative_to(PROM)))
def test_promtool_unit_tests_pass(unit_test: Path) -> None:
    folder = unit_test.parent.parent
    r = run("promtool", "test", "rules", str(unit_test.relative_to(folder)), cwd=folder)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout + r.stderr


@pytest.mark.parametrize("kit", sorted(KITS))
def test_every_alert_fires_in_a_unit_test_and_every_recording_rule_is_checked(kit: str) -> None:
    _, rule_files, tests = KITS[kit]
    fired: set[str] = set()
    quiet: set[str] = set()
    checked_exprs: list[str] = []
    loaded: set[str] = set()
    for path, doc in unit_tests(tests):
        loaded |= {(path.parent / f).resolve().name for f in doc["rule_files"]}
        for group in doc["tests"]:
            for case in group.get("alert_rule_test", []):
                (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
            checked_exprs += [c["expr"] for c in group.get("promql_expr_test", []) if c.get("exp_samples")]
    assert loaded == {f.name for f in rule_files}
    assert set(alerts(rule_files)) <= fired, f"alerts never seen firing: {sorted(set(alerts(rule_files)) - fired)}"
    # A `for:` alert is also checked not to fire too early.
    pending_checked = {a for a, r in alerts(rule_files).items() if "for" in r}
    assert pending_checked <= quiet, f"alerts never checked quiet: {sorted(pending_checked - quiet)}"
    unchecked = {r for r in records(rule_files) if not any(r in e for e in checked_exprs)}
    assert not unchecked, f"recording rules without exp_samples: {sorted(unchecked)}"


def test_upstream_failure_test_expects_one_alert_for_the_node_and_none_for_its_communes() -> None:
    """Pins the grouping test: while the aggregation node is down, its communes are
    unreachable, TslcdCommuneDown is empty and TslcdUpstreamNodeDown has one alert."""
    doc = yaml.safe_load((PROM / "tests" / "connection_rate_test.yml").read_text(encoding="utf-8"))
    group = next(g for g in doc["tests"] if g["name"] == "rate and upstream grouping")
    cases = {(c["alertname"], c["eval_time"]): c["exp_alerts"] for c in group["alert_rule_test"]}
    node_alerts = cases[("TslcdUpstreamNodeDown", "30m")]
    assert len(node_alerts) == 1
    assert node_alerts[0]["exp_labels"]["kind"] == "aggregation"
    assert "3 xã/phường" in node_alerts[0]["exp_annotations"]["summary"]
    assert "3 communes" in node_alerts[0]["exp_annotations"]["summary_en"]
    assert cases[("TslcdCommuneDown", "30m")] == []
    unreachable = [s["series"] for s in group["input_series"]
                   if 'state="unreachable"' in s["series"] and s["values"].endswith("1x24")]
    assert len(unreachable) == 3, "three communes behind the failed node are unreachable at 30m"
    causes = [s["series"] for s in group["input_series"] if s["series"].startswith("tslcd_node_unreachable_cause{")]
    assert len(causes) == 3 and all('cause="66-AGG-DL"' in c for c in causes)


def test_upstream_alert_counts_exactly_the_communes_behind_each_failed_node() -> None:
    """Pins upstream_test.yml: one alert per failed upstream node, valued at the communes whose
    tslcd_node_unreachable_cause names it (not its area's unreachable total), 0 when none."""
    expr = alerts()["TslcdUpstreamNodeDown"]["expr"]
    assert "count by (cause)" in expr and "tslcd_node_unreachable_cause" in expr
    assert re.search(r'label_replace\(.*"code", "\$1", "cause"', expr, re.S), "count moved from cause to code"
    assert 'tslcd_node_info{kind="commune"}' in expr, "only communes are counted"
    for key in ("summary", "summary_en", "description", "description_en"):
        assert "$value" in alerts()["TslcdUpstreamNodeDown"]["annotations"][key], key
        assert "province_area:" not in alerts()["TslcdUpstreamNodeDown"]["annotations"][key], key
    doc = yaml.safe_load((PROM / "tests" / "upstream_test.yml").read_text(encoding="utf-8"))
    (group,) = doc["tests"]
    cases = {(c["alertname"], c["eval_time"]): c["exp_alerts"] for c in group["alert_rule_test"]}
    fired = {a["exp_labels"]["code"]: a["exp_annotations"]["summary_en"]
             for a in cases[("TslcdUpstreamNodeDown", "8m")]}
    assert set(fired) == {"66-AGG-A", "66-AGG-B", "66-AGG-C"}, "one alert per failed node, none for 66-AGG-A2"
    counts = {code: int(re.search(r"(\d+) communes behind", s).group(1)) for code, s in fired.items()}  # type: ignore[union-attr]
    assert counts == {"66-AGG-A": 4, "66-AGG-B": 2, "66-AGG-C": 0}
    assert [a["exp_labels"]["code"] for a in cases[("TslcdCommuneDown", "8m")]] == ["24180"]
    # The area totals differ from every count above: the count is by cause, not by area.
    (areas,) = [c for c in group["promql_expr_test"] if "communes_unreachable" in c["expr"]]
    assert {s["value"] for s in areas["exp_samples"]} == {6, 5, 1}
    behind = {}
    for s in group["input_series"]:
        m = re.match(r'tslcd_node_unreachable_cause\{.*code="([^"]+)",cause="([^"]+)"', s["series"])
        if m:
            behind.setdefault(m.group(2), []).append(m.group(1))
    assert sorted(behind["66-AGG-A"]) == ["22030", "24121", "24133", "24154", "66-AGG-A2"], \
        "an aggregation node behind the failed one is cut off too, and not counted as a commune"


def test_sweeps_stale_is_relative_to_each_probes_own_interval() -> None:
    expr = alerts()["TslcdSweepsStale"]["expr"]
    assert re.search(r"time\(\) - tslcd_sweep_last_timestamp_seconds\s*> 3 \* \(\s*tslcd_sweep_interval_seconds", expr)
    assert "300" not in expr, "no fixed threshold"
    doc = yaml.safe_load((PROM / "tests" / "self_test.yml").read_text(encoding="utf-8"))
    group = next(g for g in doc["tests"] if g["name"] == "monitor down, sweeps stale, reload failed")
    intervals = {s["series"] for s in group["input_series"] if s["series"].startswith("tslcd_sweep_interval_seconds")}
    assert any('probe="snmp"' in s for s in intervals) and any('probe="icmp"' in s for s in intervals)
    stale = {c["eval_time"]: {(a["exp_labels"]["instance"], a["exp_labels"].get("probe")) for a in c["exp_alerts"]}
             for c in group["alert_rule_test"] if c["alertname"] == "TslcdSweepsStale"}
    # tslcd-c: icmp (30 s) 2 minutes old is stale; snmp (300 s) 4 minutes old never is.
    assert ("tslcd-c:9750", "icmp") in stale["11m"] and ("tslcd-c:9750", "icmp") not in stale["9m"]
    assert not any(probe == "snmp" for found in stale.values() for _, probe in found)


# --- what the alerts say ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(alerts()))
def test_alert_speaks_vietnamese_and_english_naming_the_commune_and_area(name: str) -> None:
    rule = alerts()[name]
    ann = rule["annotations"]
    assert set(ANNOTATIONS) <= set(ann), f"{name}: needs {ANNOTATIONS}"
    assert re.search(r"[À-ỹ]", ann["summary"] + ann["description"]), f"{name}: Vietnamese text expected"
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    if name in JOB_ALERTS:
        for key in ANNOTATIONS:
            assert "$labels.job" in ann[key], f"{name}.{key} names the tslcd job"
        return
    if name in SELF_ALERTS:
        for key in ANNOTATIONS:
            assert "$labels.instance" in ann[key], f"{name}.{key} names the tslcd instance"
        return
    for key in ANNOTATIONS:
        assert "$labels.area" in ann[key], f"{name}.{key} must name the area"
    if name != "TslcdConnectionRateBelowTarget":
        for key in ANNOTATIONS:
            assert "$labels.name" in ann[key] and "$labels.code" in ann[key], f"{name}.{key} must name the node"
        assert re.search(r"group_left \([^)]*\bname\b[^)]*\barea\b", rule["expr"]), \
            f"{name}: names and areas come from tslcd_node_info"
    else:
        assert ".Labels.name" in ann["description"] and ".Labels.name" in ann["description_en"]


def test_commune_down_alert_ignores_unreachable_communes() -> None:
    expr = alerts()["TslcdCommuneDown"]["expr"]
    assert 'state="down"' in expr and "unreachable" not in expr
    node = alerts()["TslcdUpstreamNodeDown"]["expr"]
    assert 'state="down"' in node and 'kind!="commune"' in node


# --- metric names ------------------------------------------------------------------------------------------


def test_rules_only_use_metrics_tslcd_exports_or_design_snmp_names() -> None:
    known = exported_metrics() | SNMP_METRICS
    every = rules(RULE_FILES + NATIONAL_RULE_FILES)
    used = set().union(*(metric_names(r["expr"]) for r in every))
    for r in every:
        for text in r.get("annotations", {}).values():
            used |= metric_names(text)
    assert used - known == set(), f"unknown metric names in rules: {sorted(used - known)}"
    assert exported_metrics() - SNMP_METRICS, "exporters/metrics.py lists no metric?"


# --- the national view ----------------------------------------------------------------------------------------


def test_national_rules_sum_the_pollers_counts_and_leave_out_their_own_national_row() -> None:
    """docs/design.md's rate over all the communes: counts summed over pollers (a province split between two
    adds up), the national row a multi-province poller exports (province="Toàn quốc") never counted again,
    and no mean of rates anywhere."""
    from monitor.config import NATIONAL as TOAN_QUOC

    counted = set()
    for r in rules(NATIONAL_RULE_FILES):
        expr = r["expr"]
        assert not re.search(r"\bavg", expr), r
        # A raw series always with its matchers (a bare tslcd_communes would take the national row too).
        assert not re.findall(r"\btslcd_\w+\b(?!\{)", RECORDED.sub(" ", expr)), r
        for m in re.finditer(r"\b(tslcd_communes\w*)\{([^}]*)\}", expr):
            counted.add(m.group(1))
            assert 'area=""' in m.group(2) and f'province!="{TOAN_QUOC}"' in m.group(2), r
    assert counted == {"tslcd_communes", "tslcd_communes_provisioned", "tslcd_communes_connected"}
    by_name = {r["record"]: r["expr"] for r in rules(NATIONAL_RULE_FILES) if "record" in r}
    for level in ("province", "national"):
        rate = by_name[f"{level}:tslcd_connection_rate:ratio"]
        assert rate.startswith(f"{level}:tslcd_communes_connected:sum / ({level}:tslcd_communes:sum > 0)"), rate
    assert by_name["province:tslcd_communes:sum"].startswith("sum by (province) (")


def test_national_alert_names_the_province_and_the_communes_left_out_in_vietnamese_and_english() -> None:
    for name, rule in alerts(NATIONAL_RULE_FILES).items():
        ann = rule["annotations"]
        assert set(ANNOTATIONS) <= set(ann), name
        assert re.search(r"[À-ỹ]", ann["summary"] + ann["description"]), name
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        for key in ANNOTATIONS:
            assert "$labels.province" in ann[key] and "$value" in ann[key], f"{name}.{key}"
    # Per province, not per poller: a province moved to another poller (docs/country.md) is no alarm.
    expr = alerts(NATIONAL_RULE_FILES)["TslcdNationalCountsMissing"]["expr"]
    assert "on (province)" in expr and "instance" not in expr and "poller" not in expr


def test_central_config_federates_exactly_what_the_national_rules_and_board_read() -> None:
    from monitor.config import NATIONAL as TOAN_QUOC

    build = load_build()
    cfg = yaml.safe_load((NATIONAL / "prometheus.yml").read_text(encoding="utf-8"))
    (job,) = cfg["scrape_configs"]
    assert job["metrics_path"] == "/federate" and job["honor_labels"] is True
    selectors = job["params"]["match[]"]
    federated: set[str] = set()
    for s in selectors:
        assert 'job="tslcd"' in s, s  # the provinces' job (deploy/prometheus/prometheus.yml), not their rules
        m = re.search(r'__name__(=~?)"([^"]+)"', s)
        assert m, s
        names = set(m.group(2).split("|"))
        federated |= names
        if any(n.startswith("tslcd_communes") for n in names):
            assert 'area=""' in s and f'province!="{TOAN_QUOC}"' in s, s
    read = set().union(*(metric_names(r["expr"]) for r in rules(NATIONAL_RULE_FILES)))
    for uid in build.CENTRAL:
        _, checks = build.dashboards()[uid]
        read |= set().union(*(metric_names(c.expr) for c in checks))
    assert read == federated, (sorted(read - federated), sorted(federated - read))
    pollers = [sc["labels"]["poller"] for sc in job["static_configs"]]
    assert len(pollers) == len(set(pollers)) >= 2, "a distinct poller label per provincial Prometheus"


# --- Alertmanager -------------------------------------------------------------------------------------------


@needs_amtool
def test_alertmanager_example_passes_amtool() -> None:
    r = run("amtool", "check-config", str(ALERTMANAGER))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_alertmanager_example_groups_by_area_on_every_route() -> None:
    cfg = yaml.safe_load(ALERTMANAGER.read_text(encoding="utf-8"))
    routes = [cfg["route"], *cfg["route"].get("routes", [])]
    for route in routes:
        assert "area" in route.get("group_by", cfg["route"]["group_by"]), route
    receivers = {r["name"] for r in cfg["receivers"]}
    assert {r.get("receiver", cfg["route"]["receiver"]) for r in routes} <= receivers
    for inhibit in cfg.get("inhibit_rules", []):
        for m in inhibit["source_matchers"] + inhibit["target_matchers"]:
            for alert in re.findall(r"Tslcd\w+", m):
                assert alert in alerts(), f"inhibit rule names an unknown alert {alert}"


@needs_amtool
@pytest.mark.parametrize(("labels", "receivers"), [
    (["severity=critical", "alertname=TslcdCommuneDown", "area=Phú Yên (cũ)"], "noc-oncall,noc-mail"),
    (["severity=warning", "alertname=TslcdPacketLossHigh", "area=Phú Yên (cũ)"], "noc-mail"),
    (["severity=info", "alertname=TslcdConnectionRateBelowTarget"], "noc-mail"),
])
def test_alertmanager_routes_alerts_by_severity(labels: list[str], receivers: str) -> None:
    r = run("amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == receivers


# --- Grafana -------------------------------------------------------------------------------------------------


def test_committed_dashboards_are_exactly_the_generators_output() -> None:
    build = load_build()
    built = build.dashboards()
    assert {p.stem for p in (GRAFANA / "dashboards").glob("*.json")} == set(built)
    for uid, (text, _) in built.items():
        committed = (GRAFANA / "dashboards" / f"{uid}.json").read_text(encoding="utf-8")
        assert committed == text, f"{uid}.json was edited by hand or is stale: run deploy/grafana/build.py"
    assert build.main(["--check"]) == 0


def _targets(dashboard: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(p, t) for p in dashboard["panels"] for t in p.get("targets", [])]


def test_every_dashboard_query_is_declared_with_its_expected_shape() -> None:
    build = load_build()
    for uid, (text, checks) in build.dashboards().items():
        model = json.loads(text)
        in_json = {(p["title"], t["refId"], t["expr"], bool(t.get("instant"))) for p, t in _targets(model)}
        declared = {(c.panel, c.ref_id, c.expr, c.instant) for c in checks}
        assert in_json == declared, uid
        assert len(in_json) == len(_targets(model)), f"{uid}: two targets share a panel title and refId"


def test_dashboards_only_use_known_metrics_and_recording_rules() -> None:
    build = load_build()
    known = exported_metrics() | SNMP_METRICS
    for uid, (text, _) in build.dashboards().items():
        # A central board reads the national rules (on the central Prometheus); the others, a province's.
        recorded = records(NATIONAL_RULE_FILES if uid in build.CENTRAL else RULE_FILES)
        model = json.loads(text)
        exprs = [t["expr"] for _, t in _targets(model)] + [v.get("query", "") for v in model["templating"]["list"]
                                                          if v["type"] == "query"]
        for expr in exprs:
            assert metric_names(expr) - known == set(), (uid, expr)
            for rec in RECORDED.findall(expr):
                assert rec in recorded, (uid, rec)


def test_dashboards_json_model() -> None:
    """What the issue asks of each dashboard, read from the committed JSON model."""
    boards = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in (GRAFANA / "dashboards").glob("*.json")}
    for uid, d in boards.items():
        assert d["uid"] == uid and d["schemaVersion"] >= 39 and "tslcd" in d["tags"]
        names = [v["name"] for v in d["templating"]["list"]]
        assert names[0] == "datasource"
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids))
        for p in d["panels"]:
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
            assert " / " in p["title"], f"{p['title']}: Vietnamese / English title"
            g = p["gridPos"]
            assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0
            for t in p.get("targets", []):
                assert t["datasource"]["uid"] == "${datasource}" and t["expr"].strip()

    prov = boards["tslcd-province"]
    types = [p["type"] for p in prov["panels"]]
    assert {"gauge", "timeseries", "table", "state-timeline", "heatmap", "geomap"} <= set(types)
    assert types.count("heatmap") == 2
    gauge = next(p for p in prov["panels"] if p["type"] == "gauge")
    assert "connection_rate" in gauge["targets"][0]["expr"] and gauge["fieldConfig"]["defaults"]["max"] == 1
    graph = next(p for p in prov["panels"] if p["type"] == "timeseries")
    assert graph["timeFrom"] == "30d" and any("tslcd_connection_target_ratio" in t["expr"] for t in graph["targets"])
    geo = next(p for p in prov["panels"] if p["type"] == "geomap")
    location = geo["options"]["layers"][0]["location"]
    assert location == {"mode": "coords", "latitude": "lat", "longitude": "lon"}
    (convert,) = [x for x in geo["transformations"] if x["id"] == "convertFieldType"]
    assert {(c["targetField"], c["destinationType"]) for c in convert["options"]["conversions"]} == {
        ("lat", "number"), ("lon", "number")}, "lat/lon labels are text: the map needs numbers"
    assert 'lat!=""' in geo["targets"][0]["expr"] and "group_left (name, area, lat, lon)" in geo["targets"][0]["expr"]
    # The live rate's 30-day graph says it is the live rate; the daily rates (tslcd's history) sit next
    # to the gauge, with the 30-day mean of daily rates.
    assert "30" in graph["title"] and "Live" in graph["title"]
    (daily,) = [p for p in prov["panels"] if "tslcd_connected_day_rate_ratio" in " ".join(
        t["expr"] for t in p["targets"]) and p["type"] == "stat"]
    assert {re.search(r'period="(\w+)"', t["expr"]).group(1) for t in daily["targets"]} == {  # type: ignore[union-attr]
        "today", "yesterday", "last_30d"}
    assert daily["gridPos"]["y"] == gauge["gridPos"]["y"]
    by_area = next(p for p in prov["panels"] if p["title"] == "Theo khu vực / By area")
    assert any('period="last_30d"' in t["expr"] for t in by_area["targets"])
    down = next(p for p in prov["panels"] if p["title"].startswith("Đang mất kết nối"))
    assert "tslcd_node_unreachable_cause" in down["targets"][0]["expr"]
    area = next(v for v in prov["templating"]["list"] if v["name"] == "area")
    assert area["multi"] and area["includeAll"] and area["allValue"] == ".*"

    node = boards["tslcd-node"]
    code = next(v for v in node["templating"]["list"] if v["name"] == "code")
    assert code["type"] == "query"
    node_exprs = " ".join(t["expr"] for _, t in _targets(node))
    for metric in ("tslcd_node_state", "tslcd_icmp_rtt_seconds", "tslcd_icmp_packet_loss_ratio",
                   "tslcd_snmp_sys_uptime_seconds", "tslcd_node_reboots_total",
                   "tslcd_uplink_receive_bytes_total", "tslcd_uplink_transmit_bytes_total"):
        assert metric in node_exprs, metric
    assert all('code="$code"' in t["expr"] for _, t in _targets(node))

    national = boards["tslcd-national"]
    assert [p["title"] for p in national["panels"] if p["type"] == "row"] == ["Toàn quốc / National"]
    assert national["panels"][0]["type"] == "row" and not national["panels"][0]["collapsed"]
    national_exprs = [t["expr"] for _, t in _targets(national)]
    for rec in ("national:tslcd_connection_rate:ratio", "province:tslcd_connection_rate:ratio",
                "national:tslcd_communes:sum", "national:tslcd_provinces_reporting:count"):
        assert rec in national_exprs, rec
    assert not any(re.search(r"\bavg\b", e) for e in national_exprs), "rates from summed counts, never a mean"


def test_grafana_provisioning_points_at_the_dashboards_and_a_prometheus() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "tslcd.yml").read_text(encoding="utf-8"))
    (source,) = ds["datasources"]
    assert source["type"] == "prometheus" and source["url"].startswith("http://")
    prom = yaml.safe_load((PROM / "prometheus.yml").read_text(encoding="utf-8"))
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "tslcd")
    assert source["jsonData"]["timeInterval"] == job["scrape_interval"]
    dash = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "tslcd.yml").read_text(encoding="utf-8"))
    (provider,) = dash["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


def _carrier_panel_checks() -> dict[str, Any]:
    build = load_build()
    _, checks = build.dashboards()["tslcd-province"]
    return {c.ref_id: c for c in checks if c.panel == "Theo nhà mạng / By carrier"}


def test_carrier_panel_computes_availability_and_outage_minutes_over_the_range_and_says_the_audit_rules() -> None:
    """Issue 17, part 4: the province board has a panel per carrier over the dashboard's range (availability and
    commune-minutes cut off, from tslcd_carrier_communes_*), whose description names the audit as authoritative;
    the communes of no carrier are named as tslcd's pages name them."""
    from exporters.carriers import NO_CARRIER_LABEL

    build = load_build()
    assert build.NO_CARRIER_LABEL == NO_CARRIER_LABEL
    checks = _carrier_panel_checks()
    assert sorted(checks) == ["A", "B", "C", "D", "E"]
    assert {"tslcd_carrier_communes_cut_off", "tslcd_carrier_communes_observed"} <= metric_names(checks["A"].expr)
    assert all("[$__range:1m]" in checks[r].expr for r in "ABC") and all(c.instant for c in checks.values())
    assert all('province="$province"' in c.expr and "sum by (carrier)" in c.expr for c in checks.values())
    prov = json.loads((GRAFANA / "dashboards" / "tslcd-province.json").read_text(encoding="utf-8"))
    (panel,) = [p for p in prov["panels"] if p["title"] == "Theo nhà mạng / By carrier"]
    assert panel["type"] == "table" and "tslcd audit" in panel["description"]
    assert "1 - (commune-minutes cut off / commune-minutes observed)" in panel["description"]
    assert [t["expr"] for t in panel["targets"]] == [checks[r].expr for r in "ABCDE"]
    (graph,) = [p for p in prov["panels"] if p["title"].endswith("Communes cut off by carrier")]
    assert "tslcd_carrier_communes_cut_off" in graph["targets"][0]["expr"]


@needs_promtool
def test_carrier_panel_queries_count_commune_minutes_in_promtool(tmp_path: Path) -> None:
    """The carrier panel's own queries (build.py's text, $__range = 60m) on an hour of samples a minute, in
    promtool: availability = 1 - cut off / observed commune-minutes, summed over two pollers (shards) of one
    province; communes of no carrier (carrier="", stored as no label) named; a carrier never observed has an
    outage figure (0) but no availability; another province's series left out. Minute 0 is 0 everywhere, so the
    figures do not depend on whether the range includes its first instant (Prometheus 2 does, 3 does not)."""
    from exporters.carriers import NO_CARRIER_LABEL

    checks = _carrier_panel_checks()
    province = "Đắk Lắk"

    def expr(ref: str) -> str:
        return checks[ref].expr.replace("$__range", "60m").replace("$province", province)

    def series(metric: str, values: str, carrier: str | None, instance: str = "a", where: str = province) -> Any:
        labels = f'job="tslcd",instance="{instance}",province="{where}"'
        if carrier is not None:
            labels += f',carrier="{carrier}"'
        return {"series": f"{metric}{{{labels}}}", "values": values}

    obs, cut, n = "tslcd_carrier_communes_observed", "tslcd_carrier_communes_cut_off", "tslcd_carrier_communes"
    inputs = [
        # VNPT: one commune on each of two pollers; poller b's cut off in minutes 31-60: 30 of 120.
        series(obs, "0 1x59", "VNPT"), series(cut, "0x60", "VNPT"), series(n, "1x60", "VNPT"),
        series(obs, "0 1x59", "VNPT", "b"), series(cut, "0 0x29 1x29", "VNPT", "b"), series(n, "1x60", "VNPT", "b"),
        # Viettel: two communes, never cut off.
        series(obs, "0 2x59", "Viettel"), series(cut, "0x60", "Viettel"), series(n, "2x60", "Viettel"),
        # No carrier named: one commune cut off all hour.
        series(obs, "0 1x59", None), series(cut, "0 1x59", None), series(n, "1x60", None),
        # FPT: one commune never observed (unknown or maintenance all hour).
        series(obs, "0x60", "FPT"), series(cut, "0x60", "FPT"), series(n, "1x60", "FPT"),
        # Another province: not in this province's figures.
        series(obs, "0 5x59", "VNPT", where="Phú Yên"), series(cut, "0 5x59", "VNPT", where="Phú Yên"),
    ]

    def samples(values: dict[str, float]) -> list[dict[str, Any]]:
        return [{"labels": f'{{carrier="{c}"}}', "value": v} for c, v in values.items()]

    tests = [
        ("A", {"VNPT": 0.75, "Viettel": 1, NO_CARRIER_LABEL: 0}),
        ("B", {"VNPT": 30, "Viettel": 0, NO_CARRIER_LABEL: 60, "FPT": 0}),
        ("C", {"VNPT": 120, "Viettel": 120, NO_CARRIER_LABEL: 60, "FPT": 0}),
        ("D", {"VNPT": 2, "Viettel": 2, NO_CARRIER_LABEL: 1, "FPT": 1}),
        ("E", {"VNPT": 1, "Viettel": 0, NO_CARRIER_LABEL: 1, "FPT": 0}),
    ]
    doc = {"rule_files": [], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": inputs,
        "promql_expr_test": [{"expr": expr(ref), "eval_time": "60m", "exp_samples": samples(values)}
                             for ref, values in tests]}]}
    path = tmp_path / "carrier_test.yml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    r = run("promtool", "test", "rules", path.name, cwd=tmp_path)
    assert r.returncode == 0 and "SUCCESS" in r.stdout + r.stderr, r.stdout + r.stderr
