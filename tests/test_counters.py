"""monitor.core.counters: reboots from sysUpTime, monotonic totals across wraps and restarts, daily traffic."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from monitor.core.counters import (
    KEEP_DAYS,
    TICKS_MODULUS,
    Counter,
    NodeCounters,
    Sample,
    Traffic,
    Uptime,
    add_traffic,
    count,
    fold_sample,
    in_use,
    next_uptime,
    restarted,
)

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=TZ).timestamp()
DAY = 86_400.0

# ---------------------------------------------------------------- sysUpTime


def test_first_reading_is_no_reboot() -> None:
    up, rebooted = next_uptime(None, 12_345, T0)
    assert not rebooted and up == Uptime(12_345, T0, 12_345)


def test_uptime_going_back_is_a_reboot() -> None:
    prev = Uptime(360_000_000, T0, 360_000_000)  # up 1000 h
    assert restarted(prev, 1_500, T0 + 60)


def test_wrap_of_timeticks_after_497_days_is_not_a_reboot() -> None:
    prev = Uptime(TICKS_MODULUS - 3_000, T0, TICKS_MODULUS - 3_000)  # 30 s before the wrap
    up, rebooted = next_uptime(prev, 3_000, T0 + 60)
    assert not rebooted
    assert up.total_ticks == TICKS_MODULUS + 3_000  # the wrap undone: 497 days and 30 s
    assert up.seconds > 497 * DAY


def test_agent_up_for_less_than_the_time_since_the_last_poll_restarted_in_between() -> None:
    # Up 100 s at the last poll, unreachable for a day, now up 200 s: its uptime grew, yet it rebooted.
    prev = Uptime(10_000, T0, 10_000)
    assert restarted(prev, 20_000, T0 + DAY)
    assert not restarted(prev, 10_000 + 8_640_000, T0 + DAY)  # up all along


def test_an_agent_whose_sysuptime_stands_still_is_not_rebooting() -> None:
    # snmpsim recordings without variation answer the same sysUpTime for ever.
    prev = Uptime(18_989_541, T0, 18_989_541)
    assert not restarted(prev, 18_989_541, T0 + 3_600)


def test_timeticks_out_of_range_are_rejected() -> None:
    with pytest.raises(ValueError):
        restarted(Uptime(1, T0, 1), TICKS_MODULUS, T0 + 1)


@given(start=st.integers(0, TICKS_MODULUS - 1),
       gaps=st.lists(st.floats(0.0, 100 * DAY), min_size=1, max_size=30),
       jitter=st.lists(st.floats(-5.0, 5.0), min_size=30, max_size=30),
       clock_steps=st.lists(st.integers(-1_000, 0), min_size=30, max_size=30))
def test_an_agent_that_never_restarts_is_never_counted_as_rebooting(start: int, gaps: list[float],
                                                                     jitter: list[float],
                                                                     clock_steps: list[int]) -> None:
    """Across any number of TimeTicks wraps, with our timestamps off by up to 5 s and the agent's
    uptime stepping back by up to 10 s (a clock adjustment), no false reboot."""
    up, t, true_ticks = Uptime(start, T0, start), T0, start
    for gap, j, step in zip(gaps, jitter, clock_steps, strict=False):
        t += gap
        true_ticks += int(gap * 100)
        up, rebooted = next_uptime(up, max(0, true_ticks + step) % TICKS_MODULUS, t + j)
        assert not rebooted
    assert abs(up.total_ticks - true_ticks) <= 1_000 * len(gaps)


@given(before=st.integers(0, TICKS_MODULUS - 1), gap=st.floats(1.0, 400 * DAY),
       since_boot=st.floats(0.0, 400 * DAY))
def test_a_restart_is_seen_unless_it_looks_like_a_wrap(before: int, gap: float, since_boot: float) -> None:
    """Whenever the agent restarted during the gap (since_boot < gap - tolerance), the reading says so,
    except for the one ambiguous case: new uptime exactly where a wrap would have put it."""
    assume(since_boot < gap - 60)
    ticks = int(since_boot * 100) % TICKS_MODULUS
    prev = Uptime(before, T0, before)
    looks_like_wrap = ticks < before and (ticks - before) % TICKS_MODULUS <= gap * 100 + 3_000
    assert restarted(prev, ticks, T0 + gap) or looks_like_wrap


# ---------------------------------------------------------------- counters


def test_first_reading_sets_the_total_to_the_device_count_and_adds_nothing() -> None:
    c, inc = count(Counter(), 5_000_000_000, 64)
    assert (c.total, inc) == (5_000_000_000, 0)


def test_32bit_wrap_adds_the_bytes_across_the_wrap() -> None:
    c, _ = count(Counter(), 2**32 - 1000, 32)
    c, inc = count(c, 5000, 32)
    assert inc == 6000 and c.total == 2**32 - 1000 + 6000


def test_64bit_counter_near_2_64_wraps_but_a_cleared_one_restarts_from_zero() -> None:
    c, _ = count(Counter(), 2**64 - 100, 64)
    c, inc = count(c, 50, 64)
    assert inc == 150
    c, _ = count(Counter(), 10**12, 64)
    c, inc = count(c, 300, 64)  # "clear counters" on the router: 300 bytes since
    assert inc == 300 and c.total == 10**12 + 300


def test_after_an_agent_restart_the_new_value_is_all_new_bytes() -> None:
    c, _ = count(Counter(), 5_000_000_000, 64)
    c, inc = count(c, 700, 64, restart=True)
    assert inc == 700 and c.total == 5_000_000_700


def test_a_rebased_counter_keeps_its_total_and_counts_from_the_new_baseline() -> None:
    c, _ = count(Counter(), 1_000_000, 64)
    c, inc = count(c, 50, 64, rebase=True)  # the uplink moved to another ifIndex
    assert inc == 0 and c.total == 1_000_000
    c, inc = count(c, 80, 64)
    assert inc == 30 and c.total == 1_000_030


def test_width_change_rebases() -> None:
    c, _ = count(Counter(), 1_000_000, 64)
    c, inc = count(c, 10, 32)
    assert inc == 0 and c.total == 1_000_000 and c.bits == 32


def test_out_of_range_readings_are_rejected() -> None:
    with pytest.raises(ValueError):
        count(Counter(), 2**32, 32)
    with pytest.raises(ValueError):
        count(Counter(), 1, 16)


readings = st.tuples(st.sampled_from([32, 64]), st.integers(0, 2**64 - 1), st.booleans(), st.booleans())


@given(st.lists(readings, min_size=1, max_size=60))
def test_totals_never_go_backwards(seq: list[tuple[int, int, bool, bool]]) -> None:
    c, _ = count(Counter(), seq[0][1] % 2 ** seq[0][0], seq[0][0])
    assert c.total == c.raw
    for bits, raw, restart, rebase in seq[1:]:
        before = c.total
        c, inc = count(c, raw % 2**bits, bits, restart=restart, rebase=rebase)
        assert inc >= 0 and c.total == before + inc


@given(start=st.integers(0, 2**32 - 1), steps=st.lists(st.integers(0, 2**32 - 1), max_size=50))
def test_32bit_totals_equal_the_true_traffic_when_at_most_one_wrap_happens_between_polls(
        start: int, steps: list[int]) -> None:
    c, _ = count(Counter(), start, 32)
    true = start
    for step in steps:
        true += step
        c, _ = count(c, true % 2**32, 32)
    assert c.total == true


@given(start=st.integers(0, 2**64 - 1), steps=st.lists(st.integers(0, 2**62), max_size=50))
def test_64bit_totals_equal_the_true_traffic_across_a_wrap(start: int, steps: list[int]) -> None:
    c, _ = count(Counter(), start, 64)
    true = start
    for step in steps:
        true += step
        c, _ = count(c, true % 2**64, 64)
    assert c.total == true


# ---------------------------------------------------------------- daily traffic


def test_traffic_across_midnight_is_split_in_proportion_to_time() -> None:
    start = datetime(2026, 3, 1, 23, 0, tzinfo=TZ).timestamp()
    t = add_traffic(Traffic(), 2_000, 100, start, start + 2 * 3600, TZ)  # 23:00 .. 01:00
    assert t.on(date(2026, 3, 1)).rx == 1_000 and t.on(date(2026, 3, 2)).rx == 1_000
    assert t.on(date(2026, 3, 1)).tx + t.on(date(2026, 3, 2)).tx == 100


def test_day_boundaries_are_local_not_utc() -> None:
    # 06:30 in Hà Nội is 23:30 UTC the day before: the bytes belong to the local day.
    at = datetime(2026, 3, 2, 6, 30, tzinfo=TZ).timestamp()
    t = add_traffic(Traffic(), 500, 0, at - 60, at, TZ)
    assert t.on(date(2026, 3, 2)).rx == 500 and t.on(date(2026, 3, 1)).rx == 0


def test_only_the_last_days_are_kept_and_a_long_gap_does_not_invent_old_days() -> None:
    t = Traffic()
    for d in range(20):
        at = T0 + d * DAY
        t = add_traffic(t, 100, 100, at - 60, at, TZ)
    assert len(t.days) == KEEP_DAYS
    assert t.days[-1].day == datetime.fromtimestamp(T0 + 19 * DAY, TZ).date()
    gap = add_traffic(Traffic(), 30 * 1000, 0, T0 - 30 * DAY, T0, TZ)
    assert len(gap.days) <= KEEP_DAYS and sum(d.rx for d in gap.days) < 30 * 1000


@given(rx=st.integers(0, 10**15), tx=st.integers(0, 10**15), start=st.floats(0, 30 * DAY),
       length=st.floats(0, (KEEP_DAYS - 1) * DAY))
def test_traffic_is_conserved_exactly(rx: int, tx: int, start: float, length: float) -> None:
    t = add_traffic(Traffic(), rx, tx, T0 + start, T0 + start + length, TZ)
    assert sum(d.rx for d in t.days) == rx and sum(d.tx for d in t.days) == tx
    assert [d.day for d in t.days] == sorted(d.day for d in t.days)


def test_in_use_is_bytes_both_ways_on_the_day() -> None:
    t = add_traffic(Traffic(), 600_000, 400_000, T0 - 60, T0, TZ)
    day = datetime.fromtimestamp(T0, TZ).date()
    assert in_use(t, day, 1_000_000) and not in_use(t, day, 1_000_001)
    assert not in_use(t, day - timedelta(days=1), 1)


# ---------------------------------------------------------------- one node


def test_fold_counts_a_reboot_once_and_keeps_counters_monotonic() -> None:
    s = NodeCounters()
    s, r1 = fold_sample(s, Sample(T0, 360_000_000, 2, 64, 5_000_000_000, 6_000_000_000, 1, 2), TZ)
    s, r2 = fold_sample(s, Sample(T0 + 60, 1_500, 2, 64, 700, 800, 0, 0), TZ)
    s, r3 = fold_sample(s, Sample(T0 + 120, 7_500, 2, 64, 1_700, 1_800, 0, 1), TZ)
    assert (r1, r2, r3) == (False, True, False)
    assert s.reboots == 1
    assert s.last_reboot_at == pytest.approx(T0 + 60 - 15)
    assert s.rx.total == 5_000_000_000 + 700 + 1_000
    assert s.tx.total == 6_000_000_000 + 800 + 1_000
    assert s.out_errors.total == 2 + 0 + 1
    day = datetime.fromtimestamp(T0, TZ).date()
    assert s.traffic.on(day).rx == 1_700  # the first reading is a baseline, not traffic


def test_fold_rebases_when_the_uplink_moves_to_another_ifindex() -> None:
    s, _ = fold_sample(NodeCounters(), Sample(T0, 400_000_000, 3, 64, 1_000_000, 2_000_000), TZ)
    s, _ = fold_sample(s, Sample(T0 + 60, 400_006_000, 7, 64, 50, 60), TZ)
    assert (s.if_index, s.rx.total, s.tx.total) == (7, 1_000_000, 2_000_000)
    s, _ = fold_sample(s, Sample(T0 + 120, 400_012_000, 7, 64, 150, 60), TZ)
    assert s.rx.total == 1_000_100


samples = st.builds(
    Sample,
    at=st.just(0.0),
    uptime_ticks=st.integers(0, TICKS_MODULUS - 1),
    if_index=st.one_of(st.none(), st.integers(1, 4)),
    bits=st.sampled_from([32, 64]),
    rx=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
    tx=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
    in_errors=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
    out_errors=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
)


@given(st.lists(st.tuples(samples, st.floats(0, 3 * DAY)), max_size=40))
def test_no_exported_total_ever_decreases_whatever_the_agent_answers(seq: list[tuple[Sample, float]]) -> None:
    s, at = NodeCounters(), T0
    reboots = 0
    for sample, gap in seq:
        at += gap
        before = s
        s, rebooted = fold_sample(s, Sample(at, sample.uptime_ticks, sample.if_index, sample.bits, sample.rx,
                                            sample.tx, sample.in_errors, sample.out_errors), TZ)
        reboots += rebooted
        for name in ("rx", "tx", "in_errors", "out_errors"):
            assert getattr(s, name).total >= getattr(before, name).total or getattr(before, name).raw is None
        assert s.reboots == reboots
        assert all(d.rx >= 0 and d.tx >= 0 for d in s.traffic.days)
