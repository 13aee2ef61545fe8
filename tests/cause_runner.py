"""The outage-cause scenarios on real agents, run inside a network namespace of their own (tests/test_causes.py).

    unshare --net python -m tests.cause_runner OUT.json      (as root)

The namespace has only its loopback (and a veth pair: a router's uplink that can go down): no
packet can leave it. Each "router" is a net-snmp snmpd on its own 127.0.0.x address; nftables rules in
the namespace drop what a failure would: echoes only (filtered), everything (a cut line), everything
while the router restarts (power), echoes while the uplink is down (the router still answers SNMP over
another path). The real ICMP engine and SNMP poller watch them through a Monitor; the script writes
what it saw (the causes while the outages last, the causes of the finished ones, the /metrics lines)
to OUT.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from pydantic import SecretStr

from exporters.metrics import render_snapshot
from inventory.model import Inventory, Node
from monitor.config import Config, SnmpProfile
from monitor.core.history import day_of, merge_outages
from monitor.lab.agents import Agent, start_snmpd
from monitor.probes.icmp import IcmpEngine
from monitor.runtime.recorder import Recorder
from monitor.runtime.service import Monitor
from monitor.store import SqlStore

COMMUNITY = "c0mmunity-cause-7"
P = "Đắk Lắk"
CORE = "127.0.0.1"
ROUTERS = {"filtered": "127.0.0.5", "line": "127.0.0.6", "power": "127.0.0.7", "uplink": "127.0.0.8"}
CODES = {"filtered": "24133", "line": "24121", "power": "24154", "uplink": "22015"}
AGG, BEHIND, BEHIND_ADDR = "127.0.0.9", "24169", "127.0.0.10"


def sh(*argv: str, stdin: str | None = None) -> None:
    subprocess.run(argv, input=stdin, text=True, check=True, capture_output=True, timeout=30)


def drop(rules: list[str]) -> None:
    """Replace the namespace's nftables rules with these drops on output (loopback traffic passes there)."""
    body = "\n".join(f"    {r} drop" for r in rules)
    sh("nft", "-f", "-", stdin="flush ruleset\n" + "table inet tslcd_test {\n  chain out {\n"
       "    type filter hook output priority 0; policy accept;\n" + body + "\n  }\n}\n")


async def main(out: Path) -> None:
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "link", "add", "uplink0", "type", "veth", "peer", "name", "far0")  # a router's uplink (veth: no module)
    sh("ip", "link", "set", "far0", "up")
    sh("ip", "link", "set", "uplink0", "up")
    work = Path(tempfile.mkdtemp(prefix="tslcd-causes-", dir=os.environ.get("TSLCD_DEBUG_DIR")))
    agents: dict[str, Agent] = {}
    try:
        for name, addr in ROUTERS.items():
            agents[name] = start_snmpd(communities=[COMMUNITY], hosts=[addr], port=161, sys_name=f"router-{name}",
                                       workdir=work / name)
        # An aggregation node without an SNMP profile (its cause: unknown) and a commune behind it (upstream).
        nodes = [Node("CORE", "Lõi", "core", P, address=CORE),
                 Node("AGG", "Tập trung", "aggregation", P, area="A", address=AGG, parent="CORE"),
                 Node(BEHIND, "Xã phía sau", "commune", P, area="A", address=BEHIND_ADDR, parent="AGG")]
        for name, addr in ROUTERS.items():
            nodes.append(Node(CODES[name], f"Xã {name}", "commune", P, area="A", address=addr, parent="CORE",
                              snmp="v2c", uplink="uplink0" if name == "uplink" else "lo"))
        cfg = Config.model_validate({
            "province": P, "inventory": str(work / "unused.yaml"),
            "icmp": {"interval_s": 1, "count": 1, "timeout_s": 0.3, "echo_interval_s": 0},
            "states": {"down_after": 1, "up_after": 1},
            "snmp": {"interval_s": 10, "worker": False, "down_nodes_max": 10},
            "snmp_profiles": {"v2c": SnmpProfile(version="2c", community=SecretStr(COMMUNITY), port=161,
                                                 timeout_s=0.5, retries=0)},
        })
        store = SqlStore(f"sqlite:///{work}/history.sqlite")
        rec = Recorder(store, cfg)
        rec.max_gap_s = 60.0  # the scenario's sweeps are seconds apart (SNMP polls between them): all observed
        mon = Monitor(cfg, Inventory.of(nodes), IcmpEngine(), recorder=rec)
        try:
            for _ in range(3):  # all up; the agents were started (booted) seconds before any outage
                await mon.sweep_once()
                await mon.poll_snmp_once()
                await asyncio.sleep(1)  # the agents' boot well before the outages (boot_before_s is 2 s here)
            assert all(ns.state == "up" for ns in mon.snapshot.nodes), [(ns.node.code, ns.state) for ns in
                                                                       mon.snapshot.nodes]
            # The failures: echoes dropped (filtered); everything dropped (line; power, whose router restarts);
            # echoes dropped and the uplink down (the router answers SNMP over another path).
            drop([f"ip daddr {ROUTERS['filtered']} icmp type echo-request", f"ip daddr {ROUTERS['line']}",
                  f"ip daddr {ROUTERS['power']}", f"ip daddr {ROUTERS['uplink']} icmp type echo-request",
                  f"ip daddr {AGG}", f"ip daddr {BEHIND_ADDR}"])
            sh("ip", "link", "set", "uplink0", "down")
            for _ in range(2):
                await mon.sweep_once()
                await mon.poll_snmp_once()
            during = {ns.node.code: (ns.state, ns.outage_cause) for ns in mon.snapshot.nodes}
            metrics = [line for line in render_snapshot(mon.snapshot, "nodes").text.decode().splitlines()
                       if line.startswith("tslcd_node_outage_cause{")]
            # The power router restarts (its sysUpTime starts again) and comes back, before the next sweep (the
            # monitor sees no answer in between); so do the others.
            agents["power"].stop()
            drop([])
            agents["power"] = start_snmpd(communities=[COMMUNITY], hosts=[ROUTERS["power"]], port=161,
                                          sys_name="router-power", workdir=work / "power-again")
            sh("ip", "link", "set", "uplink0", "up")
            for _ in range(2):
                await mon.sweep_once()
                await mon.poll_snmp_once()
            after = {code: cause for code, (_, _, cause) in mon.explained.items()}
            states = {ns.node.code: ns.state for ns in mon.snapshot.nodes}
            await mon.sweep_once()  # writes what the last poll concluded
            await rec.on_stop()
            # The history's outages, with the causes the monitor recorded (what the audit and the email read).
            today = day_of(mon.snapshot.taken_at, cfg.tz)
            history = {n.code: [o.why for o in merge_outages(
                (u, p) for h in store.unit_history(n.code, today, today, cfg.tz) for u, p in h.outages)]
                for n in nodes}
            explained_at = {code: since for code, (since, _, _) in mon.explained.items()}
            starts = {n.code: [o.start for o in merge_outages(
                (u, p) for h in store.unit_history(n.code, today, today, cfg.tz) for u, p in h.outages)]
                for n in nodes}
            store.close()
        finally:
            mon.engine.close()
            if mon.snmp is not None:
                mon.snmp.close()
        out.write_text(json.dumps({"during": during, "metrics": metrics, "after": after,  # noqa: ASYNC240
                                   "states": states, "history": history, "starts": starts,
                                   "explained_at": explained_at}), encoding="utf-8")
    finally:
        for a in agents.values():
            a.stop()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
