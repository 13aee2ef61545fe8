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
