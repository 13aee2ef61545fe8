"""deploy/ end to end (issue 7): a real Prometheus and Alertmanager, started here on loopback,
watching a real `tslcd run` whose nodes are network-namespace test hosts (monitor.lab.netns.Lab).

The test takes links down and reads back, through Prometheus' HTTP API, what it caused:
the recorded connection rate equal to the one tslcd computes, the alerts' states, one
alert for a failed aggregation node and none for the communes behind it, Alertmanager's
notifications grouped by area, and every dashboard query answered with data of the
shape build.py declares for it.

Short intervals so that it runs in about a minute, documented in docs/operators.md:
tslcd sweeps every second (one echo, 0.3 s timeout, down after one failed sweep);
Prometheus scrapes and evaluates every second; the shipped rule files are loaded
through ``shorten()``, which sets every `for:` to 3 s, every group `interval:` to 1 s and
the availability slices' window to 1 s. Alertmanager's example is loaded with 1-second
group timers and its receivers replaced by a webhook served here.

Packets go only to loopback and to the lab's namespaces (198.18.0.0/15).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
PROMETHEUS = shutil.which("prometheus")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="raw ICMP and network namespaces need root (CI runs as root)"),
    pytest.mark.skipif(PROMETHEUS is None, reason="prometheus missing: apt-get install prometheus"),
    pytest.mark.skipif(ALERTMANAGER is None, reason="alertmanager missing: apt-get install prometheus-alertmanager"),
]

PROVINCE = "Đắk Lắk"
AREA_A = "Buôn Hồ (thử)"   # behind the two aggregation routers
AREA_B = "Tuy An (thử)"    # directly linked, plus a commune with no circuit
CORE = "66-CORE"
AGG, AGG2 = "66-AGG-BH", "66-AGG-EK"
C1, C2, C3, D1, NO_CIRCUIT = "24301", "24305", "24310", "22111", "22114"
S1, S2 = "22120", "22132"  # area B, on loopback, polled over SNMP from their own snmpsim agents
NAMES = {C1: "Phường Buôn Hồ (thử)", C2: "Xã Ea Drông (thử)", C3: "Xã Ea Khal (thử)", D1: "Xã An Mỹ (thử)",
         NO_CIRCUIT: "Xã An Hiệp (thử)", S1: "Xã Tuy An Đông (thử)", S2: "Xã Tuy An Tây (thử)",
         AGG: "Nút tập trung Buôn Hồ (thử)", AGG2: "Nút tập trung Ea Khal (thử)", CORE: "Trung tâm dữ liệu (thử)"}
PROBED = {CORE, AGG, AGG2, C1, C2, C3, D1, S1, S2}
# The SNMP nodes' addresses: ping answers there (loopback) and so does each one's agent.
SNMP_HOSTS = {S1: "127.77.5.1", S2: "127.77.5.2"}
UPLINK = "ge-0/0/0"
REBOOT_EVERY_S = 60.0  # S1's router "reboots" (sysUpTime back to 0) this often: tslcd sees drops over 30 s
# Communes with a position in the inventory (the map shows these, and only these).
LATLON = {C1: (12.9187, 108.2694), C3: (13.3921, 108.3126), D1: (13.2651, 109.3213)}
# The history the test writes before tslcd starts (_seed_history): the day before yesterday D1
# was down all day, yesterday every commune with a circuit was up. Per docs/design.md a period's
# rate is the mean of its daily rates; the commune with no circuit counts in every denominator.
DAY_RATES = {
    "yesterday": {"": 6 / 7, AREA_A: 1.0, AREA_B: 3 / 4},
    "last_30d": {"": (5 / 7 + 6 / 7) / 2, AREA_A: 1.0, AREA_B: (2 / 4 + 3 / 4) / 2},
}
DEADLINE_S = 60.0
# tslcd's sweeps at test time scales (module docstring): one echo a second, 0.3 s timeout.
FAST_ICMP = "icmp:\n  interval_s: 1\n  count: 1\n  timeout_s: 0.3\n  echo_interval_s: 0\n"
T = TypeVar("T")


# --- small helpers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, probe: Callable[[], T | None], deadline_s: float = DEADLINE_S) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` at the deadline."""
    end = time.monotonic() + deadline_s
    last: object = None
    while True:
        try:
            got = probe()
        except (OSError, ValueError, KeyError) as e:  # a server still starting, a half-written answer
            got, last = None, e
        if got:
            return got
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline_s:.0f} s waiting for {what} (last: {last!r})")
        time.sleep(0.2)  # polling interval; the deadline above is the synchronisation


def get_json(url: str, **params: str) -> Any:
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def shorten(rules_yaml: str) -> str:
    """The shipped rule file with test time scales (see the module docstring)."""
    text = re.sub(r"(?m)^(\s+for: )\S+$", r"\g<1>3s", rules_yaml)
    text = re.sub(r"(?m)^(\s+interval: )\S+$", r"\g<1>1s", text)
    return re.sub(r"(sum_over_time\(tslcd_node_state\{[^}]*\})\[5m\]", r"\1[1s]", text)


class Proc:
    """A child process whose output goes to a log file, stopped (and reaped) by stop()."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Webhook:
    """Alertmanager's receivers in the test: every notification POSTed here is kept."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        lock = threading.Lock()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self._lock = lock

    def notifications(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@dataclass
class Prometheus:
    url: str

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = get_json(self.url + "api/v1/query", query=expr)
        assert data["status"] == "success", data
        assert data["data"]["resultType"] == "vector", data
        return list(data["data"]["result"])

    def values(self, expr: str, key: str) -> dict[str, float]:
        """{label ``key``'s value ("" when absent): sample value} of an instant query."""
        return {s["metric"].get(key, ""): float(s["value"][1]) for s in self.query(expr)}

    def alerts(self, name: str, state: str = "firing") -> list[dict[str, Any]]:
        data = get_json(self.url + "api/v1/alerts")
        return [a for a in data["data"]["alerts"] if a["labels"]["alertname"] == name and a["state"] == state]


@dataclass
class Stack:
    lab: Any
    hosts: dict[str, Any]
    agents: Agents
    tslcd: Proc
    prom: Prometheus
    webhook: Webhook
    procs: list[Proc] = field(default_factory=list)
    down: set[str] = field(default_factory=set)

    def link(self, code: str, up: bool) -> None:
        self.lab.set_link(self.hosts[code], up)
        (self.down.discard if up else self.down.add)(code)

    def all_up(self) -> None:
        """Every link up, and Prometheus seeing every probed node up again."""
        for code in sorted(self.down):
            self.link(code, True)
        def seen_up() -> bool:
            up = self.prom.values(f'tslcd_node_up{{code=~"{"|".join(sorted(PROBED))}"}}', "code")
            return set(up) == PROBED and all(v == 1 for v in up.values())

        wait_for("every node up in Prometheus", seen_up)


# --- the stack ----------------------------------------------------------------------------------------


def _inventory(lab_hosts: dict[str, Any]) -> str:
    from dataclasses import replace

    from inventory.model import Kind, Node
    from monitor.lab.demo import inventory_yaml

    def node(code: str, kind: Kind, area: str, parent: str | None, address: str) -> Node:
        lat, lon = LATLON.get(code, (None, None))
        return Node(code, NAMES[code], kind, PROVINCE, area=area, address=address, parent=parent, lat=lat, lon=lon)

    nodes = [
        node(CORE, "core", "", None, "127.0.0.1"),
        node(AGG, "aggregation", AREA_A, CORE, lab_hosts[AGG].ipv4),
        node(C1, "commune", AREA_A, AGG, lab_hosts[C1].ipv4),
        node(C2, "commune", AREA_A, AGG, lab_hosts[C2].ipv4),
        node(AGG2, "aggregation", AREA_A, CORE, lab_hosts[AGG2].ipv4),
        node(C3, "commune", AREA_A, AGG2, lab_hosts[C3].ipv4),
        node(D1, "commune", AREA_B, CORE, lab_hosts[D1].ipv4),
        node(NO_CIRCUIT, "commune", AREA_B, CORE, ""),
        *(replace(node(code, "commune", AREA_B, CORE, host), snmp=f"e2e-{code}", uplink=UPLINK)
          for code, host in SNMP_HOSTS.items()),
    ]
    return inventory_yaml(nodes, header="# tests/test_deploy_e2e.py\n")


def _seed_history(cfg_path: Path) -> None:
    """Two whole days of history in tslcd's store before it starts (see DAY_RATES), written
    through the store's own interface, as a monitor that ran then would have."""
    from datetime import timedelta

    from inventory.load import load_inventory
    from monitor.config import load_config
    from monitor.core.history import day_of, day_span
    from monitor.store import ChangeRow, SweepBatch, open_store

    cfg = load_config(cfg_path)
    inventory = load_inventory(cfg.inventory_path, default_province=cfg.province)
    today = day_of(time.time(), cfg.tz)
    start, _ = day_span(today - timedelta(days=2), cfg.tz)
    yesterday, end = day_span(today - timedelta(days=1), cfg.tz)
    store = open_store(cfg)
    try:
        ids = {code: u for (code, _), u in store.record_inventory(inventory, start - 60).units.items()}
        run = store.start_run(start, max_gap_s=3600)
        store.write_sweep(SweepBatch(run, start, [ChangeRow(ids[c], start, "unknown", "down" if c == D1 else "up")
                                                  for c in sorted(PROBED)]))
        beats = [start + k * 1800 for k in range(1, int((end - start) // 1800) + 1)] + [end]
        for at in sorted(set(beats)):
            changes = [ChangeRow(ids[D1], at, "down", "up")] if at == yesterday else []
            store.write_sweep(SweepBatch(run, at, changes))
        store.stop_run(run, end)
    finally:
        store.close()


def _recording(code: str) -> str:
    """S1: a router whose uplink carries traffic and which reboots every REBOOT_EVERY_S;
    S2: a router whose uplink is operationally down."""
    from monitor.lab.agents import Interface, router_recording

    wan = (Interface(2, UPLINK, descr="TSLCD uplink", in_octets=5 * 10**6, out_octets=2 * 10**6, in_rate=3000,
                     out_rate=1200, in_errors=4, out_errors=1) if code == S1 else
           Interface(2, UPLINK, descr="TSLCD uplink", oper_up=False))
    return router_recording(sys_name=f"ubnd-{code}", reboot_every_s=REBOOT_EVERY_S if code == S1 else None,
                            interfaces=[Interface(1, "lo"), wan])


class Agents:
    """One snmpsim per SNMP node, on that node's loopback address; stop() and start() again by code."""

    def __init__(self, tmp: Path) -> None:
        from monitor.lab.agents import write_recording

        self.tmp = tmp
        self.running: dict[str, Any] = {}
        self.ports: dict[str, int] = {}
        for code in SNMP_HOSTS:
            data = tmp / f"snmp-{code}"
            data.mkdir()
            write_recording(data / f"ubnd-{code}.snmprec", _recording(code))

    def start(self, code: str) -> None:
        from monitor.lab.agents import start_snmpsim

        agent = start_snmpsim(self.tmp / f"snmp-{code}", hosts=[SNMP_HOSTS[code]], port=self.ports.get(code),
                              workdir=self.tmp / f"agent-{code}", deadline_s=60)
        self.running[code] = agent
        self.ports[code] = agent.port

    def stop(self, code: str) -> None:
        agent = self.running.pop(code, None)
        if agent is not None:
            agent.stop()

    def close(self) -> None:
        for code in list(self.running):
            self.stop(code)


def _start_tslcd(tmp: Path, lab_hosts: dict[str, Any], agents: Agents) -> tuple[Proc, str]:
    inv = tmp / "inventory.yaml"
    inv.write_text(_inventory(lab_hosts), encoding="utf-8")
    cfg = tmp / "tslcd.yaml"
    # A test community in a test file; real configs take it from ${ENV} or a *_file.
    profiles = "".join(f"  e2e-{code}:\n    version: '2c'\n    community: ubnd-{code}\n    port: {agents.ports[code]}\n"
                       "    timeout_s: 1\n    retries: 0\n" for code in SNMP_HOSTS)
    cfg.write_text(
        f"province: {PROVINCE}\ninventory: {inv}\nweb:\n  listen: 127.0.0.1:0\n{FAST_ICMP}"
        "states:\n  down_after: 1\n  up_after: 1\n"
        "snmp:\n  interval_s: 10\n"  # the shortest tslcd accepts
        f"snmp_profiles:\n{profiles}"
        f"store:\n  path: {tmp / 'history.sqlite'}\n"
        "rates:\n  target: 1.0\nlog_level: warning\n", encoding="utf-8")
    _seed_history(cfg)
    return run_tslcd(cfg, tmp / "tslcd.log")


def run_tslcd(cfg: Path, log: Path) -> tuple[Proc, str]:
    """`tslcd run --config cfg` (its output in ``log``), and its status page URL once it has started."""
    proc = Proc([sys.executable, "-m", "monitor.cli", "run", "--config", str(cfg)], log)

    def started() -> str | None:
        assert proc.alive(), "tslcd exited:\n" + proc.output()
        m = re.search(r"status page (http://\S+/)", proc.output())
        return m.group(1) if m else None

    return proc, wait_for(f"the start-up line of {log.stem}", started, 30)


def wait_ready(proc: Proc, url: str, what: str) -> None:
    """Wait (30 s at most) until a Prometheus or Alertmanager started as ``proc`` answers ``url``-/ready."""
    def ready() -> bool:
        assert proc.alive(), f"{what} exited:\n" + proc.output()
        with urllib.request.urlopen(url + "-/ready", timeout=2) as r:
            return bool(r.status == 200)

    wait_for(f"{what} ready", ready, 30)


def _start_alertmanager(tmp: Path, webhook: Webhook) -> tuple[Proc, str]:
    cfg = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text(encoding="utf-8"))
    for route in [cfg["route"], *cfg["route"].get("routes", [])]:
        for key in ("group_wait", "group_interval"):
            route[key] = "1s"
        route["repeat_interval"] = "1h"
    cfg["receivers"] = [{"name": r["name"], "webhook_configs": [{"url": f"{webhook.url}/{r['name']}",
                                                                 "send_resolved": True}]}
                        for r in cfg["receivers"]]
    path = tmp / "alertmanager.yml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    port = free_port()
    assert ALERTMANAGER
    proc = Proc([ALERTMANAGER, f"--config.file={path}", f"--storage.path={tmp / 'am-data'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"],
                tmp / "alertmanager.log")
    url = f"http://127.0.0.1:{port}/"
    wait_ready(proc, url, "alertmanager")
    return proc, url


def shortened_rules(tmp: Path, folder: Path, name: str = "") -> list[str]:
    """Copies of the rule files of ``folder`` (deploy/prometheus/rules, or the national ones) at test time
    scales (``shorten``), written in ``tmp``: their paths, for a config's rule_files."""
    rules = []
    for f in sorted(folder.glob("*.yml")):
        copy = tmp / f"short-{name}{f.name}"
        copy.write_text(shorten(f.read_text(encoding="utf-8")), encoding="utf-8")
        rules.append(str(copy))
    return rules


def province_prometheus_config(tmp: Path, tslcd_url: str, am_url: str | None, name: str = "") -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml, scraping the tslcd at ``tslcd_url`` every second with the shipped rules
    shortened; its alerts sent to the Alertmanager at ``am_url``, or nowhere when None."""
    cfg: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    cfg["global"].update(scrape_interval="1s", evaluation_interval="1s")
    cfg["rule_files"] = shortened_rules(tmp, DEPLOY / "prometheus" / "rules", name)
    if am_url is None:
        del cfg["alerting"]
    else:
        cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [urllib.parse.urlsplit(am_url).netloc]
    job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "tslcd")
    job.update(scrape_interval="1s", scrape_timeout="1s")
    job["static_configs"][0]["targets"] = [urllib.parse.urlsplit(tslcd_url).netloc]
    return cfg


def start_prometheus(tmp: Path, cfg: dict[str, Any], name: str = "prometheus", *flags: str) -> tuple[Proc, str]:
    """A Prometheus on a free loopback port with config ``cfg`` (files named ``name`` in ``tmp``) and more command
    line ``flags``, once ready."""
    path = tmp / f"{name}.yml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    port = free_port()
    assert PROMETHEUS
    proc = Proc([PROMETHEUS, f"--config.file={path}", f"--storage.tsdb.path={tmp / f'{name}-data'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn", *flags], tmp / f"{name}.log")
    url = f"http://127.0.0.1:{port}/"
    wait_ready(proc, url, name)
    return proc, url


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from monitor.lab import netns

    reason = netns.available()
    if reason:
        pytest.skip(reason)
    netns.cleanup_stale("tsdeploy")
    tmp = tmp_path_factory.mktemp("deploy-e2e")
    procs: list[Proc] = []
    webhook = Webhook()
    lab = netns.Lab("tsdeploy")
    agents = Agents(tmp)
    try:
        for code in SNMP_HOSTS:
            agents.start(code)
        router = lab.add_router("agg", lab.allocate()[0])
        router2 = lab.add_router("agg2", lab.allocate()[0])
        hosts = {AGG: router,
                 C1: lab.add_host("c1", lab.allocate()[0], behind=router),
                 C2: lab.add_host("c2", lab.allocate()[0], behind=router),
                 AGG2: router2,
                 C3: lab.add_host("c3", lab.allocate()[0], behind=router2),
                 D1: lab.add_host("d1", lab.allocate()[0])}
        tslcd, tslcd_url = _start_tslcd(tmp, hosts, agents)
        procs.append(tslcd)
        am, am_url = _start_alertmanager(tmp, webhook)
        procs.append(am)
        prom, prom_url = start_prometheus(tmp, province_prometheus_config(tmp, tslcd_url, am_url))
        procs.append(prom)
        s = Stack(lab, hosts, agents, tslcd, Prometheus(prom_url), webhook, procs)
        s.all_up()
        yield s
    finally:
        for p in reversed(procs):
            p.stop()
        webhook.close()
        agents.close()
        lab.close()


# --- the tests ----------------------------------------------------------------------------------------


def _rates_agree(s: Stack, expected: dict[str, float]) -> bool:
    recorded = s.prom.values(f'province_area:tslcd_connection_rate:ratio{{province="{PROVINCE}"}}', "area")
    exported = s.prom.values(f'tslcd_connection_rate_ratio{{province="{PROVINCE}"}}', "area")
    return recorded == expected and exported == expected


def test_recorded_connection_rate_equals_tslcd_own_as_a_commune_link_goes_down(stack: Stack) -> None:
    stack.all_up()
    # Seven communes: C1, C2, C3 behind the routers (area A); D1, S1, S2 and one with no circuit (area B).
    up = {"": 6 / 7, AREA_A: 1.0, AREA_B: 3 / 4}
    wait_for(f"recorded and exported rates {up}", lambda: _rates_agree(stack, up))
    try:
        stack.link(D1, False)
        down = {"": 5 / 7, AREA_A: 1.0, AREA_B: 2 / 4}
        wait_for(f"recorded and exported rates {down}", lambda: _rates_agree(stack, down))
        diff = stack.prom.values('province_area:tslcd_connection_rate:ratio - on (province, area) '
                                 'tslcd_connection_rate_ratio', "area")
        assert diff == {"": 0.0, AREA_A: 0.0, AREA_B: 0.0}
    finally:
        stack.link(D1, True)


def test_commune_down_alert_fires_naming_the_commune_and_area_and_alertmanager_groups_it_by_area(
        stack: Stack) -> None:
    stack.all_up()
    try:
        stack.link(D1, False)
        (alert,) = wait_for("TslcdCommuneDown firing for D1", lambda: [
            a for a in stack.prom.alerts("TslcdCommuneDown") if a["labels"]["code"] == D1])
        assert alert["labels"]["name"] == NAMES[D1] and alert["labels"]["area"] == AREA_B
        assert alert["labels"]["severity"] == "critical"
        for key in ("summary", "description", "summary_en", "description_en"):
            assert NAMES[D1] in alert["annotations"][key] and AREA_B in alert["annotations"][key], key
        assert alert["annotations"]["summary"].startswith("Mất kết nối")
        assert alert["annotations"]["summary_en"].startswith("Commune down")

        def paged() -> list[dict[str, Any]]:
            return [n for n in stack.webhook.notifications()
                    if n["receiver"] == "noc-oncall" and n["status"] == "firing"
                    and any(a["labels"].get("code") == D1 for a in n["alerts"])]

        note = wait_for("an on-call notification about D1", paged)[0]
        assert note["groupLabels"] == {"province": PROVINCE, "area": AREA_B}
        assert all(a["labels"]["area"] == AREA_B for a in note["alerts"])
    finally:
        stack.link(D1, True)


def test_failed_aggregation_node_raises_one_alert_about_it_and_none_for_its_communes(stack: Stack) -> None:
    stack.all_up()
    start = time.time()
    try:
        stack.link(AGG, False)
        (alert,) = wait_for("TslcdUpstreamNodeDown firing for the router",
                            lambda: stack.prom.alerts("TslcdUpstreamNodeDown"))
        assert alert["labels"]["code"] == AGG and alert["labels"]["kind"] == "aggregation"
        assert alert["labels"]["area"] == AREA_A
        assert "2 xã/phường" in alert["annotations"]["summary"], alert["annotations"]
        assert "2 communes" in alert["annotations"]["summary_en"], alert["annotations"]
        unreachable = stack.prom.values('tslcd_node_state{state="unreachable"} == 1', "code")
        assert set(unreachable) == {C1, C2}
        # The count is tslcd's own cause labels, counted: exactly the two communes behind it.
        assert float(alert["value"]) == 2
        assert stack.prom.values("count by (cause) (tslcd_node_unreachable_cause == 1)", "cause") == {AGG: 2}
        for key, lead in (("description", "Gồm"), ("description_en", "They are")):
            listed = alert["annotations"][key].split(lead, 1)[1]
            assert NAMES[C1] in listed and NAMES[C2] in listed and NAMES[C3] not in listed, key
        # Nothing for the communes behind it: not now, and never since the link went down.
        assert not [a for a in stack.prom.alerts("TslcdCommuneDown") if a["labels"]["code"] in (C1, C2)]
        data = get_json(stack.prom.url + "api/v1/query_range",
                        query=f'ALERTS{{alertname="TslcdCommuneDown", alertstate="firing", code=~"{C1}|{C2}"}}',
                        start=str(start), end=str(time.time()), step="1")
        assert data["status"] == "success" and data["data"]["result"] == []

        def paged() -> list[dict[str, Any]]:
            return [n for n in stack.webhook.notifications()
                    if n["receiver"] == "noc-oncall" and n["status"] == "firing"
                    and n["groupLabels"].get("area") == AREA_A]

        note = wait_for("an on-call notification for area A", paged)[-1]
        assert [a["labels"]["alertname"] for a in note["alerts"] if a["status"] == "firing"] == \
            ["TslcdUpstreamNodeDown"]
    finally:
        stack.link(AGG, True)
    stack.all_up()


def test_two_failed_routers_raise_one_alert_each_counting_only_the_communes_behind_it(stack: Stack) -> None:
    """Both aggregation routers of area A fail: two alerts, 2 and 1 communes, while the area
    has 3 unreachable (so the count is by cause, not by area); none for the communes."""
    from tests.test_deploy_rules import load_build

    stack.all_up()
    start = time.time()
    try:
        stack.link(AGG, False)
        stack.link(AGG2, False)

        def settled() -> dict[str, dict[str, Any]] | None:
            found = {a["labels"]["code"]: a for a in stack.prom.alerts("TslcdUpstreamNodeDown")}
            counts = {code: float(a["value"]) for code, a in found.items()}
            return found if counts == {AGG: 2.0, AGG2: 1.0} else None

        alerts = wait_for("TslcdUpstreamNodeDown firing for each router, 2 and 1 communes", settled)
        assert "2 communes" in alerts[AGG]["annotations"]["summary_en"]
        assert "2 xã/phường" in alerts[AGG]["annotations"]["summary"]
        assert "1 communes" in alerts[AGG2]["annotations"]["summary_en"]
        assert "1 xã/phường" in alerts[AGG2]["annotations"]["summary"]
        assert NAMES[C3] in alerts[AGG2]["annotations"]["description"]
        assert NAMES[C1] not in alerts[AGG2]["annotations"]["description"]
        assert {a["labels"]["area"] for a in alerts.values()} == {AREA_A}
        assert stack.prom.values(f'province_area:tslcd_communes_unreachable:sum{{province="{PROVINCE}"}}',
                                 "area") == {"": 3, AREA_A: 3, AREA_B: 0}
        assert stack.prom.values("count by (cause) (tslcd_node_unreachable_cause == 1)", "cause") == {AGG: 2, AGG2: 1}
        data = get_json(stack.prom.url + "api/v1/query_range",
                        query=f'ALERTS{{alertname="TslcdCommuneDown", code=~"{C1}|{C2}|{C3}"}}',
                        start=str(start), end=str(time.time()), step="1")
        assert data["status"] == "success" and data["data"]["result"] == [], "no commune alert, not even pending"

        # The dashboard's down list names, for each unreachable commune, the router that cut it off.
        build = load_build()
        rows = stack.prom.query(_substitute(build.DOWN_LIST))
        listed = {s["metric"]["code"]: (s["metric"]["state"], s["metric"].get("cause_name", "")) for s in rows}
        assert listed == {AGG: ("down", ""), AGG2: ("down", ""), C1: ("unreachable", NAMES[AGG]),
                          C2: ("unreachable", NAMES[AGG]), C3: ("unreachable", NAMES[AGG2])}

        def paged() -> list[dict[str, Any]]:
            return [n for n in stack.webhook.notifications()
                    if n["receiver"] == "noc-oncall" and n["groupLabels"].get("area") == AREA_A
                    and {a["labels"]["code"] for a in n["alerts"] if a["status"] == "firing"} == {AGG, AGG2}]

        note = wait_for("one on-call notification for area A about both routers", paged)[-1]
        assert {a["labels"]["alertname"] for a in note["alerts"] if a["status"] == "firing"} == \
            {"TslcdUpstreamNodeDown"}
    finally:
        stack.link(AGG, True)
        stack.link(AGG2, True)
    stack.all_up()


def test_availability_rules_count_down_time_and_agree_with_the_raw_states(stack: Stack) -> None:
    stack.all_up()
    try:
        stack.link(D1, False)
        wait_for("D1 down for a few samples", lambda: stack.prom.values(
            f'sum_over_time(tslcd_node_state{{code="{D1}", state="down"}}[1m])', "code").get(D1, 0) >= 3)
    finally:
        stack.link(D1, True)
    stack.all_up()
    wait_for("D1's 1-day availability below 1", lambda: {
        k: v for k, v in stack.prom.values(f'code:tslcd_node_availability:ratio_1d{{code="{D1}"}}', "code").items()
        if 0 < v < 1})
    # docs/design.md's definition straight from the raw states, over the seconds the slices cover
    # (one slice a second here); the two differ by at most a sample at either end.
    slices = int(wait_for("15 slices of D1 recorded", lambda: {
        k: v for k, v in stack.prom.values(
            f'count_over_time(code:tslcd_node_observed_samples:sum5m{{code="{D1}"}}[1d])', "code").items()
        if v >= 15}.get(D1)))
    observed = f'sum_over_time(tslcd_node_state{{code="{D1}", state=~"up|down|unreachable"}}[{slices}s])'
    up = f'sum_over_time(tslcd_node_state{{code="{D1}", state="up"}}[{slices}s])'
    n = stack.prom.values(f"sum by (code) ({observed})", "code")[D1]
    recorded = stack.prom.values(f'code:tslcd_node_availability:ratio_1d{{code="{D1}"}}', "code")
    raw = stack.prom.values(f"sum by (code) ({up}) / sum by (code) ({observed})", "code")
    assert abs(recorded[D1] - raw[D1]) <= 2 / n, (recorded, raw, n)
    month = stack.prom.values(f'code:tslcd_node_availability:ratio_30d{{code="{D1}"}}', "code")
    assert 0 < month[D1] < 1
    area = stack.prom.values(f'province_area:tslcd_availability:ratio_1d{{province="{PROVINCE}"}}', "area")
    assert set(area) == {"", AREA_A, AREA_B} and all(0 <= v <= 1 for v in area.values())
    assert area[AREA_B] < 1


def _substitute(expr: str, code: str = D1) -> str:
    for var, value in (("$__rate_interval", "4s"), ("$__range", "60s"), ("$__interval", "1s"),
                       ("$province", PROVINCE), ("$area", ".*"), ("$code", code)):
        expr = expr.replace(var, value)
    # No dashboard variable left; "$1" is label_replace's capture group (no Grafana variable is named so).
    assert not re.search(r"\$(?!1\b)", expr), expr
    return expr


def check_dashboard_query(prom_url: str, check: Any, expr: str, where: str) -> bool:
    """Send one of build.py's dashboard queries (``expr``: ``check.expr``, its variables filled in) to the
    Prometheus at ``prom_url`` as Grafana does (instant, or a range over the last 30 s) and check the answer's
    shape against ``check.expect``; False when it came back empty and ``expect.pending`` allows that."""
    if check.instant:
        data = get_json(prom_url + "api/v1/query", query=expr)
        assert data["status"] == "success", where
        assert data["data"]["resultType"] == "vector", where
        points = [[s["value"]] for s in data["data"]["result"]]
    else:
        now = time.time()
        data = get_json(prom_url + "api/v1/query_range", query=expr, start=str(now - 30), end=str(now), step="1")
        assert data["status"] == "success", where
        assert data["data"]["resultType"] == "matrix", where
        points = [s["values"] for s in data["data"]["result"]]
    series = data["data"]["result"]
    want = check.expect
    if want.pending and not series:
        return False
    assert len(series) >= want.min_series, f"{where}: {len(series)} series, want >= {want.min_series}"
    for s in series:
        assert set(want.labels) <= set(s["metric"]), f"{where}: {s['metric']} lacks {want.labels}"
    if want.bounds:
        lo, hi = want.bounds
        values = [float(v) for pts in points for _, v in pts]
        assert all(lo <= v <= hi for v in values if not math.isnan(v)), f"{where}: {values[:5]} ..."
    return True


def test_every_dashboard_query_parses_and_returns_data_of_the_expected_shape(stack: Stack) -> None:
    from tests.test_deploy_rules import load_build

    stack.all_up()
    wait_for("availability recorded for every area", lambda: len(stack.prom.query(
        f'province_area:tslcd_availability:ratio_30d{{province="{PROVINCE}"}}')) == 3)
    for code in (D1, S1):
        wait_for(f"rates over the last minute for {code}", lambda code=code: stack.prom.query(
            f'increase(tslcd_node_state_changes_total{{code="{code}"}}[60s])'))
    _wait_for_today(stack)
    # S1 polled over SNMP at least twice (every 10 s), so that its counters have rates.
    wait_for("two SNMP polls of S1", lambda: stack.prom.query(
        f'changes(tslcd_snmp_last_poll_timestamp_seconds{{code="{S1}"}}[60s]) >= 1'))
    build = load_build()
    pending_empty = []
    # The boards of a province's Prometheus (the central ones: tests/test_federation.py). The node
    # dashboard for a node with no SNMP profile (D1) and one polled over SNMP (S1).
    boards = {uid: checks for uid, (_, checks) in build.dashboards().items() if uid not in build.CENTRAL}
    runs = [(uid, check, code) for uid, checks in boards.items() for check in checks
            for code in ((D1, S1) if "$code" in check.expr else (D1,))]
    for uid, check, code in runs:
        expr = _substitute(check.expr, code)
        where = f"{uid} / {check.panel} / {check.ref_id} / {code}: {expr}"
        if not check_dashboard_query(stack.prom.url, check, expr, where):
            pending_empty.append((where, check.expect.pending))
        elif check.expect.pending == build.SNMP_ONLY:
            assert code == S1, f"{where}: {code} has no SNMP profile, yet SNMP series"
    for text, _ in build.dashboards().values():
        # Variable queries: label_values() and query_result() as Grafana runs them.
        for var in json.loads(text)["templating"]["list"]:
            if var["type"] != "query":
                continue
            m = re.fullmatch(r"label_values\((.*), (\w+)\)", var["query"])
            if m:
                values = get_json(stack.prom.url + f"api/v1/label/{m.group(2)}/values",
                                  **{"match[]": _substitute(m.group(1))})["data"]
                assert values, var["name"]
                continue
            m = re.fullmatch(r"query_result\((.*)\)", var["query"])
            assert m, var["query"]
            regex = re.compile(var["regex"].strip("/").replace("(?<", "(?P<"))
            found = set()
            for s in stack.prom.query(_substitute(m.group(1))):
                labels = dict(s["metric"])
                name = labels.pop("__name__", "")
                line = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
                hit = regex.search(line)
                if hit:
                    found.add((hit.group("value"), hit.group("text")))
            assert {(D1, NAMES[D1]), (AGG, NAMES[AGG]), (S1, NAMES[S1])} <= found, found
    # Only SNMP queries may come back empty, and only for the node without SNMP: every one of them.
    assert {reason for _, reason in pending_empty} <= {build.SNMP_ONLY}, pending_empty
    assert {w for w, _ in pending_empty} == {
        f"{uid} / {c.panel} / {c.ref_id} / {D1}: {_substitute(c.expr, D1)}"
        for uid, checks in boards.items() for c in checks if c.expect.pending == build.SNMP_ONLY}


def test_every_shipped_rule_evaluates_without_error_on_real_data(stack: Stack) -> None:
    shipped = set()
    for f in (DEPLOY / "prometheus" / "rules").glob("*.yml"):
        for g in yaml.safe_load(f.read_text(encoding="utf-8"))["groups"]:
            shipped |= {r.get("alert") or r.get("record") for r in g["rules"]}

    def evaluated() -> list[dict[str, Any]] | None:
        rules = [r for g in get_json(stack.prom.url + "api/v1/rules")["data"]["groups"] for r in g["rules"]]
        return rules if all(r["lastEvaluation"] > "2000" for r in rules) else None

    rules = wait_for("every rule evaluated once", evaluated)
    assert {r["name"] for r in rules} == shipped
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not bad, bad


def test_map_places_exactly_the_communes_with_lat_lon_coloured_by_state(stack: Stack) -> None:
    from tests.test_deploy_rules import load_build

    build = load_build()
    _, checks = build.dashboards()["tslcd-province"]
    (check,) = [c for c in checks if c.panel == "Bản đồ / Map"]
    stack.all_up()

    def placed() -> dict[str, tuple[float, float, float]]:
        return {s["metric"]["code"]: (float(s["metric"]["lat"]), float(s["metric"]["lon"]), float(s["value"][1]))
                for s in stack.prom.query(_substitute(check.expr))}

    assert placed() == {code: (lat, lon, 1.0) for code, (lat, lon) in LATLON.items()}
    for s in stack.prom.query(_substitute(check.expr)):
        assert s["metric"]["name"] == NAMES[s["metric"]["code"]]
    try:
        stack.link(D1, False)
        wait_for("D1 red on the map", lambda: placed().get(D1, (0, 0, 1))[2] == 0.0)
        assert {code: v for code, (_, _, v) in placed().items()} == {C1: 1.0, C3: 1.0, D1: 0.0}
    finally:
        stack.link(D1, True)
    stack.all_up()


def _wait_for_today(stack: Stack) -> None:
    """tslcd recomputes today's rates once a minute and exports none before it has observed part
    of today (a rate of 0 just after a start would be a false alarm): wait for the first."""
    wait_for("today's daily rates", lambda: stack.prom.query(
        f'tslcd_connected_day_rate_ratio{{province="{PROVINCE}", area="", period="today"}}'), 90)


def _close(got: dict[str, float], want: dict[str, float]) -> bool:
    return set(got) == set(want) and all(abs(got[k] - want[k]) < 1e-9 for k in want)


def test_day_rates_from_tslcd_history_reach_prometheus_and_the_dashboard(stack: Stack) -> None:
    """The history seeded before tslcd started (DAY_RATES) comes back through tslcd's /metrics,
    Prometheus, and the dashboard's queries: yesterday's rate and the 30-day mean of daily rates."""
    from tests.test_deploy_rules import load_build

    stack.all_up()
    for period, want in DAY_RATES.items():
        q = f'tslcd_connected_day_rate_ratio{{province="{PROVINCE}", period="{period}"}}'
        got = wait_for(f"{period} rates {want}", lambda q=q, want=want: (
            lambda v: v if _close(v, want) else None)(stack.prom.values(q, "area")))
        assert _close(got, want), (period, got)
    _wait_for_today(stack)
    today = stack.prom.values(f'tslcd_connected_day_rate_ratio{{province="{PROVINCE}", period="today"}}', "area")
    assert set(today) == {"", AREA_A, AREA_B} and all(0 <= v <= 1 for v in today.values())
    assert _close(stack.prom.values('tslcd_provisioned_day_rate_ratio{period="last_30d"}', "area"),
                  {"": 6 / 7, AREA_A: 1.0, AREA_B: 3 / 4})
    # No SNMP traffic in the seeded days: nothing was in use.
    assert _close(stack.prom.values('tslcd_in_use_day_rate_ratio{period="last_30d"}', "area"),
                  {"": 0.0, AREA_A: 0.0, AREA_B: 0.0})
    assert _close(stack.prom.values('tslcd_monitor_coverage_ratio{period=~"yesterday|last_30d"}', "period"),
                  {"yesterday": 1.0, "last_30d": 1.0})
    assert stack.prom.values("tslcd_history_write_failures_total", "job") == {"tslcd": 0.0}

    build = load_build()
    _, checks = build.dashboards()["tslcd-province"]
    daily = {c.ref_id: c for c in checks if c.panel == "Tỷ lệ kết nối theo ngày / Daily connection rate"}
    for ref, period in (("B", "yesterday"), ("C", "last_30d")):
        assert stack.prom.values(_substitute(daily[ref].expr), "area") == {"": DAY_RATES[period][""]}, period
    (column,) = [c for c in checks if c.panel == "Theo khu vực / By area" and "day_rate" in c.expr]
    assert _close(stack.prom.values(_substitute(column.expr), "area"), DAY_RATES["last_30d"])
    # The live rate's series is another figure: communes up now, not the mean of daily rates.
    live = {"": 6 / 7, AREA_A: 1.0, AREA_B: 3 / 4}
    wait_for(f"recorded and exported live rates {live}", lambda: _rates_agree(stack, live))
    assert live[""] != DAY_RATES["last_30d"][""]


def test_sweeps_stale_compares_each_probe_with_its_own_interval_on_real_data(stack: Stack) -> None:
    """tslcd exports its sweeps' interval with the same labels as their last timestamp, so the
    alert's relative comparison matches on real data: quiet while tslcd sweeps every second, and
    (its threshold set to 0 intervals) it returns the icmp probe of this very tslcd."""
    stack.all_up()
    intervals = stack.prom.values("tslcd_sweep_interval_seconds", "probe")
    assert intervals["icmp"] == 1.0 and intervals.get("snmp", 10.0) == 10.0, intervals
    margin = stack.prom.values("3 * tslcd_sweep_interval_seconds - (time() - tslcd_sweep_last_timestamp_seconds)",
                               "probe")
    assert set(margin) == set(intervals) and all(v > 0 for v in margin.values()), margin
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules" / "tslcd-alerts.yml").read_text(encoding="utf-8"))
    (rule,) = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "TslcdSweepsStale"]
    assert stack.prom.query(rule["expr"]) == []
    assert not stack.prom.alerts("TslcdSweepsStale", "pending") and not stack.prom.alerts("TslcdSweepsStale")
    assert "> 3 * (" in rule["expr"]
    always = stack.prom.query(rule["expr"].replace("> 3 * (", "> 0 * (", 1))
    # icmp always (its interval, or the fallback); snmp polls only when tslcd exports their interval.
    assert sorted((s["metric"]["job"], s["metric"].get("probe")) for s in always) == sorted(
        ("tslcd", probe) for probe in set(intervals) | {"icmp"})
    assert "snmp" in stack.prom.values("tslcd_sweep_last_timestamp_seconds", "probe")


def _alert_for(stack: Stack, name: str, code: str) -> dict[str, Any] | None:
    return next((a for a in stack.prom.alerts(name) if a["labels"].get("code") == code), None)


def test_snmp_from_real_agents_feeds_the_panels_and_the_snmp_alerts(stack: Stack) -> None:
    """S1 and S2 are polled by tslcd over SNMP from their own snmpsim agents. S1's uplink moves
    and its router reboots; S2's uplink is down. Then S2's agent stops while S2 still answers
    ping: TslcdSnmpDownIcmpUp fires for S2, and only for S2."""
    stack.all_up()
    start = time.time()
    snmp_up = f'tslcd_snmp_up{{code=~"{S1}|{S2}"}}'
    wait_for("S1 and S2 answer SNMP", lambda: stack.prom.values(snmp_up, "code") == {S1: 1.0, S2: 1.0})
    assert stack.prom.values(f'tslcd_uplink_oper_up{{code=~"{S1}|{S2}"}}', "code") == {S1: 1.0, S2: 0.0}
    uptime = stack.prom.values(f'tslcd_snmp_sys_uptime_seconds{{code="{S1}"}}', "code")[S1]
    assert 0 <= uptime <= REBOOT_EVERY_S + 1
    # The recording's error counters (4 in, 1 out); tslcd counts them again after each reboot
    # (a restarted agent's counters are all new), so per boot, from one scrape:
    errors = stack.prom.values(f'tslcd_uplink_errors_total{{code="{S1}"}} / on (code) group_left () '
                               f'(tslcd_node_reboots_total{{code="{S1}"}} + 1)', "direction")
    assert errors == {"receive": 4.0, "transmit": 1.0}
    # The uplink moves at 3000 B/s in and 1200 B/s out (snmpsim's clock): the traffic panel's rate.
    inbound = f'rate(tslcd_uplink_receive_bytes_total{{code="{S1}"}}[30s]) * 8'
    wait_for("S1's inbound traffic in bits per second", lambda: stack.prom.values(inbound, "code").get(S1, 0) > 0)
    assert stack.prom.values(f'tslcd_snmp_ping_only{{code=~"{S1}|{S2}"}}', "code") == {S1: 0.0, S2: 0.0}
    # S1 "reboots" every REBOOT_EVERY_S: tslcd counts it and the reboot alert names the commune.
    rebooted = wait_for("TslcdRouterRebooted for S1", lambda: _alert_for(stack, "TslcdRouterRebooted", S1),
                        2 * REBOOT_EVERY_S + 20)
    assert rebooted["labels"]["name"] == NAMES[S1] and rebooted["labels"]["area"] == AREA_B
    assert stack.prom.values(f'tslcd_node_reboots_total{{code="{S1}"}}', "code")[S1] >= 1
    down = wait_for("TslcdUplinkDown for S2", lambda: _alert_for(stack, "TslcdUplinkDown", S2))
    assert NAMES[S2] in down["annotations"]["summary"] and AREA_B in down["annotations"]["summary_en"]
    assert not _alert_for(stack, "TslcdUplinkDown", S1)
    try:
        stack.agents.stop(S2)
        alert = wait_for("TslcdSnmpDownIcmpUp firing for S2", lambda: _alert_for(stack, "TslcdSnmpDownIcmpUp", S2))
        assert alert["labels"]["name"] == NAMES[S2] and alert["labels"]["area"] == AREA_B
        assert alert["labels"]["severity"] == "warning"
        for key in ("summary", "description", "summary_en", "description_en"):
            assert NAMES[S2] in alert["annotations"][key] and AREA_B in alert["annotations"][key], key
        # While it fires, S2 answers ping, not SNMP, and tslcd itself says "ping only".
        assert stack.prom.values(f'tslcd_node_up{{code="{S2}"}}', "code") == {S2: 1.0}
        assert stack.prom.values(f'tslcd_snmp_ping_only{{code=~"{S1}|{S2}"}}', "code") == {S1: 0.0, S2: 1.0}
        assert stack.prom.values(snmp_up, "code") == {S1: 1.0, S2: 0.0}
        data = get_json(stack.prom.url + "api/v1/query_range",
                        query=f'ALERTS{{alertname="TslcdSnmpDownIcmpUp", code="{S1}"}}',
                        start=str(start), end=str(time.time()), step="1")
        assert data["status"] == "success" and data["data"]["result"] == [], "S1's agent answers: no alert"
    finally:
        stack.agents.start(S2)
    wait_for("S2 answers SNMP again", lambda: stack.prom.values(snmp_up, "code") == {S1: 1.0, S2: 1.0})
