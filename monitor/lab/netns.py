"""Network-namespace lab: test hosts in 198.18.0.0/15 and 2001:db8::/32 that no packet can leave."""

from __future__ import annotations

import atexit
import ipaddress
import json
import logging
import os
import random
import re
import shlex
import shutil
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from monitor.errors import LabError
from monitor.procs import pid_alive

__all__ = [
    "GUARD_METRIC_BASE",
    "ROOT_GW4",
    "ROOT_GW6",
    "TEST_NET4",
    "TEST_NET6",
    "Host",
    "Lab",
    "LabError",
    "available",
    "cleanup_stale",
]

log = logging.getLogger("tslcd.netns")

TEST_NET4 = ipaddress.IPv4Network("198.18.0.0/15")
TEST_NET6 = ipaddress.IPv6Network("2001:db8::/32")

# The root namespace's end of every root-side link carries these addresses, so that
# the root pings from, and hosts reply to, an address inside the test ranges: never
# to this machine's uplink address. Their blocks are reserved (no host there).
INFRA4 = ipaddress.IPv4Network("198.19.255.0/24")
INFRA6 = ipaddress.IPv6Network("2001:db8:19:ff::/64")
ROOT_GW4 = "198.19.255.1"
ROOT_GW6 = "2001:db8:19:ff::1"

# Every link is point-to-point: the upper end (root or router) is fe80::1, the lower
# end (the node's "eth0") fe80::2. Both are added with nodad, so no DAD wait.
UPPER_LL6 = "fe80::1"
LOWER_LL6 = "fe80::2"
UPLINK = "eth0"

# Each process's guard routes carry metric GUARD_METRIC_BASE + pid, so labs of parallel
# runs never remove each other's guard and cleanup_stale knows whose guard it is.
GUARD_METRIC_BASE = 0x5400_0000
_PID_LIMIT = 1 << 22  # kernel pid_max can never exceed this

MAX_NODES = 250  # per lab; also keeps root-side interface names within 15 characters
_IFNAMSIZ = 15
_CMD_TIMEOUT_S = 30.0
_CLOSE_ATTEMPTS = 3

_PREFIX_RE = re.compile(r"[a-z][a-z0-9]{0,7}")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
_OWNER_RE = re.compile(r"tslcd-lab-(\d+)")




@dataclass(frozen=True)
class Host:
    """A node of the lab: one network namespace whose ``eth0`` links it to the root or a router.

    Its addresses sit on its loopback, so they survive its link going down.
    """

    name: str
    netns: str
    ipv4: str
    ipv6: str | None = None
    router: bool = False
    behind: str | None = None  # name of the router it hangs off; None: linked to the root namespace


# --- running ip -----------------------------------------------------------------------------


def _run(argv: Sequence[str], *, stdin: str | None = None) -> str:
    """Run one command; any failure becomes a LabError naming the command and its stderr."""
    try:
        done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, check=True,
                              timeout=_CMD_TIMEOUT_S)
    except subprocess.CalledProcessError as e:
        raise LabError(f"`{shlex.join(argv)}` failed (exit {e.returncode}): {e.stderr.strip()}") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"`{shlex.join(argv)}` did not finish within {_CMD_TIMEOUT_S:.0f} s") from None
    except OSError as e:
        raise LabError(f"`{shlex.join(argv)}` could not run: {e}") from None
    return done.stdout


def _batch(lines: Sequence[str], *, netns: str | None = None, force: bool = False) -> None:
    """Run ``ip`` commands in one process (fast), in the root namespace or in ``netns``."""
    argv = ["ip"]
    if netns is not None:
        argv += ["-n", netns]
    if force:
        argv.append("-force")  # go on after a failed line; the exit status still reports it
    argv += ["-batch", "-"]
    try:
        _run(argv, stdin="".join(line + "\n" for line in lines))
    except LabError as e:
        # ip says "Command failed -:N"; name the line, which is what the reader needs.
        m = re.search(r"Command failed -:(\d+)", str(e))
        if m and 0 < int(m.group(1)) <= len(lines):
            raise LabError(f"{e} (line: `{lines[int(m.group(1)) - 1]}`)") from None
        raise


def _json(argv: Sequence[str]) -> list[dict[str, Any]]:
    out = _run(argv).strip()
    if not out:  # `ip -j netns list` prints nothing at all when there is none
        return []
    try:
        data = json.loads(out)
    except json.JSONDecodeError as e:
        raise LabError(f"`{shlex.join(argv)}` printed no JSON: {e}") from None
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


def _netns_names() -> list[str]:
    return [str(d["name"]) for d in _json(["ip", "-j", "netns", "list"]) if "name" in d]


def _root_links() -> list[dict[str, Any]]:
    return _json(["ip", "-j", "link", "show"])


def _root_routes() -> list[dict[str, Any]]:
    return _json(["ip", "-j", "-4", "route", "show"]) + _json(["ip", "-j", "-6", "route", "show"])


# --- guard routes ------------------------------------------------------------------------------


def _guard_metric(pid: int) -> int:
    return GUARD_METRIC_BASE + pid


def _guard_lines(verb: str, pid: int) -> list[str]:
    metric = _guard_metric(pid)
    return [f"route {verb} blackhole {TEST_NET4} metric {metric}",
            f"route {verb} blackhole {TEST_NET6} metric {metric}"]


def _guard_owner(route: dict[str, Any]) -> int | None:
    """The pid whose guard this route is, or None if it is not a lab guard."""
    if route.get("type") != "blackhole" or route.get("dst") not in (str(TEST_NET4), str(TEST_NET6)):
        return None
    metric = route.get("metric")
    if isinstance(metric, int) and GUARD_METRIC_BASE < metric < GUARD_METRIC_BASE + _PID_LIMIT:
        return metric - GUARD_METRIC_BASE
    return None


# The open labs; the first one a process opens installs its guard, its last one removes it.
# Keyed by pid, so that a forked child neither reuses nor removes its parent's guard.
_LOCK = threading.RLock()
_OPEN: set[Lab] = set()
_state = {"guard_pid": 0, "atexit": 0}


def _acquire_guard() -> None:
    with _LOCK:
        pid = os.getpid()
        if _state["guard_pid"] != pid:
            # replace, not add: a leftover of a dead process that had our pid is ours now.
            _batch(_guard_lines("replace", pid))
            _state["guard_pid"] = pid
        if not _state["atexit"]:
            atexit.register(_close_all)
            _state["atexit"] = 1


def _release_guard() -> None:
    with _LOCK:
        pid = os.getpid()
        if _state["guard_pid"] != pid or any(lab.pid == pid for lab in _OPEN):
            return
        present = [r for r in _root_routes() if _guard_owner(r) == pid]
        if present:
            _batch([f"route del blackhole {r['dst']} metric {r['metric']}" for r in present], force=True)
        _state["guard_pid"] = 0


def _close_all() -> None:
    """atexit: close what the program left open, so an interrupted run leaves nothing behind."""
    for lab in list(_OPEN):
        if lab.pid != os.getpid():  # a forked child must not tear down its parent's lab
            continue
        try:
            lab.close()
        except LabError as e:
            log.error("lab cleanup failed: %s", e)


# --- the lab -------------------------------------------------------------------------------------


def _owner_alias(pid: int) -> str:
    return f"tslcd-lab-{pid}"


def _link_owner(link: dict[str, Any]) -> int | None:
    m = _OWNER_RE.fullmatch(str(link.get("ifalias", "")))
    return int(m.group(1)) if m else None


def _check_address(value: str, version: int, taken: set[str]) -> str:
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None
    net, infra = (TEST_NET4, INFRA4) if version == 4 else (TEST_NET6, INFRA6)
    if addr.version != version or addr not in net:
        raise ValueError(f"{value}: lab hosts take IPv{version} addresses in {net} only")
    if addr in infra:
        raise ValueError(f"{value}: {infra} is reserved for the lab's own links")
    if str(addr) in taken:
        raise ValueError(f"{value}: already used in this lab")
    return str(addr)


def _block_is_free(tag: int, routes: list[dict[str, Any]]) -> bool:
    blocks = (ipaddress.ip_network(f"198.19.{tag}.0/24"), ipaddress.ip_network(f"2001:db8:19:{tag:x}::/64"))
    for r in routes:
        try:
            dst = ipaddress.ip_network(str(r.get("dst", "")), strict=False)
        except ValueError:
            continue  # "default" and friends
        if any(dst.version == b.version and dst.overlaps(b) and dst.prefixlen >= b.prefixlen for b in blocks):
            return False
    return True


def _free_tag(prefix: str) -> str:
    """Pick an unused lab tag; the tag also names the lab's own block (198.19.T.0/24)."""
    names = _netns_names() + [str(link.get("ifname", "")) for link in _root_links()]
    routes = _root_routes()
    candidates = list(range(255))  # 198.19.255.0/24 is INFRA4
    random.shuffle(candidates)
    for t in candidates:
        tag = f"{t:02x}"
        if not any(n.startswith(f"{prefix}-{tag}-") for n in names) and _block_is_free(t, routes):
            return tag
    raise LabError("no free lab block left in 198.19.0.0/16 (too many labs open?)")


class Lab:
    """Network namespaces linked by veth pairs to the root namespace, for ICMP/SNMP tests and the demo.

    Creating it installs blackhole routes for 198.18.0.0/15 and 2001:db8::/32 (metric
    ``GUARD_METRIC_BASE + pid``) before anything else, so a host whose link is down or
    whose namespace is gone is dropped here rather than routed out of the machine.
    ``close()`` (or leaving the ``with`` block, or interpreter exit) removes the lab's
    namespaces and links, then the guard once this process has no other lab open.

    Addressing: a node's addresses sit on its loopback. Every link is point-to-point:
    the upper end is fe80::1 (plus ROOT_GW4/ROOT_GW6 on root-side ends, the root's
    source address), the lower end is fe80::2. The node's default routes point up the
    link; each namespace above it (the root, the routers on the way) routes the node's
    /32 and /128 down the link toward it. Only routers forward, inside their namespace.
    """

    def __init__(self, prefix: str = "tslcd") -> None:
        if not _PREFIX_RE.fullmatch(prefix):
            raise ValueError(f"prefix {prefix!r}: 1-8 characters, a lowercase letter then letters or digits")
        self.prefix = prefix
        self.pid = os.getpid()
        self._hosts: dict[str, Host] = {}
        self._upper_if: dict[str, str] = {}  # host name -> its link's interface in the namespace above
        self._next_alloc = 1
        self._closed = False
        with _LOCK:
            _acquire_guard()  # first, before any namespace exists
            try:
                self.tag = _free_tag(prefix)
            except BaseException:
                _release_guard()
                raise
            _OPEN.add(self)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Lab(prefix={self.prefix!r}, tag={self.tag!r}, hosts={len(self._hosts)})"

    @property
    def hosts(self) -> tuple[Host, ...]:
        """The lab's nodes, routers included, in the order they were added."""
        return tuple(self._hosts.values())

    @property
    def guard_metric(self) -> int:
        """Metric of this process's blackhole routes for 198.18.0.0/15 and 2001:db8::/32."""
        return _guard_metric(self.pid)

    def allocate(self) -> tuple[str, str]:
        """The next free (IPv4, IPv6) pair of this lab's own block: 198.19.T.n and 2001:db8:19:T::n.

        Labs pick distinct blocks, so tests that allocate never clash with a parallel run.
        """
        t = int(self.tag, 16)
        taken = {a for h in self._hosts.values() for a in (h.ipv4, h.ipv6) if a}
        while self._next_alloc < 255:
            n = self._next_alloc
            self._next_alloc += 1
            v4, v6 = f"198.19.{t}.{n}", str(ipaddress.ip_address(f"2001:db8:19:{t:x}::{n:x}"))
            if v4 not in taken and v6 not in taken:
                return v4, v6
        raise LabError(f"the lab's block 198.19.{t}.0/24 is exhausted")

    def add_router(self, name: str, ipv4: str, ipv6: str | None = None, *, behind: Host | None = None) -> Host:
        """Add a router: a node that forwards (inside its own namespace only) for hosts behind it."""
        return self._add(name, ipv4, ipv6, behind, router=True)

    def add_host(self, name: str, ipv4: str, ipv6: str | None = None, *, behind: Host | None = None) -> Host:
        """Add a host, linked to the root namespace, or to router ``behind`` (down with it)."""
        return self._add(name, ipv4, ipv6, behind, router=False)

    def set_link(self, host: Host, up: bool) -> None:
        """Take the host's link down or up, on the host's side (``ip -n NS link set eth0``)."""
        with _LOCK:
            self._check(host)
            if up:
                # Going down flushed its default routes and link-local address: set them again.
                _batch(self._lower_lines(host), netns=host.netns)
                # The upper end's neighbour entry for it went INCOMPLETE/FAILED if anything
                # was sent while it was down, and can stay stuck for seconds: forget it.
                upper_ns = self._hosts[host.behind].netns if host.behind else None
                _batch([f"neigh flush dev {self._upper_if[host.name]}"], netns=upper_ns)
            else:
                _batch([f"link set dev {UPLINK} down"], netns=host.netns)

    def close(self) -> None:
        """Remove the lab's namespaces and links, then the guard if this process opened no other lab.

        Idempotent, and safe when namespaces were deleted behind the lab's back. If something
        cannot be removed the guard stays (cleanup_stale finds both later) and LabError says what.
        """
        with _LOCK:
            if self._closed:
                return
            self._remove_own()
            self._closed = True
            _OPEN.discard(self)
            _release_guard()  # last

    # --- internals ---

    def _check(self, host: Host) -> None:
        if self._closed:
            raise LabError("the lab is closed")
        if self._hosts.get(host.name) != host:
            raise ValueError(f"{host.name!r} is not a host of this lab")

    def _add(self, name: str, ipv4: str, ipv6: str | None, behind: Host | None, *, router: bool) -> Host:
        with _LOCK:
            if self._closed:
                raise LabError("the lab is closed")
            if not _NAME_RE.fullmatch(name):
                raise ValueError(f"host name {name!r}: 1-32 letters, digits, '-' or '_'")
            if name in self._hosts:
                raise ValueError(f"host name {name!r}: already used in this lab")
            if len(self._hosts) >= MAX_NODES:
                raise ValueError(f"a lab holds at most {MAX_NODES} nodes")
            if behind is not None:
                self._check(behind)
                if not behind.router:
                    raise ValueError(f"{behind.name!r} is not a router: add it with add_router()")
            taken = {a for h in self._hosts.values() for a in (h.ipv4, h.ipv6) if a}
            ipv4 = _check_address(ipv4, 4, taken)
            ipv6 = _check_address(ipv6, 6, taken) if ipv6 else None
            host = Host(name, f"{self.prefix}-{self.tag}-{self.pid}-{name}", ipv4, ipv6, router,
                        behind.name if behind else None)
            index = len(self._hosts)
            upper_if = f"{self.prefix}-{self.tag}-{index}" if behind is None else f"d{index}"
            if len(upper_if) > _IFNAMSIZ:
                raise ValueError(f"interface name {upper_if!r} too long: use a shorter prefix or fewer nodes")
            self._hosts[name] = host  # before creating anything: close() must see it
            self._upper_if[name] = upper_if
            self._create(host, upper_if)
            return host

    def _create(self, host: Host, upper_if: str) -> None:
        upper_ns = self._hosts[host.behind].netns if host.behind else None
        link = [f"link add {upper_if} type veth peer name {UPLINK} netns {host.netns}"]
        if upper_ns is None:
            link += [f"link set dev {upper_if} alias {_owner_alias(self.pid)}",
                     f"address add {ROOT_GW4}/32 dev {upper_if}",
                     f"address add {ROOT_GW6}/128 dev {upper_if} nodad"]
        link += [f"link set dev {upper_if} addrgenmode none",
                 f"address add {UPPER_LL6}/64 dev {upper_if} nodad",
                 f"link set dev {upper_if} up"]
        routes = self._routes_to(host)
        _batch([f"netns add {host.netns}", *(link if upper_ns is None else []), *routes.pop(None)])
        if upper_ns is not None:
            _batch(link + routes.pop(upper_ns), netns=upper_ns)
        for ns, lines in routes.items():  # routers further up the chain
            _batch(lines, netns=ns)
        if host.router:
            _run(["ip", "netns", "exec", host.netns, "sysctl", "-q", "-w",
                  "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"])
        _batch(self._lower_lines(host), netns=host.netns)

    def _routes_to(self, host: Host) -> dict[str | None, list[str]]:
        """For each namespace above ``host`` (None: the root), its routes down toward it."""
        routes: dict[str | None, list[str]] = {}
        child = host
        for _ in range(MAX_NODES):  # walks up the chain of routers; bounded, never a cycle
            parent = self._hosts[child.behind] if child.behind else None
            ns = parent.netns if parent else None
            dev = self._upper_if[child.name]
            root_src4 = f" src {ROOT_GW4}" if parent is None else ""
            root_src6 = f" src {ROOT_GW6}" if parent is None else ""
            if child is host:
                lines = [f"route add {host.ipv4}/32 dev {dev}{root_src4}"]
            else:
                lines = [f"route add {host.ipv4}/32 via {child.ipv4} dev {dev} onlink{root_src4}"]
            if host.ipv6:
                lines.append(f"route add {host.ipv6}/128 via {LOWER_LL6} dev {dev}{root_src6}")
            routes[ns] = lines
            if parent is None:
                return routes
            child = parent
        raise LabError(f"routers nested deeper than {MAX_NODES} above {host.name!r}")

    def _lower_lines(self, host: Host) -> list[str]:
        """The host's side of its link; idempotent, so set_link(up) can apply it again."""
        gw4 = self._hosts[host.behind].ipv4 if host.behind else ROOT_GW4
        lines = ["link set dev lo up", f"address replace {host.ipv4}/32 dev lo"]
        if host.ipv6:
            lines.append(f"address replace {host.ipv6}/128 dev lo nodad")
        return lines + [
            f"link set dev {UPLINK} addrgenmode none",
            f"address replace {LOWER_LL6}/64 dev {UPLINK} nodad",
            f"link set dev {UPLINK} up",
            f"route replace 0.0.0.0/0 via {gw4} dev {UPLINK} onlink",
            f"route replace ::/0 via {UPPER_LL6} dev {UPLINK}",
        ]

    def _remove_own(self) -> None:
        """Delete every root-side link and namespace of this lab that still exists."""
        ns_prefix = f"{self.prefix}-{self.tag}-{self.pid}-"
        link_re = re.compile(rf"{re.escape(self.prefix)}-{self.tag}-\d+")
        error: LabError | None = None
        for _ in range(_CLOSE_ATTEMPTS):
            # Found by name and owner, not from memory: an interrupted add_host may have
            # created more than it recorded, and the test may have deleted some already.
            links = [str(li["ifname"]) for li in _root_links()
                     if link_re.fullmatch(str(li.get("ifname", ""))) and _link_owner(li) == self.pid]
            spaces = [n for n in _netns_names() if n.startswith(ns_prefix)]
            if not links and not spaces:
                return
            try:
                # Links first: deleting them removes their routes at once, whereas a
                # namespace's veths go away asynchronously after `netns del`.
                _batch([f"link del dev {n}" for n in links] + [f"netns del {n}" for n in spaces], force=True)
            except LabError as e:
                error = e  # often a race with a namespace vanishing; look again
        raise LabError(f"lab {self.prefix}-{self.tag}: could not remove everything: {error}")


def available() -> str | None:
    """None if the lab works here; otherwise one sentence saying why not (the demo prints it)."""
    if os.geteuid() != 0:
        return "not root: network namespaces need root"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if not os.path.isdir("/proc/sys/net/ipv6"):
        return "IPv6 is disabled in this kernel"
    probe = f"tslcd-pr-{os.getpid()}-probe"  # named like a lab's, so cleanup_stale finds a leftover
    try:
        _run(["ip", "netns", "add", probe])
        _run(["ip", "-n", probe, "link", "add", "name", "probe0", "type", "veth", "peer", "name", "probe1"])
    except LabError as e:
        return f"cannot create a network namespace with a veth pair: {e}"
    finally:
        try:
            if probe in _netns_names():
                _run(["ip", "netns", "del", probe])
        except LabError as e:
            log.warning("could not remove probe namespace: %s", e)
    return None


def cleanup_stale(prefix: str = "tslcd") -> int:
    """Remove what labs of dead processes left behind; return how many objects went.

    That is namespaces and root-side links named with ``prefix`` whose owner process is
    gone, then (last) guard routes of dead processes, whatever their prefix. Live labs,
    including other runs in parallel, are left alone.
    """
    if not _PREFIX_RE.fullmatch(prefix):
        raise ValueError(f"prefix {prefix!r}: 1-8 characters, a lowercase letter then letters or digits")
    ns_re = re.compile(rf"{re.escape(prefix)}-[0-9a-z]{{2}}-(\d+)-.+")
    link_re = re.compile(rf"{re.escape(prefix)}-[0-9a-f]{{2}}-\d+")
    removed = 0
    links = []
    for li in _root_links():
        owner = _link_owner(li)
        if link_re.fullmatch(str(li.get("ifname", ""))) and owner is not None and not pid_alive(owner):
            links.append(str(li["ifname"]))
    spaces = []
    for name in _netns_names():
        m = ns_re.fullmatch(name)
        if m and not pid_alive(int(m.group(1))):
            spaces.append(name)
    if links or spaces:
        _batch([f"link del dev {n}" for n in links] + [f"netns del {n}" for n in spaces], force=True)
        removed += len(links) + len(spaces)
    guards = [r for r in _root_routes() if (pid := _guard_owner(r)) is not None and not pid_alive(pid)]
    if guards:
        _batch([f"route del blackhole {r['dst']} metric {r['metric']}" for r in guards], force=True)
        removed += len(guards)
    return removed
