"""The namespace lab: real namespaces, real pings, and nothing left behind or let out."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from monitor.lab.netns import GUARD_METRIC_BASE, TEST_NET4, TEST_NET6, Host, Lab, available, cleanup_stale

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root (CI runs as root)"),
]

PREFIX = "tsttest"
FPING = "/usr/bin/fping"
REPO = Path(__file__).resolve().parents[1]


def answers(address: str) -> bool:
    """One echo request from the root namespace, to a lab address only."""
    addr = ipaddress.ip_address(address)
    assert addr in (TEST_NET4 if addr.version == 4 else TEST_NET6), f"refusing to ping {address}"
    done = subprocess.run([FPING, "-q", "-c", "1", "-t", "500", address], capture_output=True, timeout=10)
    return done.returncode == 0


def eventually(predicate: Callable[[], bool], deadline_s: float = 5.0) -> bool:
    """Poll until ``predicate`` holds or the deadline passes, for state the kernel settles asynchronously."""
    end = time.monotonic() + deadline_s
    while True:
        if predicate():
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.02)  # polling interval, not synchronisation


def addresses(*hosts: Host) -> list[str]:
    return [a for h in hosts for a in (h.ipv4, h.ipv6) if a]


def ip_json(*args: str) -> list[dict[str, object]]:
    out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=True, timeout=10).stdout
    return json.loads(out) if out.strip() else []


def netns_names() -> list[str]:
    return [str(d["name"]) for d in ip_json("netns", "list")]


def link_names() -> list[str]:
    return [str(d["ifname"]) for d in ip_json("link", "show")]


def guard_routes(metric: int) -> list[str]:
    routes = ip_json("-4", "route", "show", "type", "blackhole") + ip_json("-6", "route", "show", "type", "blackhole")
    return sorted(str(r["dst"]) for r in routes if r.get("metric") == metric)


def dropped_by_guard(address: str) -> bool:
    """True when the root namespace resolves ``address`` to a blackhole route, not to a link or the default.

    The kernel answers a lookup that ends in a blackhole route with EINVAL; a route via any
    device (the default route included) would be printed instead.
    """
    done = subprocess.run(["ip", "route", "get", address], capture_output=True, text=True, timeout=10)
    return done.returncode != 0 and "Invalid argument" in done.stderr


def leftovers(lab: Lab) -> list[str]:
    mine = f"{lab.prefix}-{lab.tag}-"
    return [n for n in netns_names() + link_names() if n.startswith(mine)]


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab(PREFIX) as lab:
        yield lab


def test_lab_is_available_as_root() -> None:
    assert available() is None


def test_hosts_answer_over_ipv4_and_ipv6(lab: Lab) -> None:
    router = lab.add_router("agg", *lab.allocate())
    behind = lab.add_host("commune", *lab.allocate(), behind=router)
    direct = lab.add_host("direct", *lab.allocate())
    v4_only = lab.add_host("v4only", lab.allocate()[0])

    for address in addresses(router, behind, direct, v4_only):
        # The first echo over IPv6 waits for neighbour discovery on the new veths: on a loaded machine one echo
        # of 500 ms could miss it (seen once); the kernel settles it within the deadline.
        assert eventually(lambda a=address: answers(a)), address


def test_root_namespace_does_not_forward(lab: Lab) -> None:
    before = [Path(p).read_text() for p in ("/proc/sys/net/ipv4/ip_forward",
                                            "/proc/sys/net/ipv6/conf/all/forwarding")]
    lab.add_host("h", *lab.allocate(), behind=lab.add_router("r", *lab.allocate()))

    after = [Path(p).read_text() for p in ("/proc/sys/net/ipv4/ip_forward",
                                           "/proc/sys/net/ipv6/conf/all/forwarding")]
    assert after == before


def test_link_down_stops_answers_and_link_up_restores_them(lab: Lab) -> None:
    host = lab.add_host("h", *lab.allocate())
    other = lab.add_host("other", *lab.allocate())

    lab.set_link(host, False)
    assert not any(answers(a) for a in addresses(host))
    assert all(answers(a) for a in addresses(other))

    lab.set_link(host, True)
    for address in addresses(host):
        assert eventually(partial(answers, address)), address


def test_router_down_makes_its_hosts_unreachable_but_not_direct_hosts(lab: Lab) -> None:
    router = lab.add_router("agg", *lab.allocate())
    behind = [lab.add_host(f"c{i}", *lab.allocate(), behind=router) for i in range(2)]
    direct = lab.add_host("direct", *lab.allocate())

    lab.set_link(router, False)
    assert not any(answers(a) for a in addresses(router, *behind))
    assert all(answers(a) for a in addresses(direct))

    lab.set_link(router, True)
    for address in addresses(router, *behind):
        assert eventually(partial(answers, address)), address


def test_link_down_behind_a_router_leaves_the_router_up(lab: Lab) -> None:
    router = lab.add_router("agg", *lab.allocate())
    host = lab.add_host("c", *lab.allocate(), behind=router)

    lab.set_link(host, False)
    assert not any(answers(a) for a in addresses(host))
    assert all(answers(a) for a in addresses(router))


def test_guard_routes_exist_while_open_and_close_removes_everything() -> None:
    lab = Lab(PREFIX)
    try:
        assert guard_routes(lab.guard_metric) == sorted([str(TEST_NET4), str(TEST_NET6)])
        router = lab.add_router("agg", *lab.allocate())
        hosts = [router, lab.add_host("c", *lab.allocate(), behind=router), lab.add_host("d", *lab.allocate())]
        assert leftovers(lab)
    finally:
        lab.close()

    assert leftovers(lab) == []
    routes = json.dumps(ip_json("-4", "route", "show") + ip_json("-6", "route", "show"))
    assert not any(f'"{a}"' in routes for a in addresses(*hosts))
    assert guard_routes(lab.guard_metric) == []  # no other lab is open in this process
    lab.close()  # idempotent


def test_with_block_cleans_up_when_its_body_fails() -> None:
    with pytest.raises(RuntimeError, match="test failed"):
        with Lab(PREFIX) as lab:
            lab.add_host("h", *lab.allocate())
            raise RuntimeError("test failed")

    assert leftovers(lab) == []
    assert guard_routes(lab.guard_metric) == []


def test_namespace_deleted_under_the_lab_is_blackholed_and_close_still_works() -> None:
    with Lab(PREFIX) as lab:
        gone = lab.add_host("gone", *lab.allocate())
        kept = lab.add_host("kept", *lab.allocate())
        assert not any(dropped_by_guard(a) for a in addresses(gone))
        subprocess.run(["ip", "netns", "del", gone.netns], check=True, timeout=10)

        # The kernel destroys the namespace's veth pair asynchronously; then only the guard matches.
        for address in addresses(gone):
            assert eventually(partial(dropped_by_guard, address)), address
            assert not answers(address)
        assert all(eventually(partial(answers, a)) for a in addresses(kept))  # first IPv6 echo: see above
    assert leftovers(lab) == []


def test_rejects_addresses_outside_the_test_ranges(lab: Lab) -> None:
    for ipv4, ipv6 in [("192.0.2.10", None), ("8.8.8.8", None), ("198.18.0.9", "fd00::9"),
                       ("198.18.0.9", "2001:db9::9"), ("198.19.255.7", None), ("not-an-ip", None)]:
        with pytest.raises(ValueError):
            lab.add_host("bad", ipv4, ipv6)
    assert lab.hosts == ()


def start_child_lab() -> tuple[subprocess.Popen[str], str, int]:
    """A process that opens a lab of three nodes, says its tag and guard metric, then waits forever."""
    script = (
        "import sys\n"
        "from monitor.lab.netns import Lab\n"
        f"lab = Lab({PREFIX!r})\n"
        "router = lab.add_router('agg', *lab.allocate())\n"
        "lab.add_host('c', *lab.allocate(), behind=router)\n"
        "lab.add_host('d', *lab.allocate())\n"
        "print(lab.tag, lab.guard_metric, flush=True)\n"
        "sys.stdin.read()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline()  # EOF (empty) if the child failed: then kill and report below
    if not line:
        child.kill()
        _, err = child.communicate(timeout=10)
        pytest.fail(f"the child lab failed: {err}")
    tag, metric = line.split()
    return child, tag, int(metric)


def test_ctrl_c_in_a_program_holding_a_lab_leaves_nothing() -> None:
    child, tag, metric = start_child_lab()
    mine = f"{PREFIX}-{tag}-"
    assert [n for n in netns_names() if n.startswith(mine)]

    child.send_signal(signal.SIGINT)  # KeyboardInterrupt, then the atexit handler closes the lab
    child.communicate(timeout=30)

    assert [n for n in netns_names() + link_names() if n.startswith(mine)] == []
    assert guard_routes(metric) == []


def test_cleanup_stale_removes_what_a_killed_process_left() -> None:
    child, tag, metric = start_child_lab()
    child.kill()  # SIGKILL: no cleanup at all
    child.communicate(timeout=10)
    mine = f"{PREFIX}-{tag}-"
    assert [n for n in netns_names() if n.startswith(mine)], "the killed lab left no namespace?"
    assert guard_routes(metric)

    removed = cleanup_stale(PREFIX)

    assert removed >= 3 + 2  # three namespaces (+ root-side links) and two guard routes
    assert [n for n in netns_names() + link_names() if n.startswith(mine)] == []
    assert guard_routes(metric) == []


def test_cleanup_stale_leaves_live_labs_alone(lab: Lab) -> None:
    host = lab.add_host("h", *lab.allocate())

    cleanup_stale(PREFIX)

    assert leftovers(lab)
    assert guard_routes(lab.guard_metric)
    assert all(answers(a) for a in addresses(host))
    assert GUARD_METRIC_BASE < lab.guard_metric
