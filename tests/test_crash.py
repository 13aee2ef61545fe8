"""kill -9 during a sweep, then restart: every event before the kill is stored, the gap is unknown, the day adds up."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.core.history import day_of, day_span
from monitor.lab.demo import inventory_yaml
from monitor.runtime.recorder import max_gap_s
from monitor.store import SqlStore
from tests.conftest import small_inventory

REPO = Path(__file__).resolve().parents[1]


def eventually(predicate: Callable[[], bool], deadline_s: float) -> bool:
    """Poll until ``predicate`` holds or the deadline passes (the runner is another process)."""
    end = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)  # polling interval, not synchronisation
    return True


def start(tmp: Path, name: str, down: dict[str, list[str]]) -> tuple[subprocess.Popen[bytes], Path]:
    markers = tmp / f"markers-{name}"
    markers.mkdir()
    script = tmp / f"script-{name}.json"
    script.write_text(json.dumps({"down": down}), encoding="utf-8")
    log = (tmp / f"{name}.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "tests.history_runner", "--config", str(tmp / "config.yaml"),
                             "--script", str(script), "--markers", str(markers), "--hold", "0.4"],
                            cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return proc, markers


def stop(proc: subprocess.Popen[bytes], sig: signal.Signals) -> int:
    try:
        proc.send_signal(sig)
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_kill_9_during_a_sweep_loses_nothing_and_the_gap_is_unknown(tmp_path: Path, store_url: str) -> None:
    """On SQLite and on a real PostgreSQL (issue 14): the same run, killed, restarted, counted."""
    inv = tmp_path / "inv.yaml"
    inv.write_text(inventory_yaml(small_inventory().nodes), encoding="utf-8")
    (tmp_path / "config.yaml").write_text(
        f"province: Đắk Lắk\ninventory: {inv}\nweb:\n  listen: 127.0.0.1:0\n"
        "icmp:\n  interval_s: 1\n  count: 1\n  timeout_s: 0.3\n  echo_interval_s: 0\n"
        f"states:\n  down_after: 1\n  up_after: 1\nstore:\n  url: {store_url}\n", encoding="utf-8")
    cfg = load_config(tmp_path / "config.yaml")

    first, m1 = start(tmp_path, "first", {"3": ["127.0.0.6"]})  # 22015 down from the 3rd sweep
    try:
        assert eventually(lambda: (m1 / "sweep-5").exists(), 60), (tmp_path / "first.log").read_text()
    finally:
        killed_at = time.time()
        assert stop(first, signal.SIGKILL) == -signal.SIGKILL
    killed = SqlStore(store_url, create=False)
    try:
        with killed.engine.connect() as conn:
            down_events = conn.exec_driver_sql("SELECT e.at FROM events e JOIN units u ON u.id = e.unit_id "
                                               "WHERE u.code = '22015' AND e.new = 'down'").all()
            n_events = conn.exec_driver_sql("SELECT count(*) FROM events").scalar()
    finally:
        killed.close()
    assert len(down_events) == 1 and down_events[0][0] < killed_at
    assert n_events == 6 + 1  # 6 probed nodes unknown -> up, then 22015 up -> down

    second, m2 = start(tmp_path, "second", {})
    try:
        assert eventually(lambda: (m2 / "sweep-3").exists(), 60), (tmp_path / "second.log").read_text()
    finally:
        assert stop(second, signal.SIGTERM) == 0, (tmp_path / "second.log").read_text()

    store = SqlStore(store_url, create=False)
    try:
        runs = store.runs()
        assert len(runs) == 2 and runs[0].stopped_at is None and runs[1].stopped_at is not None
        with store.engine.connect() as conn:
            ws = conn.exec_driver_sql("SELECT run_id, start_at, end_at FROM windows ORDER BY id").all()
            ids: dict[str, int] = {c: i for c, i in conn.exec_driver_sql("SELECT code, id FROM units").all()}
            # Run 2 starts every node unknown again: 6 more changes to up.
            assert conn.exec_driver_sql("SELECT count(*) FROM events").scalar() == n_events + 6
        (r1, s1, e1), (r2, s2, e2) = ws
        assert (r1, r2) == (runs[0].id, runs[1].id)
        assert e1 < killed_at < s2  # the killed run ends at its last committed sweep
        gap = s2 - e1
        tz = cfg.tz
        first_day, last_day = day_of(s1, tz), day_of(e2, tz)
        days = list(store.history(first_day, last_day, tz))
        seconds = [h.rows[ids["22015"]].seconds for h in days if ids["22015"] in h.rows]
        up = sum(s.up for s in seconds)
        down = sum(s.down for s in seconds)
        unknown = sum(s.unknown for s in seconds)
        assert down == pytest.approx(e1 - down_events[0][0], abs=0.002)  # down until the last heartbeat, no longer
        assert up == pytest.approx((down_events[0][0] - s1) + (e2 - s2), abs=0.002)  # up again after restart
        assert unknown == pytest.approx(sum(h.day_s for h in days) - (e1 - s1) - (e2 - s2), abs=0.005)
        assert unknown > gap

        # The day's rollup, once sealed, is what was computed, and verifies.
        sealed = store.seal_due(day_span(last_day, tz)[1] + max_gap_s(cfg) + 1, tz, max_gap_s(cfg))
        assert sealed[-1] == last_day
        after = list(store.history(first_day, last_day, tz))
        assert [h.rows for h in after] == [h.rows for h in days]
        assert store.verify().ok
    finally:
        store.close()
    if store_url.startswith("sqlite:///"):
        con = sqlite3.connect(store_url.removeprefix("sqlite:///"))
        try:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            con.close()
