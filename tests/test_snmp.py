"""monitor.probes.snmp against real agents on 127.0.0.1: snmpsim (recordings of real devices and our edge
cases) and net-snmp's snmpd (v3 authPriv SHA/AES, wrong users and keys). Every failure class has a test.

No sleeps: agents are waited for by probing them (with a deadline), a slow agent is snmpsim's
delay variation or a relay that holds datagrams with a timer, and "stopped mid-poll" is the
relay stopping the agent when it sees the poll's second request.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import re
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from pysnmp.entity import config as pysnmp_config
from pysnmp.hlapi.v3arch.asyncio import SnmpEngine
from pysnmp.proto import rfc1902
from pysnmp.proto.secmod.rfc3414.service import SnmpUSMSecurityModel
from pysnmp.smi.error import NoSuchInstanceError

from exporters.metrics import Renderer
from exporters.status import snmp_row
from inventory.model import Node
from monitor.cli import snmp as snmp_cli
from monitor.config import SnmpProfile
from monitor.core.snapshot import NodeStatus, Snapshot
from monitor.core.snmp import (
    Reason,
    SnmpReading,
    add_deltas,
    fold_readings,
    plan_poll,
    snmp_status,
    uplink_deltas,
)
from monitor.lab.agents import (
    Agent,
    AgentError,
    Interface,
    UsmUser,
    answers,
    free_udp_port,
    install_recording,
    require_loopback,
    router_recording,
    snmpsim_data_file,
    start_snmpd,
    start_snmpsim,
    write_recording,
)
from monitor.probes.snmp import SnmpPoller, describe_profile
from monitor.probes.snmp.profiles import AUTH_PROTOCOLS as _AUTH
from monitor.probes.snmp.profiles import PRIV_PROTOCOLS as _PRIV
from monitor.probes.snmp.pysnmp_patches import PeerKeysUsm as _PeerKeysUsm

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
HERE = Path(__file__).parent
EDGE = HERE / "data" / "snmprec"

# Test secrets: distinctive strings, so that finding one anywhere is a leak.
COMMUNITY = "c0mmunity-Ea-Kao-7"
AUTH_KEY = "authKey-Buon-Ma-Thuot-91"
PRIV_KEY = "privKey-Tuy-Hoa-53"
WRONG = "wrong-key-Krong-Pac-0"
SECRETS = (COMMUNITY, AUTH_KEY, PRIV_KEY, WRONG)

USER = UsmUser("tslcd", "sha", AUTH_KEY, "aes128", PRIV_KEY)
SNMPD_USERS = [
    USER,
    UsmUser("tslcd-sha256", "sha256", AUTH_KEY),  # authNoPriv
    UsmUser("tslcd-noauth"),  # noAuthNoPriv
    UsmUser("tslcd-strong", "sha512", AUTH_KEY, "aes256", PRIV_KEY),
]
# Real devices from the snmpsim-data package, by the community/context they answer.
REAL = {
    "vyatta": "network/router/vyatta-unknown.snmprec.bz2",
    "cisco-7200": "network/router/cisco-unmarked-0.snmprec.bz2",
    "c3560": "network/switch/cisco-c3560.snmprec.bz2",
}
# Recordings the tests rewrite under the running agent (each test owns one).
MUTABLE = {"mut-wrap": "wrap-1", "mut-ifindex": "ifindex-1", "mut-reboot": "reboot-1"}


def recorded(path: Path) -> dict[str, str]:
    """OID -> value of a plain .snmprec file (hex strings decoded)."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        oid, tag, value = line.split("|", 2)
        out[oid] = bytes.fromhex(value).decode("utf-8", "replace") if tag == "4x" else value
    return out


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sim_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("snmprec")
    for name, rel in REAL.items():
        install_recording(snmpsim_data_file(rel), data, name)
    for f in EDGE.glob("*.snmprec"):
        if f.stem != "slow":  # slow agents get their own snmpsim: its delays hold up everything after them
            install_recording(f, data, f.stem)
    for name, src in MUTABLE.items():
        install_recording(EDGE / f"{src}.snmprec", data, name)
    write_recording(data / "moving.snmprec", router_recording(
        sys_name="moving", interfaces=[Interface(1, "lo"), Interface(2, "wan0", in_rate=1e9, out_rate=5e8)]))
    write_recording(data / "sawtooth.snmprec", router_recording(
        sys_name="sawtooth", reboot_every_s=3600, interfaces=[Interface(1, "wan0")]))
    return data


@pytest.fixture(scope="module")
def sim(sim_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    """One snmpsim for the module: v2c communities = recording names, v3 user USER with contexts."""
    agent = start_snmpsim(sim_data, user=USER, cache_dir=tmp_path_factory.mktemp("snmpsim-cache"))
    try:
        for f in sim_data.glob("*.snmprec"):  # the first answer from a recording opens its index
            assert answers("127.0.0.1", agent.port, timeout_s=10, community=f.stem), f.stem
        yield agent
    finally:
        agent.stop()


@pytest.fixture
def slow_sim(tmp_path: Path) -> Iterator[Agent]:
    """An snmpsim of its own whose answers take time (snmpsim serves one request at a time)."""
    install_recording(EDGE / "slow.snmprec", tmp_path, "slow")
    # Answers the system group at once but takes 600 ms over its interface names (a GETBULK).
    write_recording(tmp_path / "slow-walk.snmprec", router_recording(
        sys_name="slow-walk", moving_uptime=False, interfaces=[Interface(1, "wan0")]).replace(
        "1.3.6.1.2.1.31.1.1.1.1.1|4x|77616e30", "1.3.6.1.2.1.31.1.1.1.1.1|4:delay|value=wan0,wait=600"))
    agent = start_snmpsim(tmp_path, workdir=tmp_path / "agent")
    try:
        yield agent
    finally:
        agent.stop()


@pytest.fixture(scope="module")
def snmpd() -> Iterator[Agent]:
    agent = start_snmpd(communities=[COMMUNITY], users=SNMPD_USERS, sys_name="tslcd-snmpd")
    try:
        yield agent
    finally:
        agent.stop()


def v2(community: str, port: int, *, timeout_s: float = 3.0, retries: int = 0) -> SnmpProfile:
    return SnmpProfile(version="2c", community=SecretStr(community), port=port, timeout_s=timeout_s,
                       retries=retries)


def v3(user: str, port: int, *, auth: str = "sha", auth_key: str = AUTH_KEY, priv: str = "aes128",
       priv_key: str = PRIV_KEY, context: str = "", timeout_s: float = 3.0, retries: int = 0) -> SnmpProfile:
    return SnmpProfile.model_validate({
        "version": "3", "user": user, "auth_protocol": auth, "priv_protocol": priv, "context": context,
        "auth_key": auth_key if auth != "none" else None, "priv_key": priv_key if priv != "none" else None,
        "port": port, "timeout_s": timeout_s, "retries": retries})


def node(code: str, profile: str, uplink: str | None = None, address: str = "127.0.0.1") -> Node:
    return Node(code, f"Xã {code}", "commune", "Đắk Lắk", address=address, snmp=profile, uplink=uplink)


async def poll1(profiles: dict[str, SnmpProfile], n: Node, **kw: Any) -> SnmpReading:
    poller = SnmpPoller(profiles, **kw)
    try:
        return (await poller.poll([n]))[0]
    finally:
        poller.close()


class Relay:
    """A UDP relay on 127.0.0.1 between the poller and an agent: counts, delays (by timer) or drops."""

    def __init__(self, upstream: tuple[str, int], *, delay_s: float = 0.0) -> None:
        require_loopback(upstream[0])
        self.upstream = upstream
        self.delay_s = delay_s
        self.requests = 0
        self.outstanding = 0
        self.most_outstanding = 0
        self.on_request: Callable[[int], None] | None = None
        self._loop = asyncio.get_running_loop()
        self._socks: dict[Any, socket.socket] = {}
        self._listen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._listen.bind(("127.0.0.1", 0))
        self._listen.setblocking(False)
        self.port = self._listen.getsockname()[1]
        self._loop.add_reader(self._listen.fileno(), self._from_client)

    def _later(self, fn: Callable[[], object]) -> None:
        if self.delay_s:
            self._loop.call_later(self.delay_s, fn)
        else:
            fn()

    def _from_client(self) -> None:
        try:
            data, addr = self._listen.recvfrom(65535)
        except OSError:
            return
        self.requests += 1
        if self.on_request:
            self.on_request(self.requests)
        self._later(lambda: self._forward(data, addr))

    def _forward(self, data: bytes, addr: Any) -> None:
        s = self._socks.get(addr)
        if s is None:
            s = self._socks[addr] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setblocking(False)
            s.connect(self.upstream)
            self._loop.add_reader(s.fileno(), self._from_agent, s, addr)
        self.outstanding += 1
        self.most_outstanding = max(self.most_outstanding, self.outstanding)
        try:
            s.send(data)
        except OSError:
            pass

    def _from_agent(self, s: socket.socket, addr: Any) -> None:
        try:
            data = s.recv(65535)
        except OSError:  # port unreachable: the agent is gone
            return
        self.outstanding -= 1
        self._later(lambda: self._listen.sendto(data, addr))

    def close(self) -> None:
        for s in [self._listen, *self._socks.values()]:
            self._loop.remove_reader(s.fileno())
            s.close()


# ---------------------------------------------------------------- real devices (snmpsim-data)


async def test_v2c_real_router_reads_uptime_name_and_uplink_64bit_counters(sim: Agent, sim_data: Path) -> None:
    rec = recorded(sim_data / "vyatta.snmprec")
    r = await poll1({"p": v2("vyatta", sim.port)}, node("24133", "p", uplink="eth1"))
    assert r.ok, r.detail
    assert r.uptime_ticks == int(rec["1.3.6.1.2.1.1.3.0"])
    assert r.sys_name == rec["1.3.6.1.2.1.1.5.0"] == "DUMSYS-37"
    assert r.sys_object_id == rec["1.3.6.1.2.1.1.2.0"]
    assert r.sys_descr == rec["1.3.6.1.2.1.1.1.0"]
    u = r.uplink
    assert u is not None and (u.if_index, u.matched_by, u.bits) == (4, "ifName", 64)
    assert u.in_octets == int(rec["1.3.6.1.2.1.31.1.1.1.6.4"])
    assert u.out_octets == int(rec["1.3.6.1.2.1.31.1.1.1.10.4"])
    assert u.oper_status == int(rec["1.3.6.1.2.1.2.2.1.8.4"])
    assert r.requests == 2  # one GETBULK (system + interface names), one GET


async def test_real_router_without_64bit_counters_on_its_uplink_falls_back_to_32bit(sim: Agent,
                                                                                    sim_data: Path) -> None:
    rec = recorded(sim_data / "cisco-7200.snmprec")
    assert "1.3.6.1.2.1.31.1.1.1.6.1" not in rec  # the recording has ifHCInOctets for one port only
    r = await poll1({"p": v2("cisco-7200", sim.port)}, node("24121", "p", uplink="Fa0/1"))
    assert r.ok, r.detail
    assert r.uplink is not None and r.uplink.bits == 32
    assert r.uplink.in_octets == int(rec["1.3.6.1.2.1.2.2.1.10.1"])


async def test_v3_context_selects_a_real_switch_whose_uplink_is_down(sim: Agent) -> None:
    r = await poll1({"p": v3("tslcd", sim.port, context="c3560")}, node("24154", "p", uplink="Gi0/1"))
    assert r.ok, r.detail
    assert r.sys_name == "DUMSYS-04"
    assert r.uplink is not None and r.uplink.if_index == 10101 and not r.uplink.oper_up
    assert r.uplink.oper_text == "down"


# ---------------------------------------------------------------- our edge cases (tests/data/snmprec)


async def test_64bit_counters_missing(sim: Agent) -> None:
    r = await poll1({"p": v2("no-hc", sim.port)}, node("a", "p", uplink="wan0"))
    assert r.ok, r.detail
    u = r.uplink
    assert u is not None and u.bits == 32 and (u.in_octets, u.out_octets) == (123_456_789, 987_654_321)
    assert (u.in_errors, u.out_errors) == (3, 4)


@pytest.mark.parametrize(("uplink", "index", "column"), [
    ("WAN VNPT", 2, "ifAlias"),
    ("wan vnpt", 2, "ifAlias"),  # case is ignored when nothing matches exactly
    ("GigabitEthernet0/0", 1, "ifDescr"),
    ("Gi0/1", 2, "ifName"),
])
async def test_uplink_is_found_by_ifname_ifalias_or_ifdescr(sim: Agent, uplink: str, index: int,
                                                            column: str) -> None:
    r = await poll1({"p": v2("alias", sim.port)}, node("a", "p", uplink=uplink))
    assert r.ok, r.detail
    assert r.uplink is not None and (r.uplink.if_index, r.uplink.matched_by) == (index, column)


async def test_agent_without_ifxtable_is_found_by_ifdescr(sim: Agent) -> None:
    r = await poll1({"p": v2("no-ifxtable", sim.port)}, node("a", "p", uplink="GigabitEthernet0/1"))
    assert r.ok, r.detail
    assert r.uplink is not None and (r.uplink.matched_by, r.uplink.bits, r.uplink.in_octets) == ("ifDescr", 32, 42)


async def test_uplink_absent_is_a_classified_failure_that_lists_what_exists(sim: Agent) -> None:
    poller = SnmpPoller({"p": v2("uplink-absent", sim.port)})
    n = node("a", "p", uplink="wan0")
    try:
        r = await poller.poll_node(n)
        assert r.reason is Reason.UPLINK_NOT_FOUND
        assert "'wan0'" in r.detail and "'lan0'" in r.detail and "'lan1'" in r.detail
        assert r.uptime_ticks == 88_000_000  # the system group was still read
        again = await poller.poll_node(n)  # not looked for again on every poll: one GET
        assert again.reason is Reason.UPLINK_NOT_FOUND and again.requests == 1
    finally:
        poller.close()


async def test_node_without_uplink_reads_the_system_group_in_one_get(sim: Agent) -> None:
    r = await poll1({"p": v2("alias", sim.port)}, node("a", "p"))
    assert r.ok and r.uplink is None and r.requests == 1 and r.sys_name == "alias"


@pytest.mark.parametrize(("community", "reason", "detail"), [
    ("no-uptime", Reason.NO_SUCH_OBJECT, "sysUpTime"),
    ("oper-missing", Reason.NO_SUCH_OBJECT, "ifOperStatus.2 is NoSuchInstance"),
    ("bad-type", Reason.UNEXPECTED_TYPE, "sysUpTime.0 is Integer, expected TimeTicks"),
    ("gauge-counters", Reason.UNEXPECTED_TYPE, "ifHCInOctets.2 is Gauge32, expected Counter64"),
])
async def test_missing_objects_and_unexpected_types(sim: Agent, community: str, reason: Reason,
                                                    detail: str) -> None:
    r = await poll1({"p": v2(community, sim.port)}, node("a", "p", uplink="wan0"))
    assert r.reason is reason and detail in r.detail


async def test_counter_wrap_32bit(sim: Agent, sim_data: Path) -> None:
    path = sim_data / "mut-wrap.snmprec"
    write_recording(path, (EDGE / "wrap-1.snmprec").read_text())
    poller = SnmpPoller({"p": v2("mut-wrap", sim.port)})
    n = node("a", "p", uplink="wan0")
    try:
        first = await poller.poll_node(n)
        write_recording(path, (EDGE / "wrap-2.snmprec").read_text())
        second = await poller.poll_node(n)
    finally:
        poller.close()
    assert first.ok and second.ok and second.uplink is not None and second.uplink.in_octets == 5000
    tracks, reboots = fold_readings({}, [first], TZ)
    tracks, reboots = fold_readings(tracks, [second], TZ)
    c = tracks["a"].counters
    assert not reboots
    assert c.rx.total == 2**32 - 1000 + 6000 and c.tx.total == 2**32 - 10 + 30


async def test_ifindex_renumbered_is_found_again_in_the_same_poll(sim: Agent, sim_data: Path) -> None:
    path = sim_data / "mut-ifindex.snmprec"
    write_recording(path, (EDGE / "ifindex-1.snmprec").read_text())
    poller = SnmpPoller({"p": v2("mut-ifindex", sim.port)})
    n = node("a", "p", uplink="wan0")
    lines: list[str] = []
    try:
        first = await poller.poll_node(n)
        write_recording(path, (EDGE / "ifindex-2.snmprec").read_text())
        second = await poller.poll_node(n, trace=lines.append)
    finally:
        poller.close()
    assert first.uplink is not None and first.uplink.if_index == 3
    assert second.ok and second.uplink is not None and second.uplink.if_index == 7
    assert second.requests == 3  # GET (ifIndex 3 is now lan9), GETBULK, GET
    assert any("no longer ifIndex 3" in line for line in lines)
    tracks, _ = fold_readings({}, [first], TZ)
    tracks, _ = fold_readings(tracks, [second], TZ)
    assert tracks["a"].counters.rx.total == 1_000_000  # another counter now: rebased, not subtracted


async def test_sysuptime_reset_counts_a_reboot_and_rereads_sysdescr(sim: Agent, sim_data: Path) -> None:
    path = sim_data / "mut-reboot.snmprec"
    write_recording(path, (EDGE / "reboot-1.snmprec").read_text())
    poller = SnmpPoller({"p": v2("mut-reboot", sim.port)})
    n = node("a", "p", uplink="wan0")
    try:
        before = await poller.poll_node(n)
        steady = await poller.poll_node(n)
        write_recording(path, (EDGE / "reboot-2.snmprec").read_text())
        after = await poller.poll_node(n)
        next_poll = await poller.poll_node(n)
    finally:
        poller.close()
    assert before.sys_descr == "RouterOS 6.48" and steady.sys_descr is None  # read once...
    assert after.uptime_ticks == 1_500
    assert next_poll.sys_descr == "RouterOS 7.12"  # ...and again after the reboot
    first, _ = fold_readings({}, [before], TZ)
    assert uplink_deltas({}, first) == {"a": (0, 0, 0)}  # a baseline, not traffic
    tracks, reboots = fold_readings(first, [steady], TZ)
    assert uplink_deltas(first, tracks) == {"a": (0, 0, 0)}
    later, reboots = fold_readings(tracks, [after, next_poll], TZ)
    deltas = uplink_deltas(tracks, later)
    assert deltas == {"a": (700, 800, 1)}
    assert add_deltas(deltas, {"a": (5, None, 0), "b": (None, None, 0)}) == {"a": (705, 800, 1), "b": (None, None, 0)}
    tracks = later
    assert [r.code for r in reboots] == ["a"]
    c = tracks["a"].counters
    assert c.reboots == 1
    assert c.rx.total == 5_000_000_000 + 700 and c.tx.total == 6_000_000_000 + 800
    status = snmp_status(tracks["a"], after.at, TZ)
    assert status is not None and status.sys_descr == "RouterOS 7.12" and status.reboots == 1

    # One status per poll (track) and local day, shared by the snapshots until either changes (issue 13).
    from datetime import date

    from monitor.core.snmp import SnmpStatuses
    statuses, day = SnmpStatuses(), date(2026, 12, 5)
    kept = statuses.of("a", tracks["a"], day)
    assert kept == status and statuses.of("a", tracks["a"], day) is kept
    assert statuses.of("a", first["a"], day) is not kept  # another poll's track
    again = statuses.of("a", tracks["a"], day)
    assert again == kept and again is not kept
    next_day = statuses.of("a", tracks["a"], date(2026, 12, 6))
    assert next_day is not again and next_day is not None and next_day.bytes_today == 0  # today's traffic anew
    assert statuses.of("a", None, day) is None and len(statuses) == 0
    statuses.of("a", tracks["a"], day)
    statuses.forget(["a", "gone"])
    assert len(statuses) == 0


async def test_demo_recording_counters_move_between_polls(sim: Agent) -> None:
    poller = SnmpPoller({"p": v2("moving", sim.port), "s": v2("sawtooth", sim.port)})
    n = node("a", "p", uplink="wan0")
    try:
        first = await poller.poll_node(n)
        second = await poller.poll_node(n)
        saw = await poller.poll_node(node("b", "s", uplink="wan0"))
    finally:
        poller.close()
    assert first.uplink is not None and second.uplink is not None
    assert second.uplink.in_octets > first.uplink.in_octets
    assert second.uptime_ticks is not None and first.uptime_ticks is not None
    assert second.uptime_ticks >= first.uptime_ticks
    assert saw.ok and saw.uptime_ticks is not None and saw.uptime_ticks < 3600 * 100


# ---------------------------------------------------------------- v3 with net-snmp's snmpd


@pytest.mark.parametrize(("user", "auth", "priv"), [
    ("tslcd", "sha", "aes128"),
    ("tslcd-strong", "sha512", "aes256"),
    ("tslcd-sha256", "sha256", "none"),
    ("tslcd-noauth", "none", "none"),
])
async def test_v3_security_levels_with_snmpd(snmpd: Agent, user: str, auth: str, priv: str) -> None:
    r = await poll1({"p": v3(user, snmpd.port, auth=auth, priv=priv)}, node("a", "p", uplink="lo"))
    assert r.ok, r.detail
    assert r.sys_name == "tslcd-snmpd"
    assert r.uplink is not None and r.uplink.bits == 64 and r.uplink.oper_up and r.uplink.in_octets > 0


async def test_v3_failures_are_classified_and_profiles_sharing_a_user_do_not_disturb_each_other(
        snmpd: Agent) -> None:
    port = snmpd.port
    profiles = {
        "good": v3("tslcd", port),
        "wrong-auth": v3("tslcd", port, auth_key=WRONG),
        "wrong-priv": v3("tslcd", port, priv_key=WRONG, timeout_s=0.5),
        "unknown-user": v3("nobody", port),
        "no-priv": v3("tslcd", port, priv="none"),  # snmpd grants tslcd only with privacy
    }
    poller = SnmpPoller(profiles)
    assert poller.engines == 4  # "tslcd" with four different key sets
    nodes = [node(name, name, uplink="lo") for name in profiles]
    try:
        for _ in range(2):  # twice: the wrong keys must not have spoilt the right ones
            got = {r.code: r for r in await poller.poll(nodes)}
            assert got["good"].ok, got["good"].detail
            assert got["wrong-auth"].reason is Reason.AUTH_FAILURE
            assert "wrong digest" in got["wrong-auth"].detail
            assert got["wrong-priv"].reason is Reason.PRIVACY_FAILURE
            assert "privacy key" in got["wrong-priv"].detail
            assert got["unknown-user"].reason is Reason.UNKNOWN_USER and "'nobody'" in got["unknown-user"].detail
            assert got["no-priv"].reason is Reason.AGENT_ERROR
            assert "authorizationError" in got["no-priv"].detail
    finally:
        poller.close()


# ---------------------------------------------------------------- v2c: communities, timeouts


async def test_v2c_with_snmpd(snmpd: Agent) -> None:
    r = await poll1({"p": v2(COMMUNITY, snmpd.port)}, node("a", "p", uplink="lo"))
    assert r.ok and r.uplink is not None and r.uplink.matched_by == "ifName"


@pytest.mark.parametrize("agent", ["snmpd", "sim"])
async def test_wrong_community_is_told_apart_from_silence(agent: str, request: pytest.FixtureRequest) -> None:
    port = request.getfixturevalue(agent).port
    r = await poll1({"p": v2("not-the-community", port, timeout_s=0.3)}, node("a", "p", uplink="lo"))
    assert r.reason is Reason.WRONG_COMMUNITY
    assert "community is wrong" in r.detail and "answers SNMPv3 discovery" in r.detail
    assert r.requests == 3  # the GETBULK, then a small GET and an SNMPv3 discovery probe


async def test_without_diagnosis_a_wrong_community_is_a_timeout_that_says_so(snmpd: Agent) -> None:
    r = await poll1({"p": v2("not-the-community", snmpd.port, timeout_s=0.2)}, node("a", "p"), diagnose=False)
    assert r.reason is Reason.TIMEOUT
    assert "wrong community looks exactly like this" in r.detail and r.requests == 1


async def test_nothing_listening_is_a_timeout() -> None:
    port = free_udp_port()
    r = await poll1({"p": v2(COMMUNITY, port, timeout_s=0.1, retries=1)}, node("a", "p", uplink="wan0"))
    assert r.reason is Reason.TIMEOUT
    assert f"no answer from 127.0.0.1:{port} within 0.1 s x 2 tries" in r.detail
    assert "no answer to SNMPv3 discovery either" in r.detail


# ---------------------------------------------------------------- slow, stopped, many


async def test_slow_agent_snmpsim_delay(slow_sim: Agent) -> None:
    ok = await poll1({"p": v2("slow", slow_sim.port, timeout_s=5)}, node("a", "p"))
    assert ok.ok and ok.sys_name == "slow" and ok.duration_s >= 0.6  # two delayed objects, 300 ms each
    late = await poll1({"p": v2("slow", slow_sim.port, timeout_s=0.1)}, node("b", "p"))
    assert late.reason is Reason.TIMEOUT and "within 0.1 s" in late.detail


async def test_agent_slow_on_the_big_request_only_is_told_apart(slow_sim: Agent) -> None:
    r = await poll1({"p": v2("slow-walk", slow_sim.port, timeout_s=0.4)}, node("a", "p", uplink="wan0"))
    assert r.reason is Reason.TIMEOUT
    assert "answers a small GET with the same credentials: the agent is slow or the request too big" in r.detail
    assert r.requests == 2


async def test_slow_agent_behind_a_delaying_relay(snmpd: Agent) -> None:
    relay = Relay(("127.0.0.1", snmpd.port), delay_s=0.15)  # 0.3 s per round trip
    try:
        ok = await poll1({"p": v2(COMMUNITY, relay.port, timeout_s=2)}, node("a", "p", uplink="lo"))
        assert ok.ok and ok.duration_s >= 0.6  # GETBULK + GET
        late = await poll1({"p": v2(COMMUNITY, relay.port, timeout_s=0.1)}, node("b", "p", uplink="lo"))
        assert late.reason is Reason.TIMEOUT
    finally:
        relay.close()


async def test_agent_stopped_mid_poll_gives_readings_not_an_exception() -> None:
    agent = start_snmpd(communities=[COMMUNITY])
    relay = Relay(("127.0.0.1", agent.port))
    poller = SnmpPoller({"p": v2(COMMUNITY, relay.port, timeout_s=0.2)}, max_in_flight=1)
    nodes = [node(f"n{i}", "p", uplink="lo") for i in range(4)]
    stop_at = 4  # the 4th request: the second node's GET, after its GETBULK was answered

    def on_request(n: int) -> None:
        if n == stop_at:
            agent.stop()

    relay.on_request = on_request
    try:
        readings = await poller.poll(nodes)
    finally:
        poller.close()
        relay.close()
        agent.stop()
    assert not agent.alive()
    assert [r.code for r in readings] == [n.code for n in nodes]
    assert readings[0].ok
    assert readings[1].reason is Reason.TIMEOUT and readings[1].uptime_ticks is not None  # read before it died
    assert all(r.reason is Reason.TIMEOUT for r in readings[1:])


async def test_requests_in_flight_are_bounded(snmpd: Agent) -> None:
    relay = Relay(("127.0.0.1", snmpd.port), delay_s=0.02)
    poller = SnmpPoller({"p": v2(COMMUNITY, relay.port)}, max_in_flight=8)
    try:
        readings = await poller.poll([node(f"n{i}", "p", uplink="lo") for i in range(120)])
    finally:
        poller.close()
        relay.close()
    assert all(r.ok for r in readings)
    assert 2 <= relay.most_outstanding <= 8


async def test_local_problems_are_readings_too() -> None:
    poller = SnmpPoller({"p": v2(COMMUNITY, 161)})
    try:
        no_profile, no_address, bad_address = await poller.poll([
            node("a", "missing"), node("b", "p", address=""), node("c", "p", address="not an address")])
    finally:
        poller.close()
    assert no_profile.reason is Reason.LOCAL_ERROR and "no SNMP profile named 'missing'" in no_profile.detail
    assert no_address.reason is Reason.NOT_POLLED
    assert bad_address.reason is Reason.LOCAL_ERROR and "bad address" in bad_address.detail


# ---------------------------------------------------------------- fold, status, metrics, secrets


async def test_families_show_snmp_up_reason_ping_only_and_counters(sim: Agent, snmpd: Agent,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    profiles = {"vyatta": v2("vyatta", sim.port), "bad": v3("tslcd", snmpd.port, auth_key=WRONG),
                "wrongc": v2(WRONG, snmpd.port, timeout_s=0.2)}
    nodes = [node("ok", "vyatta", uplink="eth1"), node("bad", "bad", uplink="lo"), node("wc", "wrongc")]
    poller = SnmpPoller(profiles)
    with caplog.at_level(logging.DEBUG):
        try:
            readings = await poller.poll(nodes)
        finally:
            poller.close()
    tracks, _ = fold_readings({}, readings, TZ)
    now = max(r.at for r in readings)
    statuses = [NodeStatus(n, "up", snmp=snmp_status(tracks[n.code], now, TZ)) for n in nodes]
    statuses.append(NodeStatus(node("nosnmp", "x"), "up"))

    text = Renderer().render(Snapshot(now, "Đắk Lắk", "Asia/Ho_Chi_Minh", 1.0, tuple(statuses), ())).decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert samples[("tslcd_snmp_up", (("code", "ok"),))] == 1
    assert samples[("tslcd_snmp_up", (("code", "bad"),))] == 0
    assert samples[("tslcd_snmp_ping_only", (("code", "bad"),))] == 1
    assert samples[("tslcd_snmp_ping_only", (("code", "ok"),))] == 0
    assert samples[("tslcd_snmp_reason", (("code", "bad"), ("reason", "auth_failure")))] == 1
    assert samples[("tslcd_snmp_reason", (("code", "wc"), ("reason", "wrong_community")))] == 1
    assert samples[("tslcd_snmp_nodes", (("reason", "ok"),))] == 1
    assert samples[("tslcd_uplink_receive_bytes_total", (("code", "ok"),))] == readings[0].uplink.in_octets  # type: ignore[union-attr]
    assert samples[("tslcd_uplink_errors_total", (("code", "ok"), ("direction", "receive")))] == 0
    assert samples[("tslcd_snmp_sys_uptime_seconds", (("code", "ok"),))] == readings[0].uptime_ticks / 100  # type: ignore[operator]
    assert samples[("tslcd_node_reboots_total", (("code", "ok"),))] == 0
    assert samples[("tslcd_uplink_oper_up", (("code", "ok"),))] == 1
    snmp_names = ("tslcd_snmp_", "tslcd_uplink_", "tslcd_node_reboots", "tslcd_node_last_reboot")
    assert not any(code == "nosnmp" for (name, labels) in samples for k, code in labels
                   if k == "code" and name.startswith(snmp_names))
    assert ("tslcd_node_up", (("code", "nosnmp"),)) in samples  # the node is there, without SNMP series
    # Secrets: not in readings, statuses, metrics or logs.
    everything = "\n".join([text, caplog.text, repr(readings), repr(statuses), repr(tracks),
                            *(describe_profile(k, p) for k, p in profiles.items()), repr(profiles)])
    for secret in SECRETS:
        assert secret not in everything


def test_plan_poll_skips_nodes_that_do_not_answer_ping() -> None:
    nodes = [node("up", "p"), node("down", "p"), node("unreach", "p"), node("new", "p"),
             node("nocircuit", "p", address=""), Node("noprof", "x", "commune", "Đắk Lắk", address="127.0.0.1")]
    poll, skipped = plan_poll(nodes, {"up": "up", "down": "down", "unreach": "unreachable"}, 1.0)
    assert [n.code for n in poll] == ["up", "new"]
    assert [(r.code, r.reason) for r in skipped] == [("down", Reason.NOT_POLLED), ("unreach", Reason.NOT_POLLED)]
    assert "is down (ping)" in skipped[0].detail
    tracks, _ = fold_readings({}, skipped, TZ)
    row = snmp_row(snmp_status(tracks["down"], 1.0, TZ), "down")
    assert row is not None and row["reason"] == "not_polled" and not row["ping_only"] and not row["up"]
    assert snmp_row(None, "up") is None


def test_down_nodes_are_polled_too_a_bounded_number_the_least_recently_polled_first() -> None:
    """Their answer or silence tells why they are cut off (monitor.core.causes); unreachable ones never are."""
    nodes = [node("up", "p"), *(node(f"d{i}", "p") for i in range(5)), node("unreach", "p")]
    states = {"up": "up", "unreach": "unreachable", **{f"d{i}": "down" for i in range(5)}}
    polled = {"d0": 50.0, "d1": None, "d2": 10.0, "d3": 30.0}  # d4 never polled during its outage either
    poll, skipped = plan_poll(nodes, states, 100.0, down_max=3, polled_at=polled)
    assert [n.code for n in poll] == ["up", "d1", "d4", "d2"]
    assert sorted(r.code for r in skipped) == ["d0", "d3", "unreach"]
    assert all(r.reason is Reason.NOT_POLLED for r in skipped)
    assert "at most 3 down nodes" in next(r.detail for r in skipped if r.code == "d0")
    assert plan_poll(nodes, states, 100.0)[0] == [nodes[0]]  # down_max 0: as before, only nodes that answer ping


# ---------------------------------------------------------------- tslcd snmp probe


def _probe_files(tmp_path: Path, profiles: str, nodes: str) -> Path:
    inv = tmp_path / "nodes.yaml"
    inv.write_text(f"province: Đắk Lắk\nnodes:\n{nodes}", encoding="utf-8")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"province: Đắk Lắk\ninventory: {inv}\nsnmp_profiles:\n{profiles}", encoding="utf-8")
    return cfg


def _probe(cfg: Path, code: str, *extra: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="tslcd")
    snmp_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["snmp", "probe", code, "--config", str(cfg), *extra])
    out, err = io.StringIO(), io.StringIO()
    status = snmp_cli.run(args, out, err)
    return status, out.getvalue(), err.getvalue()


def test_probe_prints_every_value_read(tmp_path: Path, snmpd: Agent) -> None:
    os.environ["TSLCD_TEST_AUTH"] = AUTH_KEY
    (tmp_path / "priv.key").write_text(PRIV_KEY + "\n")
    cfg = _probe_files(
        tmp_path,
        f"  v3:\n    version: '3'\n    user: tslcd\n    auth_protocol: sha\n    auth_key: ${{TSLCD_TEST_AUTH}}\n"
        f"    priv_protocol: aes128\n    priv_key_file: priv.key\n    port: {snmpd.port}\n",
        "  - code: '24133'\n    name: Phường Buôn Ma Thuột\n    kind: commune\n    address: 127.0.0.1\n"
        "    snmp: v3\n    uplink: lo\n")
    status, out, err = _probe(cfg, "24133")
    assert status == 0, out + err
    assert "profile 'v3': v3 user 'tslcd' authPriv auth sha priv aes128" in out
    assert "-> GETBULK non-repeaters 4" in out and "-> GET sysUpTime.0" in out
    assert 'sysName.0 = OctetString "tslcd-snmpd"' in out
    assert re.search(r"uplink +lo = ifIndex 1 \(by ifName\), ifOperStatus up\(1\)", out)
    assert "result: ok" in out
    for secret in SECRETS:
        assert secret not in out + err


def test_probe_shows_exactly_what_failed(tmp_path: Path, snmpd: Agent) -> None:
    cfg = _probe_files(
        tmp_path,
        f"  v2:\n    version: '2c'\n    community: {WRONG}\n    port: {snmpd.port}\n    timeout_s: 0.3\n",
        "  - code: '24121'\n    name: Phường Tân An\n    kind: commune\n    address: 127.0.0.1\n    snmp: v2\n")
    status, out, err = _probe(cfg, "24121", "--retries", "0")
    assert status == 1
    assert "FAILED: wrong_community:" in out and "-> diagnosis" in out
    assert "v2c community ***" in out
    assert WRONG not in out + err
    status, _, err = _probe(cfg, "99999")
    assert status == 2 and "no node with code '99999'" in err


# ---------------------------------------------------------------- the agents themselves


def test_agents_listen_on_loopback_only() -> None:
    with pytest.raises(ValueError):
        require_loopback("192.0.2.1")
    with pytest.raises(ValueError):
        start_snmpd(hosts=["0.0.0.0"])


def test_snmpd_that_cannot_start_is_reported_with_its_log_at_once() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.bind(("127.0.0.1", 0))
        with pytest.raises(AgentError, match="exited with status"):
            start_snmpd(port=held.getsockname()[1], deadline_s=30)


def test_a_stopped_agent_is_gone_with_its_files(tmp_path: Path) -> None:
    agent = start_snmpd(users=[USER])
    conf = agent.workdir / "snmpd.conf"
    assert oct(conf.stat().st_mode & 0o777) == "0o600"
    assert AUTH_KEY not in Path(f"/proc/{agent.pid}/cmdline").read_bytes().decode(errors="replace")
    agent.stop()
    assert not agent.alive() and not agent.workdir.exists()
    assert not answers("127.0.0.1", agent.port, timeout_s=0.1)
    agent.stop()  # idempotent


def test_snmpsim_keys_are_not_on_its_command_line(sim: Agent) -> None:
    cmdline = Path(f"/proc/{sim.pid}/cmdline").read_bytes().decode(errors="replace")
    assert AUTH_KEY not in cmdline and PRIV_KEY not in cmdline
    assert AUTH_KEY not in sim.log_path.read_text(errors="replace")


def _drain(sink: socket.socket) -> list[bytes]:
    """The datagrams waiting on a non-blocking socket."""
    sent = []
    while True:
        try:
            sent.append(sink.recv(65535))
        except BlockingIOError:
            return sent


async def test_a_get_sends_the_datagram_pysnmp_would_send_with_the_varbind_list_built_once() -> None:
    """get_varbind_list with a list built once puts on the wire what hlapi's get_cmd does (request-id aside)."""
    from pyasn1.codec.ber import decoder, encoder
    from pysnmp.hlapi.v3arch.asyncio import (
        CommunityData,
        ContextData,
        ObjectIdentity,
        ObjectType,
        UdpTransportTarget,
        get_cmd,
    )
    from pysnmp.proto.api import v2c

    from monitor.probes.snmp.oids import SYS_DESCR, SYS_UPTIME
    from monitor.probes.snmp.pysnmp_patches import get_varbind_list, varbind_list

    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind((require_loopback("127.0.0.1"), 0))  # nothing answers: each request times out after one try
    sink.setblocking(False)
    engine = SnmpEngine()
    try:
        auth, ctx = CommunityData(COMMUNITY, mpModel=1), ContextData()
        target = await UdpTransportTarget.create(sink.getsockname(), timeout=0.2, retries=0)
        for oids in [[SYS_UPTIME + (0,)], [SYS_UPTIME + (0,), (1, 3, 6, 1, 2, 1, 1, 5, 0), SYS_DESCR + (0,),
                                           (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6, 4_000_000_000)]]:
            theirs = await get_cmd(engine, auth, target, ctx,
                                   *[ObjectType(ObjectIdentity(rfc1902.ObjectName(o))) for o in oids], lookupMib=False)
            vbl = varbind_list(oids)
            ours = [await get_varbind_list(engine, auth, target, ctx, vbl) for _ in range(2)]  # shared list, twice
            assert [type(r[0]) for r in (theirs, *ours)] == [type(theirs[0])] * 3  # no answer: the same timeout
            sent = _drain(sink)
            assert len(sent) == 3
            msgs = [decoder.decode(d, asn1Spec=v2c.Message())[0] for d in sent]
            for m in msgs:
                v2c.apiPDU.set_request_id(v2c.apiMessage.get_pdu(m), 0)
            assert [encoder.encode(m) for m in msgs[1:]] == [encoder.encode(msgs[0])] * 2
            assert [tuple(o) for o, _ in v2c.apiPDU.get_varbinds(v2c.apiMessage.get_pdu(msgs[1]))] == oids
    finally:
        engine.close_dispatcher()
        sink.close()


async def test_v2c_requests_without_the_engine_put_on_the_wire_what_pysnmp_does_and_read_the_same(
        snmpd: Agent) -> None:
    """V2cChannel (v2c without pysnmp's engine): its GET and GETBULK datagrams equal hlapi's (request-id aside),
    and what it reads from a real agent equals what the engine reads, value types included."""
    from pyasn1.codec.ber import decoder, encoder
    from pysnmp.hlapi.v3arch.asyncio import (
        CommunityData,
        ContextData,
        ObjectIdentity,
        ObjectType,
        UdpTransportTarget,
        bulk_cmd,
        get_cmd,
    )
    from pysnmp.proto.api import v2c

    from monitor.probes.snmp.oids import IF_NAME, SYS_DESCR, SYS_NAME, SYS_OBJECT_ID, SYS_UPTIME
    from monitor.probes.snmp.pysnmp_patches import varbind_list
    from monitor.probes.snmp.v2c import V2cChannel

    garbage: list[Any] = []
    channel = V2cChannel(lambda addr, e: garbage.append((addr, e)))
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind((require_loopback("127.0.0.1"), 0))  # nothing answers: each request times out
    sink.setblocking(False)
    engine = SnmpEngine()
    oids = [SYS_UPTIME + (0,), SYS_NAME + (0,), SYS_DESCR + (0,), SYS_OBJECT_ID + (0,), IF_NAME + (1,),
            IF_NAME + (4_000_000_000,)]
    community = COMMUNITY.encode()
    try:
        auth, ctx = CommunityData(COMMUNITY, mpModel=1), ContextData()
        silent = await UdpTransportTarget.create(sink.getsockname(), timeout=0.2, retries=0)
        vbs = [ObjectType(ObjectIdentity(rfc1902.ObjectName(o))) for o in oids]
        theirs = [await get_cmd(engine, auth, silent, ctx, *vbs, lookupMib=False),
                  await bulk_cmd(engine, auth, silent, ctx, 2, 7, *vbs[:3], lookupMib=False)]
        ours = [await channel.request(sink.getsockname(), community, varbind_list(oids), timeout_s=0.2, retries=1),
                await channel.request(sink.getsockname(), community, oids[:3], bulk=(2, 7), timeout_s=0.2,
                                      retries=0)]
        assert [type(r[0]).__name__ for r in theirs + ours] == ["RequestTimedOut"] * 4
        sent = _drain(sink)
        assert len(sent) == 5  # pysnmp's GET and GETBULK, then ours: the GET twice (one retry), the GETBULK
        msgs = [decoder.decode(d, asn1Spec=v2c.Message())[0] for d in sent]
        ids = [int(v2c.apiPDU.get_request_id(v2c.apiMessage.get_pdu(m))) for m in msgs]
        assert ids[2] == ids[3] != ids[4]  # a retry sends the same request-id; another request another
        for m in msgs:
            v2c.apiPDU.set_request_id(v2c.apiMessage.get_pdu(m), 0)
        wire = [encoder.encode(m) for m in msgs]
        assert wire[2] == wire[3] == wire[0] and wire[4] == wire[1]

        # From a real agent: the same values, of the same types, either way.
        agent = await UdpTransportTarget.create(("127.0.0.1", snmpd.port), timeout=2, retries=1)
        err, status, index, engine_binds = await get_cmd(engine, auth, agent, ctx, *vbs, lookupMib=False)
        assert err is None and not status
        err, status, index, binds = await channel.request(("127.0.0.1", snmpd.port), community,
                                                          varbind_list(oids), timeout_s=2, retries=1)
        assert err is None and not status and int(index) == 0
        assert [(tuple(o), type(v)) for o, v in binds] == [(tuple(o), type(v)) for o, v in engine_binds]
        assert type(binds[-1][1]).__name__ == "NoSuchInstance"
        assert [v for _, v in binds[1:-1]] == [v for _, v in engine_binds[1:-1]]  # all but sysUpTime (it moves)
        err, status, index, bulk = await channel.request(("127.0.0.1", snmpd.port), community, (SYS_NAME, IF_NAME),
                                                         bulk=(1, 3), timeout_s=2, retries=1)
        assert err is None and not status
        assert [tuple(o) for o, _ in bulk] == [SYS_NAME + (0,), IF_NAME + (1,), IF_NAME + (2,), IF_NAME + (3,)]
        assert not garbage
    finally:
        channel.close()
        engine.close_dispatcher()
        sink.close()


async def test_v2c_answers_are_matched_by_request_id_and_late_echoed_or_broken_ones_dropped() -> None:
    """An answer that is not a response to a request in flight (late, or our own request sent back) is dropped
    silently; one that does not decode is reported as garbage; a request answered on its retry is answered."""
    from pyasn1.codec.ber import decoder, encoder
    from pyasn1.error import PyAsn1Error
    from pysnmp.proto.api import v2c

    from monitor.probes.snmp.oids import SYS_UPTIME
    from monitor.probes.snmp.pysnmp_patches import varbind_list
    from monitor.probes.snmp.v2c import V2cChannel

    loop = asyncio.get_running_loop()
    seen: list[int] = []

    class Agent(asyncio.DatagramProtocol):
        """Sends back the request itself, then an answer with another request-id, then (for the retry only)
        junk and the real answer."""

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            msg, _ = decoder.decode(data, asn1Spec=v2c.Message())
            request = v2c.apiMessage.get_pdu(msg)
            seen.append(int(v2c.apiPDU.get_request_id(request)))
            self.transport.sendto(data, addr)  # an echo: a GetRequest, not a response
            answer = v2c.apiMessage.get_response(msg)
            pdu = v2c.apiMessage.get_pdu(answer)
            v2c.apiPDU.set_varbinds(pdu, [(SYS_UPTIME + (0,), rfc1902.TimeTicks(4242))])
            v2c.apiPDU.set_request_id(pdu, int(v2c.apiPDU.get_request_id(request)) + 1)
            self.transport.sendto(encoder.encode(answer), addr)  # not ours
            if len(seen) == 2:  # the retry
                self.transport.sendto(b"\x30\x03\x02\x01", addr)  # truncated BER
                v2c.apiPDU.set_request_id(pdu, seen[-1])
                self.transport.sendto(encoder.encode(answer), addr)

    transport, _ = await loop.create_datagram_endpoint(Agent, local_addr=(require_loopback("127.0.0.1"), 0))
    garbage: list[Any] = []
    channel = V2cChannel(lambda addr, e: garbage.append((addr[0], e)))
    try:
        err, status, index, binds = await channel.request(transport.get_extra_info("sockname"), b"x",
                                                          varbind_list([SYS_UPTIME + (0,)]), timeout_s=0.3,
                                                          retries=2)
    finally:
        channel.close()
        transport.close()
    assert err is None and not status, err
    assert [(tuple(o), int(v)) for o, v in binds] == [(SYS_UPTIME + (0,), 4242)]
    assert len(seen) == 2 and seen[0] == seen[1]  # answered on the first retry: no third try
    assert len(garbage) == 1 and garbage[0][0] == "127.0.0.1" and isinstance(garbage[0][1], PyAsn1Error)


async def test_a_v2c_node_at_an_ipv6_address_is_polled_over_ipv6() -> None:
    """The poller's v2c requests to an IPv6 address leave from an IPv6 socket of V2cChannel (::1 here)."""
    from pyasn1.codec.ber import decoder, encoder
    from pysnmp.proto.api import v2c

    loop = asyncio.get_running_loop()
    senders: list[str] = []

    class Agent(asyncio.DatagramProtocol):
        """Answers any GET with TimeTicks 4242 for each OID asked."""

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            senders.append(addr[0])
            msg, _ = decoder.decode(data, asn1Spec=v2c.Message())
            asked = v2c.apiPDU.get_varbinds(v2c.apiMessage.get_pdu(msg))
            answer = v2c.apiMessage.get_response(msg)
            v2c.apiPDU.set_varbinds(v2c.apiMessage.get_pdu(answer),
                                    [(o, rfc1902.TimeTicks(4242)) for o, _ in asked])
            self.transport.sendto(encoder.encode(answer), addr)

    transport, _ = await loop.create_datagram_endpoint(Agent, local_addr=("::1", 0))  # IPv6 loopback
    poller = SnmpPoller({"p": v2(COMMUNITY, transport.get_extra_info("sockname")[1], timeout_s=1)})
    try:
        r = await poller.poll_node(node("6", "p", address="::1"))
    finally:
        poller.close()
        transport.close()
    assert r.ok and r.uptime_ticks == 4242, (r.reason, r.detail)
    assert senders == ["::1"]


async def test_many_targets_are_registered_without_a_target_row_each() -> None:
    """Only the first target of each credentials set is written as SNMP-TARGET-MIB rows; the rest
    are registered directly (1.7 ms of CPU saved per target), with their own address, timeout and
    retries, and read like any other; a silent address is still diagnosed."""
    hosts = [f"127.79.0.{i}" for i in range(1, 13)]
    agent = start_snmpd(communities=[COMMUNITY], users=[USER], hosts=hosts)
    profiles = {"c": v2(COMMUNITY, agent.port), "u": v3(USER.name, agent.port),
                "c2": v2(COMMUNITY, agent.port, timeout_s=0.5)}
    poller = SnmpPoller(profiles)
    nodes = [node(f"c{i}", "c", uplink="lo", address=a) for i, a in enumerate(hosts)]
    nodes += [node(f"u{i}", "u", uplink="lo", address=a) for i, a in enumerate(hosts)]
    nodes.append(node("dead", "c2", uplink="lo", address="127.79.1.1"))
    try:
        readings = await poller.poll(nodes)
        again = await poller.poll(nodes)
        engine = await poller._engine("c")
        fast = engine.get_user_context("tslcdTargets")
    finally:
        poller.close()
        agent.stop()
    for r in readings[:-1] + again[:-1]:
        assert r.ok and r.uplink is not None and r.uplink.matched_by == "ifName", (r.code, r.reason, r.detail)
    assert readings[-1].reason is Reason.TIMEOUT and "0.5 s" in readings[-1].detail
    assert readings[-1].duration_s < 2.5  # its own timeout (3 x 0.5 s with the diagnosis), not the first row's 3 s
    # v2c targets are not in the engine (V2cChannel sends their requests). Of the 12 v3 targets, the first is
    # written as rows and the other 11 registered directly; the dead v2c node's probe target (for the SNMPv3
    # discovery probe of its diagnosis) is the probe user's first, written as rows.
    assert fast is not None and len(fast) == 11
    assert {entry[1][0] for entry in fast.values()} <= set(hosts)


async def test_uplink_discovery_of_many_new_nodes_is_spread_over_the_first_polls(snmpd: Agent) -> None:
    """More than discovery_batch new nodes: their discoveries are spread over the discovery_polls polls after
    the first (which registers their targets); a node waiting for its turn still reads the system group (an
    OK reading that says the uplink comes later). Fewer new nodes are discovered at once."""
    poller = SnmpPoller({"p": v2(COMMUNITY, snmpd.port)}, discovery_polls=3, discovery_batch=2)
    nodes = [node(f"n{i}", "p", uplink="lo") for i in range(6)]
    try:
        polls = [await poller.poll(nodes) for _ in range(4)]
        few = [node(f"m{i}", "p", uplink="lo") for i in range(2)]  # discovery_batch new nodes: at once
        joined = await poller.poll(nodes + few)
    finally:
        poller.close()
    assert all(r.ok and r.uplink is not None for r in joined), [(r.code, r.detail) for r in joined]
    assert [r.requests for r in joined] == [1] * 6 + [2, 2]
    for readings in polls:
        for r in readings:
            assert r.ok and r.uptime_ticks is not None and r.sys_name == "tslcd-snmpd", (r.code, r.detail)
    with_uplink = [sum(r.uplink is not None for r in readings) for readings in polls]
    assert with_uplink == [0, 2, 4, 6]
    first, waiting = polls[0][-1], polls[1][-1]
    assert first.uplink is None and "not looked for yet" in first.detail and "in 3 poll(s)" in first.detail
    assert first.sys_descr  # the system group, read whole at the first contact
    assert waiting.uplink is None and "in 2 poll(s)" in waiting.detail
    assert [r.requests for r in polls[0]] == [1] * 6  # the GET of the system group alone
    assert [r.requests for r in polls[1]] == [2, 2, 1, 1, 1, 1]  # GETBULK + GET, or the GET alone
    assert [r.requests for r in polls[3]] == [1, 1, 1, 1, 2, 2]


# ---------------------------------------------------------------- many v3 agents: one SNMP engine each


def _user_rows(engine: Any) -> list[bytes]:
    """The engine IDs of every row in the engine's usmUserTable (pysnmp's LCD of users)."""
    (column,) = engine.get_mib_builder().import_symbols("SNMP-USER-BASED-SM-MIB", "usmUserEngineID")
    rows, node_ = [], column
    for _ in range(10_000):
        try:
            node_ = column.getNextNode(node_.name)
        except NoSuchInstanceError:
            return rows
        rows.append(bytes(node_.syntax))
    raise AssertionError("usmUserTable walk did not end")


async def test_v3_agents_with_their_own_engines_are_kept_without_a_user_row_each() -> None:
    """A real network has one SNMP engine per router. pysnmp would copy the user into a usmUserTable
    row per agent engine (and walk all rows again at the next request: quadratic); the poller keeps
    each agent's localized keys in a dict instead, and every agent is read, twice."""
    agents = [start_snmpd(users=[USER], hosts=[f"127.79.2.{2 * i + 1}", f"127.79.2.{2 * i + 2}"],
                          extra_config=f"engineID tslcd-engine-{i}\n") for i in range(4)]
    profiles = {f"u{i}": v3(USER.name, a.port) for i, a in enumerate(agents)}
    nodes = [node(f"n{i}{j}", f"u{i}", uplink="lo", address=h)
             for i, a in enumerate(agents) for j, (h, _) in enumerate(a.endpoints)]
    poller = SnmpPoller(profiles)
    try:
        polls = [await poller.poll(nodes) for _ in range(2)]
        engine = await poller._engine("u0")
    finally:
        poller.close()
        for a in agents:
            a.stop()
    for r in polls[0] + polls[1]:
        assert r.ok and r.uplink is not None and r.uplink.in_octets > 0, (r.code, r.reason, r.detail)
    usm = engine.security_models[3]
    assert isinstance(usm, _PeerKeysUsm)
    peer_engines = {engine_id for engine_id, _ in usm.peers}
    assert len(peer_engines) == 4 and all(b"tslcd-engine-" in e for e in peer_engines)
    (local,) = engine.get_mib_builder().import_symbols("__SNMP-FRAMEWORK-MIB", "snmpEngineID")
    assert set(_user_rows(engine)) == {bytes(local.syntax)}  # the configured users only: no row per agent


@pytest.mark.parametrize(("auth", "priv"), [("sha", "aes128"), ("md5", "des"), ("sha512", "aes256"),
                                            ("sha256", "none"), ("none", "none")])
def test_peer_keys_are_the_ones_pysnmp_would_have_written(auth: str, priv: str) -> None:
    """For every security level, the kept entry is what pysnmp's own copy of the row reads."""
    engine = SnmpEngine()
    pysnmp_config.add_v3_user(engine, "tslcd", _AUTH[auth], AUTH_KEY if auth != "none" else None,
                              _PRIV[priv], PRIV_KEY if priv != "none" else None)
    stock, ours = engine.security_models[3], _PeerKeysUsm()
    peer = rfc1902.OctetString(b"\x80\x00\x1f\x88\x04peer-router-1")
    user = rfc1902.OctetString(b"tslcd")
    mic = engine.message_dispatcher.mib_instrum_controller
    kept = ours._SnmpUSMSecurityModel__clone_user_info(engine, peer, user)
    assert ours._SnmpUSMSecurityModel__get_user_info(mic, peer, user) is kept
    written = stock._SnmpUSMSecurityModel__clone_user_info(engine, peer, user)  # writes pysnmp's row
    assert [type(x) for x in kept] == [type(x) for x in written]
    assert [x.prettyPrint() for x in kept] == [x.prettyPrint() for x in written]
    # usmUserTable changed (here: that row): what was derived is dropped, pysnmp's table answers.
    again = ours._SnmpUSMSecurityModel__get_user_info(mic, peer, user)
    assert again is not kept and [x.prettyPrint() for x in again] == [x.prettyPrint() for x in written]
    assert ours.peers == {}
    with pytest.raises(NoSuchInstanceError):
        ours._SnmpUSMSecurityModel__get_user_info(mic, rfc1902.OctetString(b"\x80\x00\x1f\x88\x04other"), user)


def test_an_agents_engine_time_is_forgotten_after_300_s_without_news_not_300_s_after_its_first_answer() -> None:
    """pysnmp 7.1 queues an agent's engine ID for expiry at every answer and, 300 s later, deletes the entry
    however recent it is: a busy agent then gets requests with boots and time 0, refuses them
    (notInTimeWindow) and each is sent again (issue 13: the v3 workers' CPU a poll grew by a third, their
    memory by 28 MB, the queue holding an engine ID per answer). Ours expires an entry by its age."""
    usm = _PeerKeysUsm()
    timeline = usm._SnmpUSMSecurityModel__timeline
    queue = usm._SnmpUSMSecurityModel__timelineExpQueue
    fresh, stale = b"\x80\x00\x1f\x88\x04fresh", b"\x80\x00\x1f\x88\x04stale"
    now = int(time.time())
    timeline[fresh] = (1, 1000, 1000, now - 10)  # answered 10 s ago, and queued 300 s ago by an older answer
    timeline[stale] = (1, 1000, 1000, now - 301)  # nothing heard for 301 s
    tick = usm._SnmpUSMSecurityModel__expirationTimer
    queue[tick] = [fresh, stale]
    usm.receive_timer_tick(None, time.time())  # how pysnmp's timer reaches it
    assert fresh in timeline and stale not in timeline
    assert queue == {} and usm._SnmpUSMSecurityModel__expirationTimer == tick + 1
    # Looked over every 10 s, not at every tick (ten a second); an entry of a shape pysnmp 7.1 does not write
    # is left alone rather than raising in pysnmp's timer task (which would end every request's timeout).
    timeline[stale] = (1, 1000, 1000, now - 301)
    usm.receive_timer_tick(None, time.time())
    assert stale in timeline
    timeline[b"odd"] = ("not", "pysnmp 7.1's")
    usm._sweep_at = 0.0
    usm.receive_timer_tick(None, time.time())
    assert stale in timeline and b"odd" in timeline
    del timeline[b"odd"]
    usm._sweep_at = 0.0
    usm.receive_timer_tick(None, time.time())
    assert stale not in timeline and fresh in timeline
    # pysnmp's own method, for comparison: the queued expiry deletes the fresh entry too.
    stock = SnmpUSMSecurityModel()
    stock._SnmpUSMSecurityModel__timeline[fresh] = timeline[fresh]
    stock._SnmpUSMSecurityModel__timelineExpQueue[stock._SnmpUSMSecurityModel__expirationTimer] = [fresh]
    stock._SnmpUSMSecurityModel__expire_timeline_info()
    assert fresh not in stock._SnmpUSMSecurityModel__timeline


async def test_without_the_usm_internals_pysnmp_keeps_its_own_usm(snmpd: Agent, monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """A pysnmp whose USM no longer has the private methods replaced: its own USM is kept, v3 still works."""
    monkeypatch.delattr(SnmpUSMSecurityModel, "_SnmpUSMSecurityModel__sec2usr")
    assert not _PeerKeysUsm.usable()
    monkeypatch.undo()
    monkeypatch.setattr(_PeerKeysUsm, "usable", staticmethod(lambda: False))
    poller = SnmpPoller({"p": v3(USER.name, snmpd.port)})
    try:
        with caplog.at_level(logging.WARNING, logger="tslcd.snmp"):
            (r,) = await poller.poll([node("a", "p", uplink="lo")])
        engine = await poller._engine("p")
    finally:
        poller.close()
    assert r.ok, r.detail
    assert not isinstance(engine.security_models[3], _PeerKeysUsm)
    assert "USM internals changed" in caplog.text


async def test_a_port_that_echoes_requests_is_not_taken_for_an_agent_with_another_community() -> None:
    """An echo service (or any non-SNMP answer) on the port: a timeout that says what answered, not
    wrong_community (issue 12: a hostile run took one for an agent)."""
    loop = asyncio.get_running_loop()

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.transport.sendto(data, addr)

    transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        profile = SnmpProfile(version="2c", community=COMMUNITY, port=port, timeout_s=0.3, retries=0)  # type: ignore[arg-type]
        poller = SnmpPoller({"echo": profile}, max_in_flight=2)
        try:
            r = await poller.poll_node(Node("24133", "Echo", "commune", "Đắk Lắk", address="127.0.0.1", snmp="echo"))
        finally:
            poller.close()
    finally:
        transport.close()
    assert r.reason is Reason.TIMEOUT and "is not an SNMP agent" in r.detail and COMMUNITY not in r.detail


def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    return bytes([tag]) + (bytes([n]) if n < 128 else bytes([0x82]) + n.to_bytes(2, "big")) + body


def _int(v: int) -> bytes:
    return _tlv(0x02, v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big", signed=True))


def _empty_v3_report(msg_id: int) -> bytes:
    """An SNMPv3 Report-PDU without varbinds, answering message ``msg_id`` (pysnmp's KeyError, issue #241)."""
    engine = bytes.fromhex("80001f8880") + b"hostile0001"
    usm = _tlv(0x30, _tlv(0x04, engine) + _int(1) + _int(100) + _tlv(0x04, b"") * 3)
    report = _tlv(0xA8, _int(0) + _int(0) + _int(0) + _tlv(0x30, b""))
    header = _tlv(0x30, _int(msg_id) + _int(65507) + _tlv(0x04, b"\x00") + _int(3))
    return _tlv(0x30, _int(3) + header + _tlv(0x04, usm) + _tlv(0x30, _tlv(0x04, engine) + _tlv(0x04, b"") + report))


def _v3_msg_id(data: bytes) -> int | None:
    from pyasn1.codec.ber import decoder
    from pysnmp.proto.mpmod.rfc3412 import SNMPv3Message

    try:
        msg, _ = decoder.decode(data, asn1Spec=SNMPv3Message())
    except Exception:  # a v2c request: left unanswered, as an agent with another community would
        return None
    return int(msg[1][0])


@pytest.mark.parametrize(("version", "answer", "error"), [
    ("2c", "a2 00", "TypeError"),  # a bare constructed context tag: pyasn1's TypeError (pysnmp issue #82)
    # random bytes, a third of which start with such a tag (pyasn1's TypeError), the others its PyAsn1Error:
    # the reading names the error of the last datagram dropped
    ("2c", "random", "TypeError|PyAsn1Error"),
    ("2c", "empty v3 report", "KeyError"),  # the v3 diagnosis probe answered with an empty Report
    ("3", "empty v3 report", "KeyError"),  # the v3 discovery itself: its request was left pending forever
])
async def test_an_agent_answering_garbage_is_a_timeout_that_says_so_never_a_traceback_or_a_hang(
        version: str, answer: str, error: str) -> None:
    """Issue 12 (hostile run): an "agent" replying with bytes pysnmp cannot digest made asyncio log a pysnmp
    TypeError traceback per datagram, and an empty SNMPv3 Report left the poll waiting forever. Now the
    datagrams are dropped, the poll ends within its tries (plus the diagnosis), and its reading says what
    answered."""
    import random

    loop = asyncio.get_running_loop()
    rng = random.Random(12)
    uncaught: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, ctx: uncaught.append(ctx))

    class Hostile(asyncio.DatagramProtocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            if answer == "a2 00":
                self.transport.sendto(b"\xa2\x00", addr)
            elif answer == "random":
                self.transport.sendto(bytes([rng.choice(range(0xA0, 0xC0))])
                                      + rng.randbytes(rng.randrange(1, 60)), addr)
            elif (msg_id := _v3_msg_id(data)) is not None:
                self.transport.sendto(_empty_v3_report(msg_id), addr)

    transport, _ = await loop.create_datagram_endpoint(Hostile, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    profile = v2(COMMUNITY, port, timeout_s=0.3) if version == "2c" else v3(USER.name, port, timeout_s=0.3)
    poller = SnmpPoller({"h": profile}, max_in_flight=2)
    try:
        r = await asyncio.wait_for(poller.poll_node(node("24133", "h")), 20)  # a hang fails here
    finally:
        poller.close()
        transport.close()
        loop.set_exception_handler(None)
    assert not uncaught, uncaught
    assert r.reason is Reason.TIMEOUT, r
    assert "not a working SNMP agent" in r.detail and re.search(rf"dropped: ({error})\)", r.detail), r.detail
    assert COMMUNITY not in r.detail and AUTH_KEY not in r.detail


# ---------------------------------------------------------------- the worker process (issue 13, part 3)


def _same(r: SnmpReading) -> tuple[Any, ...]:
    """A reading without what moves between two polls (time, sysUpTime, counters)."""
    up = r.uplink
    return (r.code, r.reason, r.detail, r.sys_name, r.uptime_ticks is not None,
            None if up is None else (up.name, up.if_index, up.matched_by, up.oper_status, up.bits))


async def test_the_worker_process_reads_what_the_poller_reads(snmpd: Agent) -> None:
    from monitor.runtime.snmp_worker import SnmpWorker, pack, unpack

    profiles = {"p": v2(COMMUNITY, snmpd.port), "u": v3(USER.name, snmpd.port), "w": v2(WRONG, snmpd.port,
                                                                                          timeout_s=0.5)}
    nodes = [node("a", "p", uplink="lo"), node("b", "u", uplink="lo"), node("c", "p", uplink="no-such-if"),
             node("d", "w", uplink="lo"), node("e", "missing")]
    here = SnmpPoller(profiles)
    worker = SnmpWorker(profiles)
    try:
        expected = await here.poll(nodes)
        await here.poll(nodes)
        # Nodes reading the same OIDs (ifIndex 1 of lo, 64-bit counters) share one tuple of them.
        plan_a, plan_b = here._nodes["a"].get_plan, here._nodes["b"].get_plan
        assert plan_a is not None and plan_a is plan_b and len(plan_a) == 8
        got = await worker.poll(nodes)
        again = await worker.poll(nodes[:2])  # the worker keeps the nodes it was sent: only codes go over again
        pid = worker.pid
        assert pid is not None and pid != os.getpid()
        for f in ("cmdline", "environ"):  # the secrets went through the pipe, nowhere a process listing shows
            with open(f"/proc/{pid}/{f}", "rb") as fh:  # noqa: ASYNC230  (a few bytes of procfs)
                text = fh.read().decode("utf-8", "replace")
            assert not any(s in text for s in SECRETS)
    finally:
        here.close()
        worker.close()
    assert worker.pid is None
    assert [_same(r) for r in got] == [_same(r) for r in expected]
    assert [r.reason for r in got] == [Reason.OK, Reason.OK, Reason.UPLINK_NOT_FOUND, Reason.WRONG_COMMUNITY,
                                       Reason.LOCAL_ERROR]
    assert [_same(r) for r in again] == [_same(r) for r in expected[:2]]
    assert all(unpack(pack(r)) == r for r in got)
    # The main process keeps the readings: a string equal to one of an earlier poll is that poll's object.
    for first, second in zip(got[:2], again, strict=True):
        assert first.sys_name is not None and second.sys_name is first.sys_name
        assert second.code is first.code  # (sysDescr is read once, in the first poll)
        assert second.uplink is not None and first.uplink is not None and second.uplink.name is first.uplink.name


async def test_a_worker_answers_a_batch_of_readings_at_a_time_all_in_order(snmpd: Agent,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 13, part 4: 20,000 readings packed in one message were 20 MB of tuples in each process at once;
    they come ``BATCH`` at a time, and the poll's answer is the same: every node, in the order asked."""
    from multiprocessing.connection import Connection

    from monitor.runtime.snmp_worker import BATCH, SnmpWorker

    received: list[int] = []  # the length of each message's list of readings, as the main process gets them
    recv = Connection.recv

    def counting(self: Connection) -> Any:
        msg = recv(self)
        received.append(len(msg[1]))
        return msg

    monkeypatch.setattr(Connection, "recv", counting)

    profiles = {"p": v2(COMMUNITY, snmpd.port)}
    # Nodes without an address are answered at once (not polled); two real ones, in the second and last batch.
    nodes = [node(f"n{i:05d}", "p", address="") for i in range(2 * BATCH + 500)]
    nodes[BATCH + 7] = node("live1", "p", uplink="lo")
    nodes[-1] = node("live2", "p", uplink="lo")
    worker = SnmpWorker(profiles)
    try:
        got = await worker.poll(nodes)
        assert received == [BATCH, BATCH, 500]
        received.clear()
        again = await worker.poll(nodes[: BATCH])  # exactly one batch
        assert received == [BATCH]
        received.clear()
        assert await worker.poll([]) == [] and received == [0]
    finally:
        worker.close()
    assert [r.code for r in got] == [n.code for n in nodes]
    assert got[BATCH + 7].ok and got[-1].ok, (got[-1].reason, got[-1].detail)
    assert sum(r.reason is Reason.NOT_POLLED for r in got) == len(nodes) - 2
    assert [r.code for r in again] == [n.code for n in nodes[:BATCH]]
    assert worker.last_cpu_s is not None


async def test_a_worker_killed_or_late_fails_that_poll_and_the_next_poll_starts_another(snmpd: Agent) -> None:
    """A worker killed -9 mid-poll, one dead between polls, one over its deadline: each fails that poll only,
    is counted in tslcd_snmp_worker_restarts_total, and the next poll is answered by a new worker."""
    from exporters.metrics import SelfMetrics
    from monitor.runtime.snmp_worker import SnmpWorker, SnmpWorkerError

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # an "agent" that never answers, on loopback
    silent.bind(("127.0.0.1", 0))
    silent.settimeout(60)
    sm = SelfMetrics()
    profiles = {"p": v2(COMMUNITY, snmpd.port), "mute": v2(COMMUNITY, silent.getsockname()[1], timeout_s=5)}
    worker = SnmpWorker(profiles, on_restart=sm.snmp_worker_restarts.inc)
    good, mute = [node("a", "p", uplink="lo")], [node("m", "mute", uplink="lo")]

    def restarts() -> float | None:
        for fam in text_string_to_metric_families(sm.render().decode()):
            for s in fam.samples:
                if s.name == "tslcd_snmp_worker_restarts_total":
                    return s.value
        return None

    try:
        assert (await worker.poll(good))[0].ok
        first = worker.pid
        poll = asyncio.ensure_future(worker.poll(mute))
        await asyncio.to_thread(silent.recvfrom, 65535)  # the worker's request arrived: the poll is in flight
        assert first is not None
        os.kill(first, signal.SIGKILL)
        with pytest.raises(SnmpWorkerError, match="died during a poll"):
            await asyncio.wait_for(poll, 30)
        assert worker.restarts == 1 and restarts() == 1
        assert (await worker.poll(good))[0].ok
        second = worker.pid
        assert second not in (None, first)

        os.kill(second, signal.SIGKILL)  # dead between two polls
        for _ in range(500):  # bounded: until the kill has landed (worker.pid checks the process)
            if worker.pid is None:
                break
            await asyncio.sleep(0.01)
        assert (await worker.poll(good))[0].ok
        assert worker.restarts == 2 and worker.pid not in (None, second)

        worker.deadline_s = 1.0  # a worker that overruns is killed (by its PID), not waited for
        late = worker.pid
        with pytest.raises(SnmpWorkerError, match="overran its 1 s deadline"):
            await worker.poll(mute)
        assert worker.restarts == 3 and restarts() == 3
        assert late is not None and not os.path.exists(f"/proc/{late}")  # noqa: ASYNC240
        worker.deadline_s = None
        assert (await worker.poll(good))[0].ok
    finally:
        worker.close()
        silent.close()


def test_workers_wanted_one_per_25000_nodes_at_most_one_per_cpu() -> None:
    from monitor.runtime.snmp_worker import SnmpWorkers

    auto = SnmpWorkers({"c": v2(COMMUNITY, 161), "u": v3(USER.name, 161)})
    cpus = os.cpu_count() or 1
    assert [auto.wanted(n) for n in (0, 1, 25_000)] == [1, 1, 1]
    assert auto.wanted(25_001) == min(2, cpus) and auto.wanted(40_000) == min(2, cpus)
    assert auto.wanted(10**6) == cpus
    assert SnmpWorkers({}, count=3).wanted(10) == 3
    # A v3 node costs the worker about 1.5 v2c nodes: 20,000 of them need two workers where v2c needs one.
    assert auto.load_of([node("a", "c"), node("b", "u"), node("c", "missing")]) == 3.5
    assert auto.wanted(auto.load_of([node(str(i), "u") for i in range(20_000)])) == min(2, cpus)
    assert auto.wanted(auto.load_of([node(str(i), "c") for i in range(20_000)])) == 1


async def test_several_workers_share_the_nodes_and_answer_in_order(snmpd: Agent) -> None:
    """snmp.workers: each node polled by one of the workers, always the same one; the readings in the order
    asked, as one poller reads them; a worker killed fails that poll, is counted, and is started again."""
    from monitor.runtime.snmp_worker import SnmpWorkerError, SnmpWorkers

    restarted: list[int] = []
    profiles = {"p": v2(COMMUNITY, snmpd.port), "u": v3(USER.name, snmpd.port), "w": v2(WRONG, snmpd.port,
                                                                                          timeout_s=0.5)}
    nodes = [node(f"n{i}", ("p", "u", "w")[i % 3], uplink="lo" if i % 4 else "no-such-if") for i in range(12)]
    here = SnmpPoller(profiles)
    pool = SnmpWorkers(profiles, count=2, on_restart=lambda: restarted.append(1))
    try:
        expected = await here.poll(nodes)
        got = await pool.poll(nodes)
        assert [_same(r) for r in got] == [_same(r) for r in expected]
        assert [r.code for r in got] == [n.code for n in nodes]
        pids = pool.pids
        assert len(pids) == 2 and len(set(pids)) == 2 and os.getpid() not in pids
        shares = {n.code: pool._share(n.code) for n in nodes}
        assert set(shares.values()) == {0, 1}  # both have nodes (12 codes: not all hashed to one)
        again = await pool.poll(nodes[::-1])
        assert [r.code for r in again] == [n.code for n in nodes[::-1]] and pool.pids == pids
        os.kill(pids[1], signal.SIGKILL)
        for _ in range(500):  # bounded: until the kill has landed
            if pool.workers[1].pid is None:
                break
            await asyncio.sleep(0.01)
        assert (await pool.poll(nodes))[0].code == "n0"  # the dead one is started again before the poll
        assert pool.restarts == 1 and restarted == [1] and pool.pids[0] == pids[0] and pool.pids[1] != pids[1]
        pool.workers[0].deadline_s = 0.5  # the "w" nodes wait 0.5 s per request: this worker overruns
        with pytest.raises(SnmpWorkerError, match="deadline"):
            await pool.poll(nodes)
        assert pool.restarts == 2
    finally:
        here.close()
        pool.close()
    assert pool.pids == [] and pool.restarts == 2
