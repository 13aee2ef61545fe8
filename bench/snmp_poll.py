"""Benchmark: tslcd's SNMP poller against net-snmp's snmpget/snmpbulkget, on the same local snmpd agents.

    .venv/bin/python bench/snmp_poll.py [--nodes 20000] [--agents 20] [--versions 2c 3] [--polls 3]
                                        [--sample 1000] [--worker] [--spread S] [--timeout S] [--retries N]
                                        [--append docs/benchmarks.md]

Agents: ``--agents`` net-snmp snmpd processes, each listening on its share of ``--nodes``
distinct loopback addresses in 127.77.0.0/16 (one port), so every node is its own
target (its own transport address, as in a real network) and the agents' work is
spread over several processes. Each agent has its own SNMP engine ID: a real network has
one per node, and pysnmp's v3 cost at first contact grows with the engines it meets
(``--agents 2000`` is as many as fit in this machine's memory; bench/usm_engines.py
measures that cost up to 20,000 engines without a network). Each node has uplink ``lo``.

tslcd: one ``SnmpPoller`` polls every node (``max_in_flight`` 200): the first poll
registers the targets in pysnmp (and, v3, discovers each agent's engine); the uplink
discoveries (GETBULK + GET) are spread over the next five polls (a node waiting for its
turn gets a GET of the system group); then
every poll is one 8-varbind GET per node. net-snmp: one ``snmpget`` process per node for the
same 8 OIDs (and one ``snmpbulkget`` per node for the discovery), on a sample of nodes,
``--jobs`` at a time; its figures are scaled from the sample to ``--nodes``.
CPU is user+sys: the poller's own process, the snmpget children (``RUSAGE_CHILDREN``),
and the agents (from /proc). Everything runs on this machine: the agents take CPU from
the same cores the pollers use; "others" is the rest of the machine's busy time during a poll
(other people's jobs), printed with the load average so that a disturbed run says so.

``--worker`` polls through ``SnmpWorker`` (the SNMP worker process ``tslcd run`` uses, ``snmp.worker``)
instead of an ``SnmpPoller`` in this process: its CPU is the worker's (from /proc) plus this process's.
``--spread``, ``--timeout`` and ``--retries`` set what ``tslcd run`` would (bench/service.py runs it with
spread 30 s, timeout 2 s, 1 retry); ``--sample 0`` skips net-snmp. Packets go to 127.77.0.0/16 only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydantic import SecretStr  # noqa: E402

from inventory.model import Node  # noqa: E402
from monitor.config import SnmpProfile  # noqa: E402
from monitor.lab.agents import Agent, UsmUser, free_udp_port, start_snmpd  # noqa: E402
from monitor.probes.snmp import SnmpPoller  # noqa: E402
from monitor.runtime.snmp_worker import SnmpWorker  # noqa: E402

COMMUNITY = "bench-c0mmunity"
USER = UsmUser("bench", "sha", "bench-auth-key", "aes128", "bench-priv-key")
INTERVAL_S = 60.0  # the default snmp.interval_s
GET_OIDS = ["1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.31.1.1.1.1.1", "1.3.6.1.2.1.2.2.1.8.1",
            "1.3.6.1.2.1.31.1.1.1.6.1", "1.3.6.1.2.1.31.1.1.1.10.1", "1.3.6.1.2.1.2.2.1.14.1",
            "1.3.6.1.2.1.2.2.1.20.1"]
BULK_OIDS = ["1.3.6.1.2.1.1.1", "1.3.6.1.2.1.1.2", "1.3.6.1.2.1.1.3", "1.3.6.1.2.1.1.5", "1.3.6.1.2.1.31.1.1.1.1"]


def address(i: int) -> str:
    return f"127.77.{i // 250}.{i % 250 + 1}"


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def cpu_of(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / tick


def machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine since boot (/proc/stat: all but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Row:
    tool: str
    version: str
    what: str
    nodes: int
    requests: int
    failed: int
    wall_s: float
    cpu_s: float
    agents_cpu_s: float
    scaled_from: int = 0  # sample size when figures are scaled
    others_cpu_s: float = 0.0  # the rest of the machine (other people's jobs) during the same interval
    load: float = 0.0  # 1-minute load average at the end

    @property
    def gets_per_s(self) -> float:
        return self.requests / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_ms_per_node(self) -> float:
        return 1000 * self.cpu_s / self.nodes


def start_agents(nodes: int, agents: int) -> list[Agent]:
    """``agents`` snmpd, each on its share of the addresses and with its own SNMP engine ID (as routers have)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    per = -(-nodes // agents)
    port = free_udp_port()
    shares = [[address(i) for i in range(a * per, min(nodes, (a + 1) * per))] for a in range(agents)]

    def start(a: int) -> Agent:
        return start_snmpd(communities=[COMMUNITY], users=[USER], hosts=shares[a], port=port,
                           sys_name=f"bench-{a}", extra_config=f"engineID bench-engine-{a}\n", deadline_s=120)

    started: list[Agent] = []
    try:
        with ThreadPoolExecutor(8) as pool:  # snmpd takes ~0.2 s to start: 2,000 of them in under a minute
            for agent in pool.map(start, [a for a in range(agents) if shares[a]]):
                started.append(agent)
    except BaseException:
        for agent in started:
            agent.stop()
        raise
    return started


def profiles(port: int, timeout_s: float = 5, retries: int = 1) -> dict[str, SnmpProfile]:
    return {
        "2c": SnmpProfile(version="2c", community=SecretStr(COMMUNITY), port=port, timeout_s=timeout_s,
                          retries=retries),
        "3": SnmpProfile(version="3", user=USER.name, auth_protocol="sha", auth_key=SecretStr(USER.auth_key),
                         priv_protocol="aes128", priv_key=SecretStr(USER.priv_key), port=port, timeout_s=timeout_s,
                         retries=retries),
    }


async def bench_tslcd(version: str, nodes: int, port: int, polls: int, agent_pids: list[int],
                      in_flight: int, *, worker: bool = False, spread_s: float = 0.0, timeout_s: float = 5,
                      retries: int = 1) -> list[Row]:
    poller: SnmpPoller | SnmpWorker
    if worker:
        poller = SnmpWorker(profiles(port, timeout_s, retries), max_in_flight=in_flight, log_level="warning")
    else:
        poller = SnmpPoller(profiles(port, timeout_s, retries), max_in_flight=in_flight)
    tool = "tslcd worker (pysnmp)" if worker else "tslcd (pysnmp)"
    inventory = [Node(f"n{i}", f"node {i}", "commune", "Bench", address=address(i), snmp=version, uplink="lo")
                 for i in range(nodes)]
    rows: list[Row] = []
    try:
        for k in range(polls):
            pid = poller.pid if isinstance(poller, SnmpWorker) else None  # None before the first poll starts it
            worker0 = cpu_of([pid]) if pid else 0.0
            c0, a0, m0, w0 = cpu_self(), cpu_of(agent_pids), machine_busy_s(), time.perf_counter()
            readings = await poller.poll(inventory, spread_s=spread_s)
            wall, agents_cpu = time.perf_counter() - w0, cpu_of(agent_pids) - a0
            now = poller.pid if isinstance(poller, SnmpWorker) else None
            # A worker this poll started: all its CPU (its start and imports included) is this poll's.
            worker_cpu = cpu_of([now]) - (worker0 if now == pid else 0.0) if now else 0.0
            cpu = cpu_self() - c0 + worker_cpu
            others = max(0.0, machine_busy_s() - m0 - cpu - agents_cpu)
            failed = [r for r in readings if not r.ok]
            if failed:
                print(f"  {len(failed)} failed, e.g. {failed[0].code}: {failed[0].reason.value}: {failed[0].detail}",
                      flush=True)
            found = sum(r.requests >= 2 for r in readings)  # GETBULK + GET: a discovery
            what = (f"first poll (targets, {found:,} discoveries)" if k == 0 and found else
                    "first poll (targets)" if k == 0 else
                    f"poll {k + 1} ({found:,} discoveries)" if found else f"poll {k + 1} (steady)")
            rows.append(Row(tool, version, what, nodes, sum(r.requests for r in readings), len(failed),
                            wall, cpu, agents_cpu, others_cpu_s=others, load=os.getloadavg()[0]))
            print(f"  {tool} v{version} {what}: wall {wall:.1f} s, CPU {cpu:.1f} s ({1000 * cpu / nodes:.2f} ms a "
                  f"node), agents {agents_cpu:.1f} s, others {others:.1f} s, load {os.getloadavg()[0]:.2f}, "
                  f"RSS {rss_mb(now or 'self'):.0f} MB", flush=True)
    finally:
        poller.close()
    return rows


def netsnmp_args(version: str) -> list[str]:
    if version == "2c":
        return ["-v2c", "-c", COMMUNITY]
    return ["-v3", "-l", "authPriv", "-u", USER.name, "-a", "SHA", "-A", USER.auth_key, "-x", "AES",
            "-X", USER.priv_key]


def bench_netsnmp(tool: str, version: str, nodes: int, sample: int, port: int, jobs: int,
                  agent_pids: list[int]) -> Row:
    base = [tool, *netsnmp_args(version), "-t", "5", "-r", "1", "-Oqv"]
    extra = ["-Cn4", "-Cr16"] if tool == "snmpbulkget" else []
    oids = BULK_OIDS if tool == "snmpbulkget" else GET_OIDS
    step = max(1, nodes // sample)
    picks = [address(i) for i in range(0, nodes, step)][:sample]

    def one(addr: str) -> bool:
        p = subprocess.run([*base, *extra, f"{addr}:{port}", *oids], capture_output=True, timeout=60,
                           env={**os.environ, "MIBS": ""})
        return p.returncode == 0

    c0, a0, w0 = cpu_children(), cpu_of(agent_pids), time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        ok = list(pool.map(one, picks))
    wall, cpu, agents_cpu = time.perf_counter() - w0, cpu_children() - c0, cpu_of(agent_pids) - a0
    scale = nodes / len(picks)
    row = Row(f"net-snmp {tool}", version, "process per node", nodes, nodes, round(ok.count(False) * scale),
              wall * scale, cpu * scale, agents_cpu * scale, scaled_from=len(picks))
    print(f"  {tool} v{version}: {len(picks)} nodes in {wall:.1f} s, CPU {cpu:.1f} s -> scaled to {nodes}: "
          f"wall {row.wall_s:.0f} s, CPU {row.cpu_s:.0f} s", flush=True)
    return row


def table(rows: list[Row]) -> str:
    out = ["| tool | SNMP | what | nodes | requests | failed | GETs/s | wall s | CPU s | CPU ms/node | agents CPU s "
           "| others CPU s | load |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        nodes = f"{r.nodes:,}" + (f" (from {r.scaled_from:,})" if r.scaled_from else "")
        out.append(f"| {r.tool} | v{r.version} | {r.what} | {nodes} | {r.requests:,} | {r.failed} | "
                   f"{r.gets_per_s:,.0f} | {r.wall_s:.1f} | {r.cpu_s:.1f} | {r.cpu_ms_per_node:.2f} | "
                   f"{r.agents_cpu_s:.1f} | {r.others_cpu_s:.1f} | {r.load:.2f} |")
    return "\n".join(out)


def machine() -> str:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    import pysnmp

    netsnmp = subprocess.run(["snmpget", "--version"], capture_output=True, text=True).stderr.strip()
    return (f"{os.cpu_count()} vCPU ({cpu}), {platform.platform()}, CPython {platform.python_version()}, "
            f"pysnmp {pysnmp.__version__}, {netsnmp}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=20_000)
    ap.add_argument("--agents", type=int, default=20,
                    help="snmpd processes sharing the nodes' addresses, each its own SNMP engine (v3 engine ID); "
                         "a real network has one per node: 2,000 agents take about 8 GB of memory")
    ap.add_argument("--versions", nargs="+", default=["2c", "3"], choices=["2c", "3"])
    ap.add_argument("--polls", type=int, default=7,
                    help="tslcd polls per version (polls 2-6 share the uplink discoveries)")
    ap.add_argument("--sample", type=int, default=1000, help="nodes net-snmp polls, scaled to --nodes (0: none)")
    ap.add_argument("--jobs", type=int, default=8, help="net-snmp processes at a time")
    ap.add_argument("--in-flight", type=int, default=200, help="tslcd's max_in_flight")
    ap.add_argument("--worker", action="store_true", help="poll through SnmpWorker (snmp.worker), as tslcd run does")
    ap.add_argument("--spread", type=float, default=0.0, metavar="S",
                    help="spread each poll's sends over S seconds (tslcd run: snmp.spread x interval, 30 s)")
    ap.add_argument("--timeout", type=float, default=5.0, help="the profiles' timeout_s (tslcd's default: 2)")
    ap.add_argument("--retries", type=int, default=1, help="the profiles' retries")
    ap.add_argument("--append", metavar="MD", help="append the results as a section of this Markdown file")
    args = ap.parse_args()

    print(f"starting {args.agents} snmpd for {args.nodes} addresses ...", flush=True)
    t0 = time.perf_counter()
    agents = start_agents(args.nodes, args.agents)
    print(f"  agents up in {time.perf_counter() - t0:.1f} s", flush=True)
    pids = [a.pid for a in agents]
    port = agents[0].port
    rows: list[Row] = []
    try:
        for version in args.versions:
            rows += asyncio.run(bench_tslcd(version, args.nodes, port, args.polls, pids, args.in_flight,
                                            worker=args.worker, spread_s=args.spread, timeout_s=args.timeout,
                                            retries=args.retries))
            if args.sample > 0:
                rows.append(bench_netsnmp("snmpbulkget", version, args.nodes, args.sample, port, args.jobs, pids))
                rows.append(bench_netsnmp("snmpget", version, args.nodes, args.sample, port, args.jobs, pids))
    finally:
        for a in agents:
            a.stop()
    text = table(rows)
    print()
    print(text)
    verdicts = []
    for version in args.versions:
        mine = [r for r in rows if r.tool.startswith("tslcd") and r.version == version]
        for label, polls in (("first", mine[:1]), ("steady", [r for r in mine if "steady" in r.what]),
                             ("worst", mine)):
            if polls:
                worst = max(r.wall_s * 20_000 / r.nodes for r in polls)
                verdict = "fits" if worst <= INTERVAL_S else f"misses by {worst - INTERVAL_S:.0f} s"
                verdicts.append(f"v{version}: {label} 20,000-node poll takes {worst:.0f} s: {verdict} the "
                                f"{INTERVAL_S:.0f} s interval")
    for v in verdicts:
        print(v)
    if args.append:
        path = Path(args.append)
        section = (f"\n## SNMP poll\n\n<!-- bench/snmp_poll.py --nodes {args.nodes} --agents {args.agents} -->\n\n"
                   f"{len(agents)} agents (SNMP engines) for {args.nodes:,} nodes.\n\n"
                   f"**Machine:** {machine()}.\n\n{text}\n\n" + "\n".join(f"- {v}" for v in verdicts) + "\n")
        existing = path.read_text(encoding="utf-8") if path.exists() else ""  # re-read right before writing
        path.write_text(existing.rstrip("\n") + "\n" + section, encoding="utf-8")
        print(f"appended to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
