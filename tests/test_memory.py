"""The monitor's process gives back what it frees (issue 13, part 4: memory flat over hours)."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Large buffers freed between small blocks that stay (a render's 13 MB buffers between the objects of a sweep):
# glibc, as it comes, serves them from its heap once a larger block was freed, and cannot give the holes back.
SCRIPT = """
import sys
sys.path.insert(0, {root!r})
if sys.argv[1] == "tuned":
    from monitor.procs import tune_malloc
    assert tune_malloc()
def rss():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024
b = bytearray(16 << 20); del b
big, small = [], []
for _ in range(60):
    big.append(bytearray(2 << 20))
    small.append(bytearray(1024))
before = rss(); big.clear()
print(before, rss())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="tune_malloc tunes glibc's malloc only")
@pytest.mark.parametrize("how", ["default", "tuned"])
def test_freed_buffers_go_back_to_the_kernel_once_tuned(how: str) -> None:
    env = {"PATH": "/usr/bin:/bin"}  # no MALLOC_* variables: they would override both ways
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(root=str(ROOT)), how], capture_output=True,
                         text=True, timeout=60, env=env, check=True).stdout
    before, after = map(int, out.split())
    assert before >= 120  # 60 buffers of 2 MB were resident
    if how == "tuned":
        assert after < before - 100, out  # given back
    else:
        assert after > before - 20, out  # what the tuning is for: glibc as it comes keeps them


TRIM = """
import sys
sys.path.insert(0, {root!r})
from monitor.procs import trim_malloc, tune_malloc
assert tune_malloc()
def rss():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024
blocks = [bytearray(1024) for _ in range(80_000)]  # 80 MB from the heap (below the mmap threshold)
kept = blocks[::64]  # one in 64 stays: the heap cannot shrink from its top
blocks.clear()
before = rss()
print(before, trim_malloc(), rss())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_free_memory_inside_the_heap_goes_back_to_the_kernel_when_trimmed() -> None:
    """What ``tune_malloc`` leaves resident (free blocks inside the heap, not at its top) ``trim_malloc`` gives
    back: the service calls it after each publication."""
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", TRIM.format(root=str(ROOT))], capture_output=True, text=True,
                         timeout=60, env=env, check=True).stdout
    before, trimmed, after = out.split()
    assert int(before) >= 80 and trimmed == "True", out  # the freed blocks were still resident
    assert int(after) < int(before) - 50, out


def test_polling_leaves_pysnmps_mib_compiler_out_and_pysmi_importable() -> None:
    """pysnmp imports pysmi (and requests, urllib3, ply: about 9 MB of the SNMP worker) only to compile MIB
    text, which tslcd never asks of it; ``monitor.probes.snmp`` keeps it out, and nothing else is lost."""
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
            "import monitor.runtime.snmp_worker\n"
            "from monitor.probes.snmp import SnmpPoller\n"  # what the worker imports (snmp_worker.serve)
            "from pysnmp.smi.compiler import add_mib_compiler\n"
            "from pysnmp.smi import builder\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'pysmi', 'requests', 'urllib3', 'ply'}))\n"
            "add_mib_compiler(builder.MibBuilder(), ifAvailable=True)\n"  # how pysnmp asks for it: a no-op
            "import pysmi.reader\n"
            "print('pysmi', 'pysmi' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["[]", "pysmi True"]
