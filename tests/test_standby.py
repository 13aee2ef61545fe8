"""Active/standby pollers (issue 14, part 3): one config and one store, two `tslcd run`; one writes, the other
waits, takes over when the first one's heartbeats stop, and the first one steps down when it comes back.

The lease is the active run's heartbeat in the store (docs/design.md, "Several pollers"): a standby takes over
at most max gap (3 ICMP intervals) + ``standby.check_s`` after the active poller's last sweep, and a run that
was taken over has every later write refused (``Superseded``), so no time is ever counted by two runs.
Packets go only to loopback.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import time
import urllib.error
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from monitor.errors import RunRefused, Superseded
from monitor.lab.demo import inventory_yaml
from monitor.shard import Shard
from monitor.store import ChangeRow, SqlStore, SweepBatch
from monitor.store.schema import events, windows
from tests.conftest import small_inventory, stop, wait_for_url
from tests.test_cli import ROOT, TSLCD, Running, needs_root

T0 = 1_790_000_000.0
INTERVAL_S, CHECK_S, TIMEOUT_S = 1.0, 0.5, 0.3
MAX_GAP_S = 3 * INTERVAL_S


def test_a_run_taken_over_is_refused_from_then_on_and_no_time_counts_twice(store_url: str) -> None:
    store = SqlStore(store_url)
    try:
        units = {code: u for (code, _), u in store.record_inventory(small_inventory(), T0 - 10).units.items()}
        a = store.start_run(T0, max_gap_s=MAX_GAP_S)
        store.write_sweep(SweepBatch(a, T0 + 1, [ChangeRow(units["24133"], T0 + 1, "unknown", "up")]))
        # While a's heartbeat is fresh (and this process, a's pid, alive), a second run of the same nodes is refused
        # and the refusal names the active run; a poller of other nodes (a disjoint shard) starts beside it.
        with pytest.raises(RunRefused, match="make this one its standby") as refused:
            store.start_run(T0 + 2, max_gap_s=MAX_GAP_S)
        assert refused.value.active == f"pid {os.getpid()} on {socket.gethostname()[:255]}, run {a}"
        # a stalls (no heartbeat for longer than its gap): the standby's run starts.
        b = store.start_run(T0 + 1 + MAX_GAP_S + 0.5, max_gap_s=MAX_GAP_S)
        store.write_sweep(SweepBatch(b, T0 + 5, [ChangeRow(units["24133"], T0 + 5, "unknown", "up")]))
        # a comes back: each write is refused whole (heartbeat, changes, samples), every time.
        for at in (T0 + 5.5, T0 + 6.5):
            with pytest.raises(Superseded, match=f"run {a} was taken over .*run {b}"):
                store.write_sweep(SweepBatch(a, at, [ChangeRow(units["24133"], at, "up", "down")]))
        store.write_sweep(SweepBatch(b, T0 + 6))
        with store.engine.connect() as conn:
            spans = conn.execute(select(windows.c.run_id, windows.c.start_at, windows.c.end_at)
                                 .order_by(windows.c.start_at)).all()
            changes = conn.execute(select(events.c.run_id, events.c.at, events.c.new)).all()
        assert [tuple(s) for s in spans] == [(a, T0 + 1, T0 + 1), (b, T0 + 5, T0 + 6)]
        assert sorted(tuple(c) for c in changes) == [(a, T0 + 1, "up"), (b, T0 + 5, "up")]
        # Runs of disjoint shards never supersede each other.
        store.stop_run(b, T0 + 6.5)
        west = store.start_run(T0 + 7, max_gap_s=MAX_GAP_S, shard=Shard(areas=frozenset({"A"})))
        store.start_run(T0 + 7, max_gap_s=MAX_GAP_S, shard=Shard(areas=frozenset({"B"})))
        store.write_sweep(SweepBatch(west, T0 + 8))
    finally:
        store.close()


def _eventually(what: str, predicate: Callable[[], bool], deadline_s: float = 30) -> None:
    end = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline_s:g} s: {what}")
        time.sleep(0.05)  # polling another process's HTTP endpoint under a deadline


def _health(p: Running) -> str:
    try:
        return p.get("healthz")
    except urllib.error.HTTPError as e:
        return f"{e.code}: {e.read().decode()}"
    except OSError as e:
        return f"unreachable: {e}"


def _sweeps(p: Running) -> int:
    text = _health(p)
    return int(text.split()[1]) if text.startswith("ok: ") and text.split()[1].isdigit() else -1


@pytest.fixture
def pollers(tmp_path: Path, store_url: str) -> Iterator[Callable[[str], Running]]:
    inv = tmp_path / "inv.yaml"
    inv.write_text(inventory_yaml(small_inventory().nodes), encoding="utf-8")
    (tmp_path / "config.yaml").write_text(
        f"province: Đắk Lắk\ninventory: {inv}\nweb:\n  listen: 127.0.0.1:0\n"
        f"icmp:\n  interval_s: {INTERVAL_S}\n  count: 1\n  timeout_s: {TIMEOUT_S}\n  echo_interval_s: 0\n"
        f"states:\n  down_after: 1\n  up_after: 1\nstore:\n  url: {store_url}\n"
        f"standby:\n  enabled: true\n  check_s: {CHECK_S}\n", encoding="utf-8")
    started: list[subprocess.Popen[str]] = []

    def start(name: str) -> Running:
        proc = subprocess.Popen([*TSLCD, "run", "--config", str(tmp_path / "config.yaml")], cwd=ROOT,
                                stderr=subprocess.PIPE, text=True)
        started.append(proc)
        return Running(proc, wait_for_url(proc, 60))

    yield start
    for proc in started:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)  # a test that failed while one was stopped
            stop(proc, grace_s=15)


@needs_root
def test_the_standby_takes_over_within_the_stated_time_and_the_old_active_steps_down(
        pollers: Callable[[str], Running], store_url: str) -> None:
    a = pollers("a")
    _eventually("a probes and writes", lambda: a.metric("tslcd_node_up", code="24133") == 1)
    assert a.metric("tslcd_poller_active") == 1
    b = pollers("b")
    # b waits: healthy as a standby, its page names the active poller, its /metrics has no node series.
    _eventually("b is a healthy standby", lambda: _health(b) == "ok: standby\n")
    assert b.metric("tslcd_poller_active") == 0 and b.metric("tslcd_node_up", code="24133") is None
    page = b.get("")
    assert 'id="standby"' in page and f"pid {a.proc.pid}" in page

    # a freezes (as a hung process or a machine cut off would: alive, no heartbeat), just after a sweep's write.
    done = _sweeps(a)
    _eventually("a finishes a sweep", lambda: _sweeps(a) > done)
    os.kill(a.proc.pid, signal.SIGSTOP)
    _eventually("b takes over", lambda: b.metric("tslcd_poller_active") == 1)
    _eventually("b probes", lambda: b.metric("tslcd_node_up", code="24133") == 1)
    # a wakes: its next write is refused, and it steps down to b's standby.
    os.kill(a.proc.pid, signal.SIGCONT)
    _eventually("a steps down", lambda: a.metric("tslcd_poller_active") == 0)
    assert a.metric("tslcd_node_up", code="24133") is None
    _eventually("a is a healthy standby", lambda: _health(a) == "ok: standby\n")
    assert f"pid {b.proc.pid}" in a.get("")
    # b is killed -9: a takes over again (on one host a dead pid needs no wait for the heartbeat to age).
    os.kill(b.proc.pid, signal.SIGKILL)
    b.proc.wait(timeout=30)
    _eventually("a takes over again", lambda: a.metric("tslcd_node_up", code="24133") == 1)
    assert stop(a.proc, grace_s=15) == 0

    store = SqlStore(store_url, create=False)
    try:
        runs = store.runs()
        with store.engine.connect() as conn:
            spans = conn.execute(select(windows.c.run_id, windows.c.start_at, windows.c.end_at)
                                 .order_by(windows.c.start_at)).all()
            changes = conn.execute(select(events.c.run_id, events.c.at)).all()
    finally:
        store.close()
    assert len(runs) == 3, runs  # a, b, a again
    first, second, third = (r.id for r in runs)
    # Nothing counted twice: no two runs' windows overlap, and each run's changes fall inside its own windows.
    for before, after in itertools.pairwise(spans):
        assert after.start_at >= before.end_at, spans
    last = {run: max(s.end_at for s in spans if s.run_id == run) for run in (first, second, third)}
    assert all(at <= last[run] for run, at in changes)
    # The stated time: the unknown gap between a's last heartbeat and b's first is at most max gap + check_s +
    # one sweep (one echo's timeout), plus a second for two processes' scheduling on a busy test machine.
    gap = min(s.start_at for s in spans if s.run_id == second) - last[first]
    assert MAX_GAP_S < gap <= MAX_GAP_S + CHECK_S + TIMEOUT_S + 1.0, spans
