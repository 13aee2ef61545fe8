"""Processes of this host: whether one is still alive (a stale lock, run or guard route may be taken over)."""

from __future__ import annotations

import os
from pathlib import Path


def process_identity() -> str | None:
    """This process as no other one on any boot: the kernel's boot id and the process's start time in clock
    ticks since boot (Linux /proc); None where they cannot be read."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        stat = Path("/proc/self/stat").read_text(encoding="ascii")
        start = stat[stat.rindex(")") + 2:].split()[19]  # field 22, counted after "pid (comm) "
    except (OSError, ValueError, IndexError):
        return None
    return f"{boot}/{start}"


def pid_alive(pid: int) -> bool:
    """True when a process ``pid`` exists on this host (also when it belongs to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def raise_open_files_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit (as Go's runtime does); return the soft
    limit now in force. systemd gives services 1,024 soft and 524,288 hard: a socket per HTTP client and per
    SNMP agent need more than 1,024 at national scale."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft
