"""A network of its own for a user without root: tslcd re-run inside an unprivileged user namespace.

A default Debian gives an ordinary user neither raw ICMP sockets (no CAP_NET_RAW) nor datagram
ones (``net.ipv4.ping_group_range`` is ``1 0``), and network namespaces need root. But where the
kernel allows unprivileged user namespaces (Debian's default), ``unshare --user --map-root-user
--net --mount`` gives the user a network namespace of their own in which they hold CAP_NET_RAW and
CAP_NET_ADMIN: raw sockets, veth pairs, routes and test namespaces all work, and the namespace has
no link to the outside at all, so nothing sent in it can leave the machine.

The status page must still be reachable from the user's browser, so the listening socket is bound
here, in the user's own namespace, and handed to the re-run process with systemd's
socket-activation protocol (``LISTEN_FDS``: ``exporters.web.passed_socket``). Inside, the loopback
link is brought up and a private ``/run`` mounted (``ip netns`` keeps its names in ``/run/netns``).

Used by ``tslcd demo`` (its test namespaces, flapping links) and by ``tslcd run`` when it may not
open an ICMP socket and every node it probes is on loopback (the shipped demo inventory): there,
this namespace's loopback answers exactly as the host's would.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from exporters.web import SD_LISTEN_FDS_START, bind_socket
from inventory.model import Inventory

__all__ = ["ENV", "inside", "loopback_only_problems", "reexec", "unavailable"]

ENV = "TSLCD_SANDBOX"  # set in the re-run process: it is inside (and must never re-run itself again)
_SBIN = ("/usr/sbin", "/sbin")  # `ip` lives there, and an ordinary user's PATH often lacks them
_PROBE_TIMEOUT_S = 15.0
_UNSHARE = ("--user", "--map-root-user", "--net", "--mount")
# Run by /bin/sh inside the new namespaces, then replaced by tslcd itself ($$ is kept by exec).
_INSIDE = ('ip link set dev lo up && mount -t tmpfs -o mode=0755 tslcd-sandbox /run && '
           'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"')


def inside() -> bool:
    """True in a process that tslcd re-ran in its own user namespace."""
    return os.environ.get(ENV) == "1"


def _path() -> str:
    parts = os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
    return os.pathsep.join(parts + [p for p in _SBIN if p not in parts])


def _sysctl(name: str) -> str | None:
    try:
        return Path("/proc/sys", *name.split(".")).read_text(encoding="ascii").strip()
    except OSError:
        return None


def explain(failure: str, sysctls: dict[str, str | None]) -> str:
    """Why user namespaces are refused here and the one setting that allows them, from what ``unshare`` said
    and the kernel's settings (pure: the tests give it each case)."""
    if sysctls.get("kernel.unprivileged_userns_clone") == "0":
        fix = "allow them with `sysctl -w kernel.unprivileged_userns_clone=1` (persist it in /etc/sysctl.d/)"
    elif sysctls.get("kernel.apparmor_restrict_unprivileged_userns") == "1":
        fix = ("AppArmor restricts them (Ubuntu 24.04 and later): allow them with "
               "`sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` (persist it in /etc/sysctl.d/)")
    elif sysctls.get("user.max_user_namespaces") == "0":
        fix = "allow them with `sysctl -w user.max_user_namespaces=15000` (persist it in /etc/sysctl.d/)"
    else:
        fix = "the kernel or a container runtime refuses them here (a container needs to allow `unshare --user`)"
    return f"user namespaces are not available to this user ({failure}): {fix}"


def unavailable() -> str | None:
    """None when this user may make a user and network namespace of their own here; otherwise why not, and
    exactly which setting allows it."""
    unshare = shutil.which("unshare", path=_path())
    if unshare is None:
        return "the unshare command is missing: install util-linux"
    if shutil.which("ip", path=_path()) is None:
        return "the ip command is missing: install iproute2"
    try:
        r = subprocess.run([unshare, *_UNSHARE, "true"], capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S,
                           env={**os.environ, "PATH": _path()})
    except (OSError, subprocess.TimeoutExpired) as e:
        failure = str(e)
    else:
        if r.returncode == 0:
            return None
        failure = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"
    names = ("kernel.unprivileged_userns_clone", "kernel.apparmor_restrict_unprivileged_userns",
             "user.max_user_namespaces")
    return explain(failure, {n: _sysctl(n) for n in names})


def loopback_only_problems(inventory: Inventory, profiles_used: bool) -> list[str]:
    """Why this inventory cannot be monitored from a namespace of its own (empty: it can): only loopback
    answers there, and no SNMP agent of the host is reachable."""
    problems = []
    for node in inventory.nodes:
        for address in (node.address, node.address6):
            if address and not ipaddress.ip_address(address).is_loopback:
                problems.append(f"node {node.code} has address {address}, which is not on loopback")
                break
        if profiles_used and node.snmp:
            problems.append(f"node {node.code} is polled over SNMP (profile {node.snmp})")
    return problems


def reexec(args: Sequence[str], *, listen: str) -> NoReturn:
    """Replace this process by ``tslcd ARGS`` inside a user and network namespace of its own, serving HTTP on
    ``listen`` bound here (so the page is reachable from this namespace). ListenError when it cannot be bound;
    call ``unavailable()`` first."""
    sock = bind_socket(listen)
    fd = sock.detach()
    if fd != SD_LISTEN_FDS_START:
        os.dup2(fd, SD_LISTEN_FDS_START, inheritable=True)
        os.close(fd)
    else:
        os.set_inheritable(fd, True)
    unshare = shutil.which("unshare", path=_path())
    assert unshare is not None, "call unavailable() first"
    env = {**os.environ, ENV: "1", "PATH": _path()}
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(key, None)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(unshare, [unshare, *_UNSHARE, "--", "/bin/sh", "-c", _INSIDE, "sh",
                        sys.executable, "-m", "monitor.cli", *args], env)
