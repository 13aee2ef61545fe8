"""Benchmark: the whole service, side by side with the stack operators would deploy instead, on loopback.

    .venv/bin/python bench/service.py [--nodes 2000 20000 40000] [--versions 2c 3] [--warmup 420] [--window 300]
                                      [--agents N] [--only tslcd|stack] [--logs DIR] [--json F]
                                      [--append docs/benchmarks.md]

For each size (``--nodes``), this starts N nodes on loopback: ``--agents`` net-snmp ``snmpd`` processes
(bench/snmp_poll.py's ``start_agents``), each its own SNMP engine, listening on its share of N distinct
addresses in 127.77.0.0/16 (one UDP port), which the kernel also answers pings on. By default as many agents as
memory allows (about 3.5-4.5 MB each, keeping room for the rest: ``default_agents``), at most one per node; at
40,000 nodes the stack's Prometheus alone needs about 16 GB, which leaves a 24 GB machine room for a few hundred.
Agents cost CPU even when nobody polls them (net-snmp reloads its interface table every 3 s and its CPU and disk
statistics every 5 s: about 0.2 ms of CPU a second each, so 3,000 agents take half a core of the machine the
pollers run on); ``--agents`` trades engines for that CPU, and the report prints it. Then, for each SNMP version
(``--versions``: v2c with a community, v3 authPriv HMAC-SHA/AES-128), one after the other on the same agents:

(a) **tslcd**: ``tslcd run`` with the default intervals (ICMP sweep every 30 s, 3 echoes, 1 s timeout, the
    default packet-rate cap; SNMP poll every 60 s in its worker processes, ``snmp.worker`` true, one worker per
    25,000 nodes by default; profile timeout 2 s, 1 retry),
    a SQLite history in a temporary folder, scraped every 30 s by a real Prometheus (Debian's ``prometheus``);
(b) **stack**: Debian's ``prometheus-blackbox-exporter`` (ICMP module, one echo per probe, 5 s timeout) and
    ``prometheus-snmp-exporter`` (a hand-written snmp.yml module GETting the OIDs tslcd polls: sysUpTime, sysName
    and the uplink's ifName, ifOperStatus, ifHCInOctets, ifHCOutOctets, ifInErrors, ifOutErrors; same timeout and
    retries as tslcd's profile), each on its own 127.0.0.1 port with its config in a temporary folder (their
    systemd services are never used), and the same Prometheus binary scraping blackbox per target every 30 s
    and snmp_exporter per target every 60 s (file_sd, ``__param_target`` relabelling, a ``code`` label per
    target, scrape timeout 10 s).

Each runs for ``--warmup`` seconds (tslcd's first SNMP polls discover the uplinks over 6 polls) and then a
measured ``--window``. Per process, from /proc: CPU (utime+stime over the window, in cores), peak RSS (VmHWM, since
start) and RSS growth over the window (VmRSS at its end minus at its start), and for a side with several processes
their highest total RSS and PSS at one moment (sampled), and each side's total RSS averaged over the first
and the last tenth of the window (whether memory grows: with ``--window 3600``, the target "flat over an hour" is
checked on it, at most 1 % more at the end); also the agents' CPU, this script's,
and the rest of the machine's (other people's jobs: /proc/stat busy time minus everything measured here).
Then, through Prometheus' API at the end of the window: sweep and poll times against their intervals (tslcd:
its sweep/poll duration gauges and its worker's "snmp poll" log lines, every poll; the stack: how often each
target was scraped, the slowest scrape, Prometheus' own interval quantiles), and false failures: nodes
reported down (or SNMP-failed) at any point of the window although every agent was alive and loopback answers.
The figures, the ratios tslcd / exporters and Prometheus(tslcd) / Prometheus(stack), and PASS/MISS against the
targets of the issue are printed as Markdown (``--append`` adds them to a file as a section; ``--json`` writes
every figure). Prometheus loads no rules on either side: both sides are compared on scraping alone.

Packets go to 127.0.0.0/8 only (agents and exporters on loopback addresses; Prometheus and the exporters listen
on 127.0.0.1). Every process started here is stopped by its PID at the end, temporary folders are removed.
The default run (3 sizes, 2 versions, both stacks, 12 minutes each) takes about 2.5 hours; use small sizes and
short windows (``--nodes 2000 --warmup 150 --window 90``) to try it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import snmp_poll  # noqa: E402  (bench/snmp_poll.py: the agents, their addresses and credentials)
import yaml  # noqa: E402

from monitor.config import Snmp  # noqa: E402
from monitor.lab.agents import Agent  # noqa: E402

PROMETHEUS = shutil.which("prometheus")
BLACKBOX = shutil.which("prometheus-blackbox-exporter")
SNMP_EXPORTER = shutil.which("prometheus-snmp-exporter")

ICMP_INTERVAL_S = 30  # tslcd's icmp.interval_s, and the stack's blackbox scrape interval
SNMP_INTERVAL_S = 60  # tslcd's snmp.interval_s, and the stack's snmp_exporter scrape interval
SCRAPE_S = 30  # Prometheus scraping tslcd
SCRAPE_TIMEOUT_S = 10
SNMP_TIMEOUT_S = 2  # tslcd's profile default (monitor.config.SnmpProfile), given to snmp_exporter too
SNMP_RETRIES = 1
SPREAD = Snmp().spread  # tslcd's default: a poll's sends are spread over this share of the interval
BLACKBOX_TIMEOUT_S = 5
AGENT_MB = 4.5  # one snmpd: 3.3 MB anonymous + page tables and sockets (its 9.6 MB of file pages are shared)
PROVINCE = "Tỉnh Thử"  # no official province: its 5-digit codes are neither checked nor warned about
AREAS = 100
SAMPLE_S = 5.0
TICK = os.sysconf("SC_CLK_TCK")

# The uplink is `lo`, ifIndex 1, on every agent (monitor/probes/snmp/oids.py for the names).
UPLINK_GET = [
    ("sysUpTime", "1.3.6.1.2.1.1.3", "gauge", False),
    ("sysName", "1.3.6.1.2.1.1.5", "DisplayString", False),
    ("ifName", "1.3.6.1.2.1.31.1.1.1.1", "DisplayString", True),
    ("ifOperStatus", "1.3.6.1.2.1.2.2.1.8", "gauge", True),
    ("ifHCInOctets", "1.3.6.1.2.1.31.1.1.1.6", "counter", True),
    ("ifHCOutOctets", "1.3.6.1.2.1.31.1.1.1.10", "counter", True),
    ("ifInErrors", "1.3.6.1.2.1.2.2.1.14", "counter", True),
    ("ifOutErrors", "1.3.6.1.2.1.2.2.1.20", "counter", True),
]


# -- processes -------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A child process with its output in a log file; ``stop()`` ends it by its PID (TERM, then KILL)."""

    def __init__(self, name: str, argv: list[str], log: Path, cwd: Path = ROOT) -> None:
        self.name, self.log = name, log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def kill_pid(pid: int) -> None:
    """End a process we started (e.g. tslcd's worker, should it outlive tslcd) by its PID."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def wait_for(what: str, probe: Callable[[], Any], deadline_s: float, alive: Proc | None = None) -> Any:
    end = time.monotonic() + deadline_s
    last: object = None
    while time.monotonic() < end:
        if alive is not None and not alive.alive():
            raise RuntimeError(f"{alive.name} exited while waiting for {what}:\n{alive.output()[-3000:]}")
        try:
            got = probe()
        except (OSError, ValueError, KeyError) as e:
            got, last = None, e
        if got:
            return got
        time.sleep(0.5)
    raise RuntimeError(f"timed out after {deadline_s:.0f} s waiting for {what} (last: {last!r})")


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as r:
        return bool(r.status == 200)


# -- /proc -----------------------------------------------------------------------------------------------------


@dataclass
class PSample:
    ticks: int
    rss_kb: int
    hwm_kb: int
    pss_kb: int = 0  # proportional set size: pages shared with other processes (e.g. tslcd's worker) split


def read_proc(pid: int) -> PSample | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    rss = hwm = 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    if fields[0] == "Z":
        return None
    pss = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
                break
    return PSample(int(fields[11]) + int(fields[12]), rss, hwm, pss)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo and len(out) < 1000:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*/children") if Path(f"/proc/{p}").exists() else []:
            with contextlib.suppress(OSError):
                for c in task.read_text().split():
                    out.append(int(c))
                    todo.append(int(c))
    return out


def ticks_of(pids: Iterable[int]) -> int:
    total = 0
    for pid in pids:
        s = read_proc(pid)
        if s is not None:
            total += s.ticks
    return total


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = f[3] + f[4]
    total = sum(f[:8])
    return total - idle, total


def mem_available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Role:
    """One measured process (or process tree, e.g. tslcd and its SNMP worker)."""

    label: str
    root: Proc
    tree: bool = False  # include descendants, each its own row
    pids: dict[int, str] = field(default_factory=dict)  # pid -> label, every one seen

    def current(self) -> list[int]:
        pids = [self.root.pid] + (descendants(self.root.pid) if self.tree else [])
        for pid in pids:
            if pid not in self.pids:
                self.pids[pid] = self.label if pid == self.root.pid else child_label(self.label, cmdline(pid))
        return pids


def child_label(parent: str, cmd: str) -> str:
    if "resource_tracker" in cmd:
        return f"{parent} (resource tracker)"
    if "snmp_worker" in cmd or "multiprocessing" in cmd:
        return f"{parent} (SNMP worker)"
    return f"{parent} (child)"


class Meter:
    """Samples the roles' processes every SAMPLE_S; the window's CPU and RSS from the samples at its ends."""

    def __init__(self, roles: list[Role], agents: list[Agent], min_free_mb: float) -> None:
        self.roles, self.agent_pids, self.min_free_mb = roles, [a.pid for a in agents], min_free_mb
        self.samples: list[tuple[float, dict[int, PSample]]] = []
        self.window: tuple[float, float] | None = None
        self.start: dict[str, Any] = {}
        self.end: dict[str, Any] = {}

    def sample(self) -> dict[int, PSample]:
        got: dict[int, PSample] = {}
        for role in self.roles:
            for pid in role.current():
                s = read_proc(pid)
                if s is not None:
                    got[pid] = s
        self.samples.append((time.time(), got))
        return got

    def mark(self) -> dict[str, Any]:
        return {"t": time.time(), "procs": self.sample(), "agents": ticks_of(self.agent_pids),
                "self": _self_ticks(), "machine": machine_ticks()}

    def run(self, seconds: float, watch: list[Proc], what: str) -> None:
        """Wait ``seconds`` (bounded), sampling; stop early if a watched process exits."""
        end = time.monotonic() + seconds
        next_note = time.monotonic() + 60
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(SAMPLE_S, left))
            self.sample()
            dead = [p for p in watch if not p.alive()]
            if dead:
                raise RuntimeError(f"{', '.join(p.name for p in dead)} exited during the {what}:\n"
                                   + "\n".join(p.output()[-3000:] for p in dead))
            free = mem_available_mb()
            if free < self.min_free_mb:
                raise RuntimeError(f"MemAvailable fell to {free:,.0f} MB during the {what}: stopped, to leave the "
                                   "machine's other users their memory")
            if time.monotonic() >= next_note:
                next_note += 60
                print(f"    ... {what}: {max(0.0, end - time.monotonic()):.0f} s left", flush=True)

    def figures(self) -> dict[str, Any]:
        """Per process: CPU cores over the window, peak RSS MB, RSS growth MB; agents, this script, others."""
        s, e = self.start, self.end
        dt = e["t"] - s["t"]
        rows: dict[str, dict[str, float]] = {}
        for role in self.roles:
            for pid, label in role.pids.items():
                a, b = s["procs"].get(pid), e["procs"].get(pid)
                peak = max((smp[pid].hwm_kb for _, smp in self.samples if pid in smp), default=0)
                if b is None and a is None:
                    if peak:
                        row = rows.setdefault(label, {"cpu": 0.0, "peak_mb": 0.0, "growth_mb": 0.0, "pids": 0})
                        row["peak_mb"] = max(row["peak_mb"], peak / 1024)
                    continue
                cpu = ((b.ticks if b else max(smp[pid].ticks for _, smp in self.samples if pid in smp))
                       - (a.ticks if a else 0)) / TICK / dt
                growth = ((b.rss_kb if b else 0) - (a.rss_kb if a else 0)) / 1024
                row = rows.setdefault(label, {"cpu": 0.0, "peak_mb": 0.0, "growth_mb": 0.0, "pids": 0})
                row["cpu"] += cpu
                row["peak_mb"] = max(row["peak_mb"], peak / 1024)
                row["growth_mb"] += growth
                row["pids"] += 1
        measured = sum(r["cpu"] for r in rows.values())
        times = [t for t, _ in self.samples if s["t"] <= t <= e["t"]]
        stalls = [(round(a, 1), round(b - a - SAMPLE_S, 1))
                  for a, b in zip(times, times[1:], strict=False) if b - a > SAMPLE_S + 3]
        agents = (e["agents"] - s["agents"]) / TICK / dt
        me = (e["self"] - s["self"]) / TICK / dt
        busy = e["machine"][0] - s["machine"][0]
        total = e["machine"][1] - s["machine"][1]
        machine = busy / total * (os.cpu_count() or 1) if total else 0.0
        # Each role's processes together, at the same moment (a sum of each one's own peak adds peaks that
        # happen at different times: a render's in the main process, a poll's in the worker).
        together = {}
        for role in self.roles:
            if len(role.pids) > 1:
                sums = [(sum(smp[p].rss_kb for p in role.pids if p in smp),
                         sum(smp[p].pss_kb for p in role.pids if p in smp)) for _, smp in self.samples]
                together[role.label] = {"rss_mb": max((r for r, _ in sums), default=0) / 1024,
                                        "pss_mb": max((p for _, p in sums), default=0) / 1024}
        # Whether memory grows: each role's total RSS, averaged over the first and the last tenth of the window
        # (a mean over minutes, so that one render's or one poll's moment does not decide it).
        trend = {}
        inside = [(t, smp) for t, smp in self.samples if s["t"] <= t <= e["t"]]
        tenth = max(1, len(inside) // 10)
        if len(inside) >= 4:
            for role in self.roles:
                totals_ = [sum(smp[p].rss_kb for p in role.pids if p in smp) / 1024 for _, smp in inside]
                trend[role.label] = {"first_mb": sum(totals_[:tenth]) / tenth, "last_mb": sum(totals_[-tenth:]) / tenth,
                                     "tenth_s": tenth * SAMPLE_S}
        return {"window_s": dt, "procs": rows, "agents_cpu": agents, "self_cpu": me, "machine_cpu": machine,
                "others_cpu": max(0.0, machine - measured - agents - me), "stalls": stalls, "together": together,
                "trend": trend}


def _self_ticks() -> int:
    t = os.times()
    return round((t.user + t.system) * TICK)


# -- Prometheus ------------------------------------------------------------------------------------------------


class Prom:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        q = urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
        with urllib.request.urlopen(f"{self.url}api/v1/query?{q}", timeout=120) as r:
            data = json.load(r)
        if data.get("status") != "success":
            raise RuntimeError(f"query {expr!r}: {data}")
        return list(data["data"]["result"])

    def value(self, expr: str, at: float) -> float:
        """The sum of an instant vector's values (0 for an empty one)."""
        return sum(float(s["value"][1]) for s in self.query(expr, at))

    def own_metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"{self.url}metrics", timeout=30) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, v = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    out[name] = float(v)
        return out


def start_prometheus(tmp: Path, name: str, cfg: dict[str, Any]) -> tuple[Proc, Prom]:
    assert PROMETHEUS
    path = tmp / f"{name}.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    port = free_port()
    proc = Proc(name, [PROMETHEUS, f"--config.file={path}", f"--storage.tsdb.path={tmp / (name + '-data')}",
                       f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"], tmp / f"{name}.log")
    url = f"http://127.0.0.1:{port}/"
    wait_for(f"{name} ready", lambda: http_ok(url + "-/ready"), 60, proc)
    return proc, Prom(url)


# -- the nodes -------------------------------------------------------------------------------------------------


def code(i: int) -> str:
    return f"{i:05d}"


def write_inventory(path: Path, nodes: int) -> None:
    lines = ["code,name,kind,province,area,address,snmp,uplink"]
    lines += [f"{code(i)},Xã Thử {i},commune,{PROVINCE},Khu {i % AREAS:02d},{snmp_poll.address(i)},bench,lo"
              for i in range(nodes)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def tslcd_config(tmp: Path, version: str, port: int) -> Path:
    if version == "2c":
        profile = {"version": "2c", "community": snmp_poll.COMMUNITY}
    else:
        u = snmp_poll.USER
        profile = {"version": "3", "user": u.name, "auth_protocol": u.auth_protocol, "auth_key": u.auth_key,
                   "priv_protocol": u.priv_protocol, "priv_key": u.priv_key}
    profile |= {"port": port, "timeout_s": SNMP_TIMEOUT_S, "retries": SNMP_RETRIES}
    cfg = {
        "province": PROVINCE, "inventory": str(tmp / "inventory.csv"), "web": {"listen": "127.0.0.1:0"},
        "icmp": {"interval_s": ICMP_INTERVAL_S, "count": 3, "timeout_s": 1.0, "echo_interval_s": 0.2},  # pps: default
        "snmp": {"interval_s": SNMP_INTERVAL_S, "spread": SPREAD, "worker": True},
        "snmp_profiles": {"bench": profile},
        "store": {"path": str(tmp / "history.sqlite")},
        "log_level": "info",
    }
    path = tmp / "tslcd.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def snmp_module(version: str) -> dict[str, Any]:
    metrics = []
    for name, oid, kind, indexed in UPLINK_GET:
        m: dict[str, Any] = {"name": name, "oid": oid, "type": kind, "help": f"{name} (IF-MIB / SNMPv2-MIB)"}
        if indexed:
            m["indexes"] = [{"labelname": "ifIndex", "type": "gauge"}]
        metrics.append(m)
    if version == "2c":
        auth: dict[str, Any] = {"community": snmp_poll.COMMUNITY}
    else:
        u = snmp_poll.USER
        auth = {"username": u.name, "security_level": "authPriv", "password": u.auth_key, "auth_protocol": "SHA",
                "priv_protocol": "AES", "priv_password": u.priv_key}
    return {f"tslcd_v{version}": {
        "get": [oid + (".1" if indexed else ".0") for _, oid, _, indexed in UPLINK_GET],
        "metrics": metrics, "version": 2 if version == "2c" else 3, "retries": SNMP_RETRIES,
        "timeout": f"{SNMP_TIMEOUT_S}s", "auth": auth}}


def probe_job(name: str, path: str, module: str, interval_s: int, exporter: str, targets: Path) -> dict[str, Any]:
    return {"job_name": name, "metrics_path": path, "params": {"module": [module]},
            "scrape_interval": f"{interval_s}s", "scrape_timeout": f"{SCRAPE_TIMEOUT_S}s",
            "file_sd_configs": [{"files": [str(targets)], "refresh_interval": "5m"}],
            "relabel_configs": [
                {"source_labels": ["__address__"], "target_label": "__param_target"},
                {"source_labels": ["__param_target"], "target_label": "instance"},
                {"target_label": "__address__", "replacement": exporter}]}


def write_targets(path: Path, nodes: int, port: int | None) -> None:
    groups = [{"targets": [snmp_poll.address(i) + (f":{port}" if port else "")], "labels": {"code": code(i)}}
              for i in range(nodes)]
    path.write_text(json.dumps(groups), encoding="utf-8")


# -- one phase: start, warm up, measure, query, stop --------------------------------------------------------


@dataclass
class Phase:
    stack: str  # "tslcd" or "stack"
    nodes: int
    version: str
    figures: dict[str, Any] = field(default_factory=dict)
    probing: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def run_phase(kind: str, nodes: int, version: str, agents: list[Agent], args: argparse.Namespace) -> Phase:
    phase = Phase(kind, nodes, version)
    port = agents[0].port
    tmp = Path(tempfile.mkdtemp(prefix=f"tslcd-service-{kind}-"))
    procs: list[Proc] = []
    worker_pids: set[int] = set()
    try:
        if kind == "tslcd":
            write_inventory(tmp / "inventory.csv", nodes)
            cfg = tslcd_config(tmp, version, port)
            tslcd = Proc("tslcd", [sys.executable, "-m", "monitor.cli", "run", "--config", str(cfg)], tmp / "tslcd.log")
            procs.append(tslcd)

            def started() -> str | None:
                m = re.search(r"status page (http://\S+/)", tslcd.output())
                return m.group(1) if m else None

            url = wait_for("tslcd's start-up line", started, 300, tslcd)
            target = urllib.parse.urlsplit(url).netloc
            prom_proc, prom = start_prometheus(tmp, "prometheus-tslcd", {
                "global": {"scrape_interval": f"{SCRAPE_S}s", "scrape_timeout": f"{SCRAPE_TIMEOUT_S}s",
                           "evaluation_interval": "1m"},
                "scrape_configs": [{"job_name": "tslcd", "static_configs": [{"targets": [target]}]}]})
            procs.append(prom_proc)
            roles = [Role("tslcd", tslcd, tree=True), Role("Prometheus (tslcd)", prom_proc)]
        else:
            assert BLACKBOX and SNMP_EXPORTER
            (tmp / "blackbox.yml").write_text(yaml.safe_dump({"modules": {"icmp": {
                "prober": "icmp", "timeout": f"{BLACKBOX_TIMEOUT_S}s", "icmp": {"preferred_ip_protocol": "ip4"}}}}),
                encoding="utf-8")
            (tmp / "snmp.yml").write_text(yaml.safe_dump(snmp_module(version), sort_keys=False), encoding="utf-8")
            bb_port, se_port = free_port(), free_port()
            bb = Proc("blackbox_exporter", [BLACKBOX, f"--config.file={tmp / 'blackbox.yml'}",
                                            f"--web.listen-address=127.0.0.1:{bb_port}", "--log.level=warn"],
                      tmp / "blackbox.log")
            procs.append(bb)
            se = Proc("snmp_exporter", [SNMP_EXPORTER, f"--config.file={tmp / 'snmp.yml'}",
                                        f"--web.listen-address=127.0.0.1:{se_port}", "--log.level=warn"],
                      tmp / "snmp_exporter.log")
            procs.append(se)
            wait_for("blackbox_exporter", lambda: http_ok(f"http://127.0.0.1:{bb_port}/metrics"), 60, bb)
            wait_for("snmp_exporter", lambda: http_ok(f"http://127.0.0.1:{se_port}/metrics"), 60, se)
            write_targets(tmp / "icmp.json", nodes, None)
            write_targets(tmp / "snmp.json", nodes, port)
            prom_proc, prom = start_prometheus(tmp, "prometheus-stack", {
                "global": {"scrape_interval": f"{ICMP_INTERVAL_S}s", "scrape_timeout": f"{SCRAPE_TIMEOUT_S}s",
                           "evaluation_interval": "1m"},
                "scrape_configs": [
                    probe_job("blackbox", "/probe", "icmp", ICMP_INTERVAL_S, f"127.0.0.1:{bb_port}",
                              tmp / "icmp.json"),
                    probe_job("snmp", "/snmp", f"tslcd_v{version}", SNMP_INTERVAL_S, f"127.0.0.1:{se_port}",
                              tmp / "snmp.json")]})
            procs.append(prom_proc)
            roles = [Role("blackbox_exporter", bb), Role("snmp_exporter", se), Role("Prometheus (stack)", prom_proc)]

        meter = Meter(roles, agents, args.min_free_mb)
        print(f"  [{kind} v{version} {nodes:,}] warm-up {args.warmup:.0f} s", flush=True)
        meter.run(args.warmup, procs, "warm-up")
        meter.start = meter.mark()
        print(f"  [{kind} v{version} {nodes:,}] window {args.window:.0f} s", flush=True)
        meter.run(args.window, procs, "window")
        meter.end = meter.mark()
        t0, t1 = meter.start["t"], meter.end["t"]
        phase.figures = meter.figures()
        for role in roles:
            worker_pids |= {pid for pid in role.pids if pid != role.root.pid}
        dead = [a.pid for a in agents if not a.alive()]
        if dead:
            phase.problems.append(f"{len(dead)} agents died (e.g. pid {dead[0]}): failures of their nodes are real")
        if kind == "tslcd":
            phase.probing = tslcd_probing(prom, tmp / "tslcd.log", nodes, t0, t1)
            phase.problems += log_problems(tmp / "tslcd.log", t0)
            lost = tslcd.output().count('"snmp worker lost')  # one worker per 25,000 nodes: several are normal
            if lost:
                phase.problems.append(f"tslcd's SNMP workers were lost and started again {lost} times")
        else:
            phase.probing = stack_probing(prom, nodes, t0, t1)
            for p in procs:
                lines = [ln for ln in p.output().splitlines() if "level=error" in ln]
                if lines:
                    phase.problems.append(f"{p.name}: {len(lines)} error lines, e.g. {lines[0][:300]}")
        phase.probing["prometheus"] = prometheus_self(prom, t1)
    except Exception as e:
        phase.problems.append(f"phase failed: {e}")
        print(f"  [{kind} v{version} {nodes:,}] FAILED: {e}", flush=True)
    finally:
        for p in reversed(procs):
            p.stop()
        end = time.monotonic() + 15  # multiprocessing's resource tracker ends once its pipe closes
        while any(read_proc(pid) is not None for pid in worker_pids) and time.monotonic() < end:
            time.sleep(0.5)
        for pid in worker_pids:  # a worker outliving tslcd would be a bug: say so, and end it
            if read_proc(pid) is not None:
                phase.problems.append(f"process {pid} ({cmdline(pid)[:80]}) outlived its parent; killed")
                kill_pid(pid)
        if args.logs:
            dest = Path(args.logs) / f"{nodes}-v{version}-{kind}"
            dest.mkdir(parents=True, exist_ok=True)
            for f in tmp.glob("*.log"):
                shutil.copy(f, dest / f.name)
        shutil.rmtree(tmp, ignore_errors=True)
    return phase


def _raw(prom: Prom, expr: str, at: float) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
    return [(s["metric"], [(float(t), float(v)) for t, v in s["values"]]) for s in prom.query(expr, at)]


def tslcd_probing(prom: Prom, log: Path, nodes: int, t0: float, t1: float) -> dict[str, Any]:
    w = f"{round(t1 - t0)}s"
    out: dict[str, Any] = {}
    for probe, interval in (("icmp", ICMP_INTERVAL_S), ("snmp", SNMP_INTERVAL_S)):
        durs = dict(next(iter(v for _, v in _raw(prom, f'tslcd_sweep_duration_seconds{{probe="{probe}"}}[{w}]', t1)),
                         []))
        seen: dict[float, float] = {}
        for _, vals in _raw(prom, f'tslcd_sweep_last_timestamp_seconds{{probe="{probe}"}}[{w}]', t1):
            for ts, last in vals:
                if t0 <= last <= t1 and ts in durs:
                    seen[last] = durs[ts]
        # Probes counted between the window's first and last scrape of tslcd: cycles done per interval (1.0 when
        # every sweep or poll ran on time; less when some were skipped because the one before still ran).
        done = failed = span = 0.0
        for labels, vals in _raw(prom, f'tslcd_probes_total{{probe="{probe}"}}[{w}]', t1):
            if len(vals) >= 2:
                delta = vals[-1][1] - vals[0][1]
                done += delta / nodes
                failed += delta if labels.get("result") == "failure" else 0.0
                span = max(span, vals[-1][0] - vals[0][0])
        out[probe] = {"interval_s": interval, "observed": len(seen), "max_s": max(seen.values(), default=None),
                      "mean_s": sum(seen.values()) / len(seen) if seen else None, "cycles": done,
                      "per_interval": done * interval / span if span else None, "failed_probes": failed,
                      "overruns": 0, "skipped": 0}
    # From tslcd's log, in the window: every poll ("snmp poll", logged by the worker: its duration from the first
    # send to the last answer), every overrun warning, every run APScheduler skipped because the one before still
    # ran (a sweep job also folds, records and renders after its probing: it can outlast the interval while its
    # probing did not), and how late the 5 s housekeeping jobs ran (the event loop held by something else).
    polls: list[float] = []
    poll_cpu: list[float] = []  # the worker's CPU for each of those polls (its event loop's thread)
    pooled: list[float] = []  # with several workers, each poll as a whole
    pooled_cpu: list[float] = []
    late: list[float] = []
    job = {"_sweep_job": "icmp", "_snmp_job": "snmp"}
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
            ts = _iso(rec["ts"])
        except (ValueError, KeyError):
            continue
        if not t0 <= ts <= t1:
            continue
        msg = str(rec.get("msg", ""))
        if msg == "snmp poll":  # one worker's poll
            polls.append(float(rec["duration_s"]))
            if "cpu_s" in rec:
                poll_cpu.append(float(rec["cpu_s"]))
        elif msg == "snmp workers poll":  # several workers (snmp.workers): the whole poll, all their CPU
            pooled.append(float(rec["duration_s"]))
            pooled_cpu.append(float(rec["cpu_s"]))
        elif msg == "sweep overran its interval":
            out["icmp"]["overruns"] += 1
        elif msg == "poll overran its interval":
            out["snmp"]["overruns"] += 1
        elif "skipped: maximum number of running instances" in msg:
            for name, probe in job.items():
                if f"Monitor.{name} " in msg:
                    out[probe]["skipped"] += 1
        elif "was missed by" in msg:
            m = re.search(r"was missed by (\d+):(\d+):([\d.]+)", msg)
            if m:
                late.append(int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]))
    if pooled:
        polls, poll_cpu = pooled, pooled_cpu
    out["snmp"]["worker_polls"] = polls
    out["snmp"]["worker_poll_cpu"] = poll_cpu
    if polls:
        out["snmp"]["max_s"] = max(polls + ([out["snmp"]["max_s"]] if out["snmp"]["max_s"] else []))
    out["loop_late"] = {"count": len(late), "max_s": max(late, default=0.0)}
    out["icmp"]["down_nodes"] = prom.value(f"count(min_over_time(tslcd_node_up[{w}]) == 0)", t1)
    out["snmp"]["down_nodes"] = prom.value(f"count(min_over_time(tslcd_snmp_up[{w}]) == 0)", t1)
    out["icmp"]["nodes_seen"] = prom.value(f"count(count_over_time(tslcd_node_up[{w}]))", t1)
    out["snmp"]["nodes_seen"] = prom.value(f"count(count_over_time(tslcd_snmp_up[{w}]))", t1)
    out["icmp"]["lossy_nodes"] = prom.value(f"count(max_over_time(tslcd_icmp_packet_loss_ratio[{w}]) > 0)", t1)
    out["scrape"] = {
        "max_s": prom.value(f'max_over_time(scrape_duration_seconds{{job="tslcd"}}[{w}])', t1),
        "failed": prom.value(f'count_over_time(up{{job="tslcd"}}[{w}]) - sum_over_time(up{{job="tslcd"}}[{w}])', t1),
        "samples": prom.value('scrape_samples_scraped{job="tslcd"}', t1),
        "worker_restarts": prom.value("tslcd_snmp_worker_restarts_total", t1)}
    return out


def _iso(ts: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(ts).timestamp()


def stack_probing(prom: Prom, nodes: int, t0: float, t1: float) -> dict[str, Any]:
    w = f"{round(t1 - t0)}s"
    out: dict[str, Any] = {}
    for job, interval, ok_metric in (("blackbox", ICMP_INTERVAL_S, "probe_success"), ("snmp", SNMP_INTERVAL_S, "")):
        sel = f'{{job="{job}"}}'
        expected = math.floor((t1 - t0) / interval)
        down = (f"count((min_over_time({ok_metric}{sel}[{w}]) == 0) or (min_over_time(up{sel}[{w}]) == 0))"
                if ok_metric else f"count(min_over_time(up{sel}[{w}]) == 0)")
        failed_scrapes = prom.value(f"sum(count_over_time(up{sel}[{w}])) - sum(sum_over_time(up{sel}[{w}]))", t1)
        failed_probes = (prom.value(f"sum(count_over_time({ok_metric}{sel}[{w}])) - "
                                    f"sum(sum_over_time({ok_metric}{sel}[{w}]))", t1) if ok_metric else 0.0)
        seen = prom.value(f"count(count_over_time(up{sel}[{w}]))", t1)
        out[job] = {
            "interval_s": interval, "expected_per_target": expected,
            "scrapes": prom.value(f"sum(count_over_time(up{sel}[{w}]))", t1),
            "short_targets": prom.value(f"count(count_over_time(up{sel}[{w}]) < {expected})", t1) + (nodes - seen),
            "down_nodes": prom.value(down, t1),
            "failed_probes": failed_scrapes + failed_probes,
            "failed_scrapes": failed_scrapes,
            "scrape_max_s": prom.value(f"max(max_over_time(scrape_duration_seconds{sel}[{w}]))", t1),
            "scrape_p99_s": prom.value(f"quantile(0.99, max_over_time(scrape_duration_seconds{sel}[{w}]))", t1),
        }
    out["snmp"]["with_uptime"] = prom.value(f'count(count_over_time(sysUpTime{{job="snmp"}}[{w}]))', t1)
    return out


def prometheus_self(prom: Prom, t1: float) -> dict[str, Any]:
    m = prom.own_metrics()
    out = {"head_series": m.get("prometheus_tsdb_head_series", 0.0)}
    for name, interval in (("30s", "30s"), ("1m", "1m0s")):
        key = f'prometheus_target_interval_length_seconds{{interval="{interval}",quantile="0.99"}}'
        if key in m:
            out[f"interval_p99_{name}"] = m[key]
    return out


def log_problems(log: Path, t0: float) -> list[str]:
    """tslcd's errors and tracebacks (any time), and its warnings other than overruns, in the log."""
    errors, warnings = [], []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if '"level": "error"' in line or '"level": "critical"' in line or "Traceback" in line:
            errors.append(line)
        elif '"level": "warning"' in line and "overran" not in line:
            warnings.append(line)
    out = []
    if errors:
        out.append(f"tslcd logged {len(errors)} errors, e.g. {errors[0][:400]}")
    if warnings:
        out.append(f"tslcd logged {len(warnings)} warnings, e.g. {warnings[0][:400]}")
    return out


# -- report ----------------------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    def first(cmd: list[str]) -> str:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            return (p.stdout or p.stderr).strip().splitlines()[0]
        return "?"

    import icmplib
    import pysnmp

    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return {
        "machine": f"{os.cpu_count()} vCPU ({cpu}), {int(mem) / 1024 / 1024:.0f} GB, {platform.platform()}",
        "python": f"CPython {platform.python_version()}, pysnmp {pysnmp.__version__}, icmplib {icmplib.__version__}",
        "prometheus": first([PROMETHEUS or "prometheus", "--version"]),
        "blackbox": first([BLACKBOX or "prometheus-blackbox-exporter", "--version"]),
        "snmp_exporter": first([SNMP_EXPORTER or "prometheus-snmp-exporter", "--version"]),
        "snmpd": _snmpd_version(),
    }


def _snmpd_version() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        p = subprocess.run(["snmpd", "-v"], capture_output=True, text=True, timeout=30)
        for line in (p.stdout + p.stderr).splitlines():
            if "version" in line.lower():
                return "net-snmp " + line.split(":", 1)[-1].strip()
    return "?"


def _f(x: float | None, fmt: str = "{:.1f}", none: str = "-") -> str:
    return none if x is None else fmt.format(x)


def totals(phase: Phase, prefix: str) -> dict[str, float]:
    rows = [r for k, r in phase.figures.get("procs", {}).items() if k.startswith(prefix)]
    return {"cpu": sum(r["cpu"] for r in rows), "peak_mb": sum(r["peak_mb"] for r in rows),
            "growth_mb": sum(r["growth_mb"] for r in rows)}


def worker_cpu_per_poll(t: Phase | None) -> float | None:
    """CPU seconds tslcd's SNMP worker spent on a poll: the mean of the "snmp poll" log lines' ``cpu_s``
    (each poll's own, measured by the worker), for the polls that ended in the window.

    Without them (an older tslcd), the worker's CPU over the window divided by the polls that ended in it:
    wrong when polls overrun, since the window then holds parts of more polls than end in it (the first
    disturbed 20,000-node run reported 61 s "a poll" that way: its 300 s window held the work of about two
    132 s polls, one every 180 s, and only one of them ended in it).
    """
    if t is None or not t.figures:
        return None
    own = t.probing.get("snmp", {}).get("worker_poll_cpu", [])
    if own:
        return float(sum(own) / len(own))
    polls = len(t.probing.get("snmp", {}).get("worker_polls", []))
    worker = t.figures["procs"].get("tslcd (SNMP worker)")
    return worker["cpu"] * t.figures["window_s"] / polls if worker and polls else None


def window_of(p: Phase | None) -> float:
    return float(p.figures.get("window_s", 0.0)) if p is not None and p.figures else 0.0


def in_interval(p: dict[str, Any]) -> bool:
    """Every sweep (or poll) of the window within its interval: none overran or was skipped, the longest fitted."""
    return (p.get("overruns", 0) == 0 and p.get("skipped", 0) == 0 and p.get("max_s") is not None
            and p["max_s"] <= p["interval_s"])


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(nodes: int, version: str, n_agents: int, phases: dict[str, Phase], args: argparse.Namespace) -> str:
    t, s = phases.get("tslcd"), phases.get("stack")
    out = [f"### {nodes:,} nodes, SNMP v{version} ({n_agents:,} snmpd agents, one SNMP engine each)", ""]
    out += ["| process | CPU (cores) | peak RSS MB | RSS growth over the window MB |", "|---|---:|---:|---:|"]
    for ph in (t, s):
        if ph is None or not ph.figures:
            continue
        for label, r in ph.figures["procs"].items():
            out.append(f"| {label} | {r['cpu']:.3f} | {r['peak_mb']:.0f} | {r['growth_mb']:+.1f} |")
    tt = totals(t, "tslcd") if t and t.figures else None
    ex = (totals(s, "blackbox"), totals(s, "snmp_exporter")) if s and s.figures else None
    ext = {k: ex[0][k] + ex[1][k] for k in ("cpu", "peak_mb", "growth_mb")} if ex else None
    if tt:
        out.append(f"| **tslcd, all processes** | **{tt['cpu']:.3f}** | **{tt['peak_mb']:.0f}** | "
                   f"**{tt['growth_mb']:+.1f}** |")
    if ext:
        out.append(f"| **exporters (blackbox + snmp)** | **{ext['cpu']:.3f}** | **{ext['peak_mb']:.0f}** | "
                   f"**{ext['growth_mb']:+.1f}** |")
    for ph in (t, s):
        if ph is not None and ph.figures:
            f = ph.figures
            for label, m in f.get("together", {}).items():
                out.append(f"| {label}'s processes together, sampled every {SAMPLE_S:.0f} s: highest total RSS; "
                           f"highest total PSS (shared pages counted once) | | {m['rss_mb']:.0f}; {m['pss_mb']:.0f} "
                           "| |")
            for label, m in f.get("trend", {}).items():
                out.append(f"| {label}'s processes together, mean RSS over the window's first {m['tenth_s']:.0f} s and "
                           f"its last {m['tenth_s']:.0f} s | | {m['first_mb']:.0f}; {m['last_mb']:.0f} | "
                           f"{m['last_mb'] - m['first_mb']:+.1f} |")
            out.append(f"| agents during the {ph.stack} window | {f['agents_cpu']:.3f} | | |")
            out.append(f"| rest of the machine during the {ph.stack} window (other people's jobs, and kernel "
                       f"time charged to no process) | {f['others_cpu']:.3f} | | |")
    out += ["", "| probing, over the window | tslcd | stack |", "|---|---|---|"]
    tp, sp = (t.probing if t else {}), (s.probing if s else {})
    ti, ts_ = tp.get("icmp", {}), tp.get("snmp", {})
    bb, sn = sp.get("blackbox", {}), sp.get("snmp", {})
    out.append(
        f"| ICMP, every {ICMP_INTERVAL_S} s | " + (
            f"sweep max {_f(ti.get('max_s'))} s, mean {_f(ti.get('mean_s'))} s ({ti.get('observed', 0)} sweeps seen; "
            f"{window_of(t) / ICMP_INTERVAL_S:.0f} in a window), {ti.get('overruns', 0)} overran, "
            f"{ti.get('skipped', 0)} skipped (the one before still ran)" if ti else "-") + " | " + (
            f"{bb['scrapes']:,.0f} probes ({bb['expected_per_target']} per target expected; {bb['short_targets']:,.0f}"
            f" targets short), slowest scrape {bb['scrape_max_s']:.2f} s (p99 {bb['scrape_p99_s']:.3f} s), "
            f"Prometheus' p99 interval {_f(sp.get('prometheus', {}).get('interval_p99_30s'), '{:.2f}')} s"
            if bb else "-") + " |")
    out.append(
        f"| SNMP, every {SNMP_INTERVAL_S} s | " + (
            f"poll max {_f(ts_.get('max_s'))} s, mean {_f(ts_.get('mean_s'))} s ({len(ts_.get('worker_polls', []))}"
            f" polls logged; {window_of(t) / SNMP_INTERVAL_S:.0f} in a window), {ts_.get('overruns', 0)} "
            f"overran, {ts_.get('skipped', 0)} skipped; worker CPU {_f(worker_cpu_per_poll(t), '{:.1f}')} s a poll"
            if ts_ else "-")
        + " | " + (
            f"{sn['scrapes']:,.0f} polls ({sn['expected_per_target']} per target expected; {sn['short_targets']:,.0f}"
            f" targets short), slowest scrape {sn['scrape_max_s']:.2f} s (p99 {sn['scrape_p99_s']:.3f} s), "
            f"Prometheus' p99 interval {_f(sp.get('prometheus', {}).get('interval_p99_1m'), '{:.2f}')} s"
            if sn else "-") + " |")
    out.append("| false failures, ICMP: nodes reported down that answer | "
               + (f"{ti.get('down_nodes', 0):,.0f} ({ti.get('failed_probes', 0):,.0f} failed probes, "
                  f"{ti.get('lossy_nodes', 0):,.0f} nodes with an echo lost)" if ti else "-") + " | "
               + (f"{bb['down_nodes']:,.0f} ({bb['failed_scrapes']:,.0f} failed scrapes, "
                  f"{bb['failed_probes'] - bb['failed_scrapes']:,.0f} unsuccessful probes)" if bb else "-")
               + " |")
    out.append("| false failures, SNMP: nodes reported failed that answer | "
               + (f"{ts_.get('down_nodes', 0):,.0f} ({ts_.get('failed_probes', 0):,.0f} failed polls)" if ts_ else "-")
               + " | " + (f"{sn['down_nodes']:,.0f} ({sn['failed_probes']:,.0f} failed scrapes)" if sn else "-")
               + " |")
    if tp:
        late = tp.get("loop_late", {})
        out.append(f"| tslcd's event loop: 5 s housekeeping jobs run over 1 s late | {late.get('count', 0)} times, "
                   f"at most {late.get('max_s', 0):.1f} s late | |")
        sc = tp.get("scrape", {})
        out.append(f"| Prometheus scraping tslcd | {sc.get('samples', 0):,.0f} samples per scrape, slowest "
                   f"{sc.get('max_s', 0):.2f} s, {sc.get('failed', 0):.0f} failed | |")
    out.append(f"| series in Prometheus' head | {_f(tp.get('prometheus', {}).get('head_series'), '{:,.0f}')} | "
               f"{_f(sp.get('prometheus', {}).get('head_series'), '{:,.0f}')} |")

    checks: list[tuple[str, bool | None, str]] = []
    pt, ps = (totals(t, "Prometheus") if t and t.figures else None), (totals(s, "Prometheus") if s and s.figures
                                                                       else None)
    if tt and ext and ext["cpu"]:
        out += ["", f"Ratios: tslcd / exporters: CPU **{tt['cpu'] / ext['cpu']:.2f}x**, peak RSS "
                    f"**{tt['peak_mb'] / ext['peak_mb']:.2f}x**" + (
                    f"; Prometheus(tslcd) / Prometheus(stack): CPU **{pt['cpu'] / ps['cpu']:.2f}x**, peak RSS "
                    f"**{pt['peak_mb'] / ps['peak_mb']:.2f}x**" if pt and ps and ps["cpu"] and ps["peak_mb"]
                    else "") + "."]
    false_fail = (ti.get("down_nodes", 0) + ts_.get("down_nodes", 0)) if ti else None
    all_in = None
    if ti and ts_:
        all_in = in_interval(ti) and in_interval(ts_)
    if version == "2c" and nodes == 20_000:
        if tt and ext:
            checks.append(("tslcd CPU <= 0.75x the exporters'", tt["cpu"] <= 0.75 * ext["cpu"],
                           f"{tt['cpu']:.3f} vs {ext['cpu']:.3f} cores ({tt['cpu'] / ext['cpu']:.2f}x)"))
        if tt:
            checks.append(("tslcd peak RSS < 400 MB", tt["peak_mb"] < 400, f"{tt['peak_mb']:.0f} MB"))
        m = (t.figures.get("trend", {}).get("tslcd") if t and t.figures else None)
        if m and t and args.window >= 3600:
            grown = m["last_mb"] - m["first_mb"]
            checks.append(("tslcd's memory flat over an hour: its processes' mean RSS at the window's end at most 1 % "
                           "above its start", grown <= 0.01 * m["first_mb"],
                           f"{m['first_mb']:.0f} MB -> {m['last_mb']:.0f} MB ({grown:+.1f} MB over "
                           f"{t.figures['window_s'] / 60:.0f} min)"))
        if ts_:
            checks.append(("SNMP poll < 50 % of its interval", (ts_.get("max_s") or 1e9) < 0.5 * SNMP_INTERVAL_S,
                           f"max {_f(ts_.get('max_s'))} s of {SNMP_INTERVAL_S} s (snmp.spread {SPREAD} spreads a "
                           f"poll's sends over {SPREAD * SNMP_INTERVAL_S:.0f} s, so it cannot take less; worker "
                           f"CPU {_f(worker_cpu_per_poll(t), '{:.1f}')} s a poll)"))
        if ti:
            checks.append(("ICMP sweep within its interval", in_interval(ti),
                           f"max {_f(ti.get('max_s'))} s of {ICMP_INTERVAL_S} s, {ti.get('overruns', 0)} overran, "
                           f"{ti.get('skipped', 0)} skipped"))
        if false_fail is not None:
            checks.append(("zero false failures", false_fail == 0, f"{false_fail:,.0f} nodes"))
        if pt and ps and ps["cpu"] and ps["peak_mb"]:
            checks.append(("Prometheus(tslcd) <= 0.5x Prometheus(stack), CPU and memory",
                           pt["cpu"] <= 0.5 * ps["cpu"] and pt["peak_mb"] <= 0.5 * ps["peak_mb"],
                           f"CPU {pt['cpu'] / ps['cpu']:.2f}x, peak RSS {pt['peak_mb'] / ps['peak_mb']:.2f}x"))
    if nodes == 40_000 and all_in is not None:
        checks.append(("every sweep and poll within its interval, zero false failures",
                       bool(all_in and false_fail == 0), f"{false_fail:,.0f} nodes down; sweep max "
                       f"{_f(ti.get('max_s'))} s, poll max {_f(ts_.get('max_s'))} s"))
    if version == "3" and nodes == 20_000 and ts_:
        checks.append(("v3 authPriv: every poll within its interval", in_interval(ts_),
                       f"poll max {_f(ts_.get('max_s'))} s of {SNMP_INTERVAL_S} s, {ts_.get('overruns', 0)} overran, "
                       f"{ts_.get('skipped', 0)} skipped"))
    if not checks and all_in is not None:  # a size the issue set no target for: the general ones, for information
        checks.append(("(for information) every sweep and poll within its interval, zero false failures",
                       bool(all_in and false_fail == 0), f"{false_fail:,.0f} nodes down"))
    if checks:
        out += ["", "Targets:", ""]
        out += [f"- **{verdict(bool(ok))}** {what}: {detail}" for what, ok, detail in checks]
    problems = [f"{ph.stack}: {p}" for ph in (t, s) if ph for p in ph.problems]
    if problems:
        out += ["", "Problems seen:", ""] + [f"- {p}" for p in problems]
    for ph in (t, s):
        for at, lost in (ph.figures.get("stalls", []) if ph and ph.figures else []):
            out += ["", f"During the {ph.stack} window this script itself was held {lost:.0f} s past its "
                        f"{SAMPLE_S:.0f} s sampling period (at {time.strftime('%H:%M:%S', time.localtime(at))}): "
                        "the whole machine stalled (e.g. its VM paused), and so did what was measured."]
    others = max((ph.figures.get("others_cpu", 0) for ph in (t, s) if ph and ph.figures), default=0)
    if others > 0.1:
        out += ["", f"Other people's jobs used up to {others:.2f} cores of this machine during a window: the "
                    "figures are disturbed (upper bounds for CPU; sweep and poll times stretched)."]
    return "\n".join(out) + "\n"


# -- main ------------------------------------------------------------------------------------------------------


def default_agents(nodes: int, only: str | None) -> int:
    """As many agents as memory allows, keeping room for the rest: measured at 20,000 nodes, Prometheus scraping
    the exporters peaked at 7.9 GB and the exporters at 1.3 GB (about 0.45 MB a node in all), tslcd and its
    Prometheus at 1.5 GB (0.08 MB a node); plus 2 GB for the other users of the machine."""
    reserve_mb = 2000 + (0.08 if only == "tslcd" else 0.45) * nodes
    return max(1, min(nodes, 4000, int((mem_available_mb() - reserve_mb) / AGENT_MB)))


def stop_agents(agents: list[Agent]) -> None:
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda a: a.stop(), agents))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, nargs="+", default=[2000, 20_000, 40_000])
    ap.add_argument("--versions", nargs="+", default=["2c", "3"], choices=["2c", "3"])
    ap.add_argument("--warmup", type=float, default=420.0, help="seconds before the window (default 7 min)")
    ap.add_argument("--window", type=float, default=300.0, help="measured seconds (default 5 min)")
    ap.add_argument("--agents", type=int, help="snmpd processes (SNMP engines) sharing the nodes' addresses; "
                    "default: as many as memory allows, at most one per node")
    ap.add_argument("--only", choices=["tslcd", "stack"], help="run one side only")
    ap.add_argument("--logs", metavar="DIR", help="keep every process's log here")
    ap.add_argument("--min-free-mb", type=float, default=1500.0,
                    help="stop a run when the machine's MemAvailable falls below this (default %(default)s)")
    ap.add_argument("--json", metavar="F", help="write every figure as JSON")
    ap.add_argument("--append", metavar="MD", help="append the results as a section of this Markdown file")
    args = ap.parse_args()
    missing = [n for n, p in (("prometheus", PROMETHEUS), ("prometheus-blackbox-exporter", BLACKBOX),
                              ("prometheus-snmp-exporter", SNMP_EXPORTER)) if p is None]
    if missing and not (args.only == "tslcd" and "prometheus" not in missing):
        print(f"missing: {', '.join(missing)} (apt-get install {' '.join(missing)})", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("run as root: tslcd and blackbox_exporter need raw ICMP sockets", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    info = versions()
    started = time.strftime("%Y-%m-%d %H:%M")
    print(f"# bench/service.py, {started}\n# {info['machine']}\n# {info['python']}; {info['prometheus']}; "
          f"{info['blackbox']}; {info['snmp_exporter']}; {info['snmpd']}", flush=True)
    sections: list[str] = []
    every: list[dict[str, Any]] = []
    kinds = [args.only] if args.only else ["tslcd", "stack"]
    for nodes in args.nodes:
        n_agents = min(args.agents or default_agents(nodes, args.only), nodes)
        print(f"\n{nodes:,} nodes: starting {n_agents:,} snmpd (MemAvailable {mem_available_mb():,.0f} MB) ...",
              flush=True)
        t = time.monotonic()
        agents: list[Agent] = []
        try:
            agents = snmp_poll.start_agents(nodes, n_agents)
            print(f"  agents up in {time.monotonic() - t:.0f} s, MemAvailable now {mem_available_mb():,.0f} MB",
                  flush=True)
            for version in args.versions:
                phases: dict[str, Phase] = {}
                for kind in kinds:
                    t_phase = time.monotonic()
                    phases[kind] = run_phase(kind, nodes, version, agents, args)
                    print(f"  [{kind} v{version} {nodes:,}] done in {time.monotonic() - t_phase:.0f} s", flush=True)
                text = report(nodes, version, len(agents), phases, args)
                print("\n" + text, flush=True)
                sections.append(text)
                every += [{"nodes": nodes, "version": version, "agents": len(agents), "stack": p.stack,
                           "figures": p.figures, "probing": p.probing, "problems": p.problems}
                          for p in phases.values()]
        finally:
            stop_agents(agents)
        print(f"{nodes:,} nodes: {time.monotonic() - t:.0f} s in all", flush=True)
    head = (f"**Machine:** {info['machine']}; {info['python']}; {info['prometheus']}; {info['blackbox']}; "
            f"{info['snmp_exporter']}; agents {info['snmpd']}. Run {started}, warm-up {args.warmup:.0f} s, window "
            f"{args.window:.0f} s; the two sides ran one after the other on the same agents.")
    if args.json:
        Path(args.json).write_text(json.dumps({"info": info, "args": vars(args), "runs": every}, indent=1),
                                   encoding="utf-8")
    if args.append:
        path = Path(args.append)
        cmd = "bench/service.py " + " ".join(sys.argv[1:])
        section = f"\n## The whole service against blackbox + snmp_exporter\n\n<!-- {cmd} -->\n\n{head}\n\n" + \
            "\n".join(sections)
        existing = path.read_text(encoding="utf-8") if path.exists() else ""  # re-read right before writing
        path.write_text(existing.rstrip("\n") + "\n" + section, encoding="utf-8")
        print(f"appended to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
