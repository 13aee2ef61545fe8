"""Outage causes from ICMP x SNMP (issue 17, part 1): the rule table of monitor.core.causes, as properties."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.core.causes import BOOT_BEFORE_S, BOOT_SLACK_S, CAUSES, Cause, Evidence, classify, observe

T0 = 1_790_000_000.0

readings = st.lists(st.tuples(
    st.booleans(),  # answered
    st.sampled_from([True, False, None]),  # uplink up (None: not read)
    st.one_of(st.none(), st.floats(0, 10 * 86_400)),  # sysUpTime, s
), max_size=6)


def evidence_of(seen: list[tuple[bool, bool | None, float | None]], *, since: float = T0) -> Evidence:
    ev = Evidence(since)
    for k, (answered, uplink, uptime) in enumerate(seen):
        ev = observe(ev, at=since + 60 * (k + 1), answered=answered, timed_out=not answered,
                     uplink_up=uplink if answered else None, uptime_s=uptime if answered else None)
    return ev


@given(readings, st.sampled_from(["down", "unreachable"]))
def test_every_outage_gets_one_of_the_bounded_causes_and_unreachable_is_upstream(seen: list, state: str) -> None:
    cause = classify(state, evidence_of(seen))
    assert cause in CAUSES
    assert (cause is Cause.UPSTREAM) == (state == "unreachable")


@given(readings)
def test_no_snmp_evidence_is_unknown_and_any_evidence_is_not(seen: list) -> None:
    ev = evidence_of(seen)
    assert (classify("down", ev) is Cause.UNKNOWN) == (not seen)
    assert classify("down", None) is Cause.UNKNOWN


@given(readings, st.floats(-BOOT_BEFORE_S, 3 * 3600), st.floats(0, BOOT_SLACK_S))
def test_a_boot_within_the_outage_or_right_after_it_is_power_whatever_else_was_seen(
        seen: list, boot_after_start: float, after_end: float) -> None:
    ended = T0 + 3 * 3600
    boot = min(T0 + boot_after_start, ended + after_end)
    ev = observe(evidence_of(seen), at=ended + after_end + 5, answered=True, timed_out=False, uplink_up=True,
                 uptime_s=ended + after_end + 5 - boot)
    assert classify("down", ev, ended_at=ended) is Cause.POWER


@given(readings)
def test_a_boot_long_before_the_outage_is_no_evidence_of_power(seen: list) -> None:
    ev = evidence_of([(a, u, None) for a, u, _ in seen])
    ev = observe(ev, at=T0 + 60, answered=True, timed_out=False, uplink_up=True, uptime_s=BOOT_BEFORE_S + 3600)
    assert classify("down", ev) is not Cause.POWER


def test_the_rule_table() -> None:
    """One example per row of the table in monitor/core/causes.py (and docs/design.md)."""
    lost = evidence_of([(False, None, None)])  # ICMP and SNMP lost, the parent up (else: unreachable)
    assert classify("down", lost) is Cause.LINE
    uplink_down = evidence_of([(True, False, 86_400.0)])  # answers over another path; its uplink is down
    assert classify("down", uplink_down) is Cause.LINE
    filtered = evidence_of([(True, True, 86_400.0)])  # answers, uplink up, echoes lost
    assert classify("down", filtered) is Cause.FILTERED
    # The router comes back: its sysUpTime says it booted 2 minutes ago, inside the outage.
    rebooted = observe(lost, at=T0 + 900, answered=True, timed_out=False, uplink_up=True, uptime_s=120.0)
    assert classify("down", rebooted, ended_at=T0 + 850) is Cause.POWER
    assert classify("unreachable", rebooted) is Cause.UPSTREAM
    assert classify("down", Evidence(T0)) is Cause.UNKNOWN


@given(readings, readings)
def test_evidence_only_accumulates(first: list, more: list) -> None:
    """A later reading never erases what an earlier one showed (a cause only sharpens)."""
    a, b = evidence_of(first), evidence_of(first + more)
    assert (a.snmp_answered <= b.snmp_answered and a.snmp_lost <= b.snmp_lost and a.uplink_down <= b.uplink_down)


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces and nftables need root (CI runs as root)")
@pytest.mark.skipif(shutil.which("nft") is None, reason="nft missing: apt-get install nftables")
@pytest.mark.skipif(shutil.which("snmpd") is None, reason="snmpd missing: apt-get install snmpd")
def test_real_failures_get_their_causes_in_a_namespace_of_their_own(tmp_path: Path) -> None:
    """Real net-snmp agents and the real ICMP engine in a network namespace with its loopback only (no packet can
    leave it): echoes dropped (filtered), everything dropped (line), a router restarted while cut off (power, known
    once it answers again), echoes dropped with the uplink down (line: the router answered over another path), an
    aggregation node with no SNMP profile cut off (unknown) and the commune behind it (upstream): every cause."""
    out = tmp_path / "causes.json"
    r = subprocess.run(["unshare", "--net", sys.executable, "-m", "tests.cause_runner", str(out)],
                       cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    got = json.loads(out.read_text(encoding="utf-8"))
    assert got["during"] == {"CORE": ["up", None], "24133": ["down", "filtered"], "24121": ["down", "line"],
                             "24154": ["down", "line"], "22015": ["down", "line"], "AGG": ["down", "unknown"],
                             "24169": ["unreachable", "upstream"]}
    assert sorted(got["metrics"]) == sorted(f'tslcd_node_outage_cause{{cause="{c}",code="{k}"}} 1.0' for k, c in (
        ("24133", "filtered"), ("24121", "line"), ("24154", "line"), ("22015", "line"), ("AGG", "unknown"),
        ("24169", "upstream")))
    assert got["after"] == {"24133": "filtered", "24121": "line", "24154": "power", "22015": "line",
                            "AGG": "unknown", "24169": "upstream"}
    assert set(got["states"].values()) == {"up"}
    # Recorded with the outage in the history (what the audit, the email and the seal read): one outage each,
    # named by the change that began it, with the cause concluded once it was over.
    assert got["history"] == {"CORE": [], "24133": ["filtered"], "24121": ["line"], "24154": ["power"],
                              "22015": ["line"], "AGG": ["unknown"], "24169": ["upstream"]}
    assert {c: s for c, s in got["starts"].items() if s} == {c: [t] for c, t in got["explained_at"].items()}
