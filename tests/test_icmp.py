"""Tests of monitor.probes.icmp against real sockets: loopback, blackholed test ranges and network namespaces."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import icmplib
import pytest
from hypothesis import given
from hypothesis import strategies as st

import monitor.errors
import monitor.probes.icmp
from monitor.probes.icmp import (
    IcmpEngine,
    IcmpPermissionError,
    PingResult,
    blocks_needed,
    echo_checksum,
    echo_key,
    jitter,
    ones_complement_sum,
)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="raw sockets and namespaces need root (CI runs as root)")
netns = pytest.mark.netns

_PID = os.getpid()


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=30)


def _loopback(n: int, second_octet: int = 1) -> list[str]:
    """n distinct addresses in 127.<second_octet>.0.0/16, all answered by lo."""
    return [f"127.{second_octet}.{i >> 8}.{i & 0xFF}" for i in range(1, n + 1)]


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def blackhole_routes() -> Iterator[None]:
    """The test ranges are blackholed in the root namespace, so nothing can leave the machine."""
    added: list[tuple[str, ...]] = []
    for family, prefix in (("-4", "198.18.0.0/15"), ("-6", "2001:db8::/32")):
        if "blackhole" not in _ip(family, "route", "show", "type", "blackhole", prefix).stdout:
            _ip(family, "route", "add", "blackhole", prefix)
            added.append((family, prefix))
    try:
        yield
    finally:
        for family, prefix in reversed(added):
            _ip(family, "route", "del", "blackhole", prefix, check=False)


def _assert_blackholed(address: str) -> None:
    # Another session may have removed a shared route; never sweep a test
    # address that would fall through to the default route.
    route = _ip("route", "get", address, check=False)
    assert route.returncode != 0 or route.stdout.startswith("blackhole"), route.stdout


@dataclass(frozen=True)
class NsHost:
    """A test host: a network namespace joined to the root namespace by a veth pair."""

    ns: str
    v4: str
    v6: str


@pytest.fixture
def netns_host(blackhole_routes: None) -> Iterator[Callable[[bool], NsHost]]:
    """Factory of namespace hosts on 198.19.x.y/30 and 2001:db8::/64; answer=False makes one ignore echoes."""
    created: list[tuple[str, str]] = []
    third = 200 + _PID % 50  # per-session subnet: other suites may run at the same time

    def make(answer: bool) -> NsHost:
        n = len(created)
        ns = f"tslcd-icmp-{_PID}-{n}"
        here, there = f"tic{_PID % 100000}{n}a", f"tic{_PID % 100000}{n}b"
        created.append((ns, here))
        v4_here, v4_there = f"198.19.{third}.{4 * n + 1}", f"198.19.{third}.{4 * n + 2}"
        v6_net = f"2001:db8:7c{n:02x}:{_PID % 0x10000:x}"
        _ip("netns", "add", ns)
        _ip("link", "add", here, "type", "veth", "peer", "name", there, "netns", ns)
        _ip("addr", "add", f"{v4_here}/30", "dev", here)
        _ip("-6", "addr", "add", f"{v6_net}::1/64", "dev", here, "nodad")
        _ip("link", "set", here, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "addr", "add", f"{v4_there}/30", "dev", there)
        _ip("-n", ns, "-6", "addr", "add", f"{v6_net}::2/64", "dev", there, "nodad")
        _ip("-n", ns, "link", "set", there, "up")
        ignore = "0" if answer else "1"
        for key in ("net.ipv4.icmp_echo_ignore_all", "net.ipv6.icmp.echo_ignore_all"):
            _ip("netns", "exec", ns, "sysctl", "-q", "-w", f"{key}={ignore}")
        return NsHost(ns, v4_there, f"{v6_net}::2")

    try:
        yield make
    finally:
        for ns, here in reversed(created):
            _ip("netns", "del", ns, check=False)  # takes the veth pair with it
            _ip("link", "del", here, check=False)


@pytest.fixture
def engine() -> Iterator[IcmpEngine]:
    with IcmpEngine() as eng:
        yield eng


@pytest.fixture(scope="module")
def readable_code() -> Iterator[str]:
    """A world-readable copy of monitor/probes/icmp.py and icmplib, for a child running as nobody.

    The repo or the venv may sit under a directory nobody cannot read; the
    copy makes the child independent of that and of the rest of the package.
    """
    root = tempfile.mkdtemp(prefix="tslcd-icmp-")
    try:
        os.chmod(root, 0o755)
        pkg = Path(root, "monitor")
        (pkg / "probes").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "probes" / "__init__.py").write_text("")
        shutil.copy(monitor.probes.icmp.__file__, pkg / "probes" / "icmp.py")
        shutil.copy(monitor.errors.__file__, pkg / "errors.py")  # the one import icmp.py has of the project
        shutil.copytree(
            Path(icmplib.__file__).parent, Path(root, "icmplib"), ignore=shutil.ignore_patterns("__pycache__")
        )
        for path in Path(root).rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def ping_ns() -> Iterator[Callable[[str], str]]:
    """Factory of empty namespaces (lo up) with the given net.ipv4.ping_group_range."""
    created: list[str] = []

    def make(group_range: str) -> str:
        ns = f"tslcd-icmp-dg-{_PID}-{len(created)}"
        created.append(ns)
        _ip("netns", "add", ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("netns", "exec", ns, "sysctl", "-q", "-w", f"net.ipv4.ping_group_range={group_range}")
        return ns

    try:
        yield make
    finally:
        for ns in reversed(created):
            _ip("netns", "del", ns, check=False)


_CHILD = """
import asyncio, json, os, sys
sys.path.insert(0, {root!r})
from monitor.probes.icmp import IcmpEngine, IcmpPermissionError

async def main():
    try:
        eng = IcmpEngine()
    except IcmpPermissionError as exc:
        return {{"error": str(exc), "gid": os.getgid()}}
    with eng:
        out = {{"uid": os.getuid(), "mode": eng.mode, "sweeps": []}}
        for addresses, kwargs in {sweeps!r}:
            res = await eng.sweep(addresses, **kwargs)
            out["sweeps"].append({{a: [r.sent, r.received] for a, r in res.items()}})
        return out

print(json.dumps(asyncio.run(main())))
"""


def _run_as_nobody(ns: str, root: str, sweeps: list[tuple[list[str], dict[str, float]]]) -> dict[str, object]:
    code = textwrap.dedent(_CHILD.format(root=root, sweeps=sweeps))
    cmd = ["ip", "netns", "exec", ns, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    cmd += ["--no-new-privs", sys.executable, "-I", "-B", "-c", code]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, cwd=root, env={"PATH": "/usr/sbin:/usr/bin:/bin"}
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout)
    return result


# ---------------------------------------------------------------- pure logic


@given(ident=st.integers(0, 0xFFFF), seq=st.integers(0, 0xFFFF), payload=st.binary(min_size=8, max_size=64))
def test_incremental_checksum_makes_a_valid_packet(ident: int, seq: int, payload: bytes) -> None:
    template = bytes([8, 0, 0, 0]) + ident.to_bytes(2, "big") + b"\0\0" + payload
    packet = bytearray(template)
    packet[2:4] = echo_checksum(ones_complement_sum(template), seq).to_bytes(2, "big")
    packet[6:8] = seq.to_bytes(2, "big")
    # RFC 1071: a packet carrying its checksum sums to all ones.
    assert ones_complement_sum(packet) == 0xFFFF


@given(st.lists(st.floats(0, 10, allow_nan=False), max_size=20))
def test_jitter_matches_icmplib_definition(rtts_ms: list[float]) -> None:
    ours = jitter(rtts_ms)
    if not rtts_ms:
        assert ours is None
        return
    theirs = icmplib.Host("127.0.0.1", len(rtts_ms), rtts_ms).jitter  # ms, rounded to 3 decimals
    assert ours == pytest.approx(theirs, abs=0.0006)


@given(st.integers(1, 10), st.lists(st.floats(1e-6, 5, allow_nan=False), max_size=10))
def test_ping_result_statistics_are_consistent(sent: int, rtts: list[float]) -> None:
    rtts = rtts[:sent]
    r = PingResult("127.0.0.1", sent, len(rtts), tuple(rtts))
    assert 0.0 <= r.loss_ratio <= 1.0
    assert r.reachable == bool(rtts)
    if rtts:
        assert r.rtt_min is not None and r.rtt_avg is not None and r.rtt_max is not None
        assert r.rtt_min <= r.rtt_avg * (1 + 1e-12) and r.rtt_avg <= r.rtt_max * (1 + 1e-12)
        assert r.jitter is not None and r.jitter >= 0.0
    else:
        assert (r.rtt_min, r.rtt_avg, r.rtt_max, r.jitter) == (None, None, None, None)
        assert r.loss_ratio == 1.0


def test_single_reply_has_zero_jitter() -> None:
    assert PingResult("::1", 3, 1, (0.001,)).jitter == 0.0


@given(st.integers(1, 10_000_000))
def test_blocks_cover_every_echo_and_no_more(echoes: int) -> None:
    blocks = blocks_needed(echoes)
    assert (blocks - 1) * 0x10000 < echoes <= blocks * 0x10000


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
def test_echo_key_keeps_identifier_and_sequence_apart(ident: int, seq: int) -> None:
    key = echo_key(ident, seq)
    assert (key >> 16, key & 0xFFFF) == (ident, seq)


# ---------------------------------------------------------------- real sockets


@needs_root
async def test_thousands_of_loopback_addresses_answer_with_zero_loss(engine: IcmpEngine) -> None:
    addresses = _loopback(5000)
    results = await engine.sweep(addresses, count=3)
    assert engine.mode == "raw"
    assert set(results) == set(addresses)
    lost = [r for r in results.values() if r.received != 3]
    assert not lost, f"{len(lost)} hosts lost echoes, e.g. {lost[:3]}"
    assert all(r.sent == 3 and r.loss_ratio == 0.0 and len(r.rtts) == 3 for r in results.values())
    assert all(0.0 < rtt < 1.0 for r in results.values() for rtt in r.rtts)


@needs_root
async def test_ipv6_loopback_answers(engine: IcmpEngine) -> None:
    result = (await engine.sweep(["::1"], count=3))["::1"]
    assert (result.sent, result.received, result.reachable) == (3, 3, True)
    assert result.rtt_min is not None and result.rtt_min > 0


@needs_root
async def test_mixed_sweep_collapses_duplicates_and_keeps_each_spelling(engine: IcmpEngine) -> None:
    addresses = [*_loopback(200, 2), "::1", "0:0::1", "127.0.0.1", "127.0.0.1"]
    results = await engine.sweep(addresses, count=2, interval_s=0.01)
    assert list(results) == [*_loopback(200, 2), "::1", "0:0::1", "127.0.0.1"]
    assert all(r.received == 2 for r in results.values())
    assert results["0:0::1"].address == "0:0::1"


@needs_root
async def test_blackholed_addresses_are_lost_without_exception(engine: IcmpEngine, blackhole_routes: None) -> None:
    dark = ["198.18.7.1", "198.18.7.2", "2001:db8:dead::1"]
    _assert_blackholed(dark[0])
    lit = _loopback(300, 3)
    results = await engine.sweep([*dark, *lit, "::1"], count=3, interval_s=0.01)
    for address in dark:
        assert (results[address].sent, results[address].loss_ratio) == (3, 1.0)
        assert not results[address].reachable and results[address].rtt_avg is None
    assert all(results[a].received == 3 for a in [*lit, "::1"])


@needs_root
@netns
async def test_silent_host_is_lost_after_timeout(engine: IcmpEngine, netns_host: Callable[[bool], NsHost]) -> None:
    silent = netns_host(False)
    results = await engine.sweep([silent.v4, silent.v6, "127.0.0.1"], count=2, timeout_s=0.2, interval_s=0.05)
    assert results[silent.v4].loss_ratio == 1.0 and results[silent.v6].loss_ratio == 1.0
    assert results["127.0.0.1"].received == 2


@needs_root
@netns
async def test_host_in_namespace_answers_over_veth(engine: IcmpEngine, netns_host: Callable[[bool], NsHost]) -> None:
    host = netns_host(True)
    results = await engine.sweep([host.v4, host.v6], count=3, interval_s=0.05)
    assert results[host.v4].received == 3 and results[host.v6].received == 3


@needs_root
async def test_replies_slower_than_the_timeout_count_as_lost(engine: IcmpEngine) -> None:
    # A limit no reply can meet, instead of a slow host (httpx style).
    results = await engine.sweep(["127.0.0.1", "::1"], count=2, timeout_s=1e-9, interval_s=0.0)
    assert all(r.loss_ratio == 1.0 and r.rtts == () for r in results.values())


@needs_root
async def test_a_stalled_event_loop_does_not_turn_timely_replies_into_loss(engine: IcmpEngine) -> None:
    async def stall_the_loop() -> None:
        await asyncio.sleep(0)  # let the sweep send first: tasks start in creation order
        # The stimulus, not synchronisation: a blocking render (docs/benchmarks.md: a
        # Prometheus exposition holds the loop 1.2-1.6 s) longer than the timeout.
        time.sleep(0.4)  # noqa: ASYNC251

    addresses = [*_loopback(20, 8), "::1"]
    results, _ = await asyncio.gather(engine.sweep(addresses, count=1, timeout_s=0.2), stall_the_loop())
    assert all(r.received == 1 for r in results.values())
    # RTTs come from kernel receive timestamps, not from when the loop read them.
    assert all(r.rtt_max is not None and r.rtt_max < 0.2 for r in results.values())


@needs_root
async def test_more_than_65536_echoes_roll_over_to_a_new_identifier(engine: IcmpEngine) -> None:
    addresses = _loopback(1000, 4)
    results = await engine.sweep(addresses, count=70, timeout_s=2.0, pps=50_000, interval_s=0.01)
    assert sum(r.received for r in results.values()) == 70_000


@needs_root
async def test_concurrent_sweeps_on_one_engine_keep_their_replies_apart(engine: IcmpEngine) -> None:
    a, b = _loopback(1000, 5), [*_loopback(1000, 6), "::1"]
    ra, rb = await asyncio.gather(engine.sweep(a, count=3), engine.sweep(b, count=3))
    assert set(ra) == set(a) and set(rb) == set(b)
    assert all(r.received == 3 for r in [*ra.values(), *rb.values()])


@needs_root
@netns
async def test_replies_to_another_engine_with_the_same_identifier_are_ignored(
    netns_host: Callable[[bool], NsHost],
) -> None:
    silent = netns_host(False)
    with IcmpEngine() as quiet, IcmpEngine() as loud:
        # Force the collision the payload token exists for: both engines use
        # the same (identifier, sequence) pairs, and every raw ICMP socket
        # receives every echo reply on the host.
        loud._next_ident = quiet._next_ident
        silent_results, loud_results = await asyncio.gather(
            quiet.sweep([silent.v4], count=3, timeout_s=0.5, interval_s=0.05),
            loud.sweep(["127.0.0.1"], count=3, timeout_s=0.5, interval_s=0.05),
        )
    assert loud_results["127.0.0.1"].received == 3
    assert silent_results[silent.v4].received == 0


@needs_root
async def test_invalid_input_raises_before_sending(engine: IcmpEngine) -> None:
    with pytest.raises(ValueError, match="not a usable IP address: 'router.example'"):
        await engine.sweep(["127.0.0.1", "router.example"])
    with pytest.raises(TypeError, match="not one string"):
        await engine.sweep("127.0.0.1")
    for kwargs in ({"count": 0}, {"timeout_s": 0.0}, {"pps": 0}, {"interval_s": -1.0}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            await engine.sweep(["127.0.0.1"], **kwargs)
    assert await engine.sweep([]) == {}


@needs_root
async def test_closed_engine_refuses_to_sweep() -> None:
    async with IcmpEngine() as eng:
        assert (await eng.sweep(["127.0.0.1"], count=1))["127.0.0.1"].reachable
    with pytest.raises(RuntimeError, match="closed"):
        await eng.sweep(["127.0.0.1"])


@needs_root
@netns
def test_datagram_sockets_serve_a_non_root_user(readable_code: str, ping_ns: Callable[[str], str]) -> None:
    ns = ping_ns("0 2147483647")
    small = (["127.0.0.1", "127.0.0.2", "::1"], {"count": 3, "interval_s": 0.01})
    # 70,000 echoes: more than one ping socket's 65,536 sequences.
    large = (_loopback(1000, 7), {"count": 70, "timeout_s": 2.0, "pps": 50_000, "interval_s": 0.01})
    out = _run_as_nobody(ns, readable_code, [small, large])
    assert out.get("uid") == 65534 and out.get("mode") == "datagram", out
    sweeps = out["sweeps"]
    assert isinstance(sweeps, list)
    assert sweeps[0] == {"127.0.0.1": [3, 3], "127.0.0.2": [3, 3], "::1": [3, 3]}
    assert sum(received for _sent, received in sweeps[1].values()) == 70_000


@needs_root
@netns
def test_no_icmp_permission_explains_every_fix(readable_code: str, ping_ns: Callable[[str], str]) -> None:
    ns = ping_ns("1 0")
    out = _run_as_nobody(ns, readable_code, [])
    message = str(out.get("error"))
    assert "run as root" in message
    assert "setcap cap_net_raw+ep" in message and "CAP_NET_RAW" in message
    assert 'sysctl -w net.ipv4.ping_group_range="0 2147483647"' in message
    assert 'net.ipv4.ping_group_range is "1 0"' in message and "gid 65534" in message


def test_permission_error_is_a_runtime_error() -> None:
    assert issubclass(IcmpPermissionError, RuntimeError)
