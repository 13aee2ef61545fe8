"""Rollup and rate arithmetic on constructed histories: day cuts, monitor gaps, maintenance, merges, reused codes."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.history import (
    DOWN,
    ENDED_DAY_END,
    ENDED_NOT_OBSERVED,
    MAINTENANCE,
    UNKNOWN,
    UNREACHABLE,
    UP,
    Change,
    CommuneDay,
    CommuneTotals,
    Seconds,
    Window,
    day_of,
    day_rates,
    day_span,
    days,
    fold,
    is_connected,
    merge_outages,
    observed_seconds,
    outage_pieces,
    period_rates,
    split_by_day,
    timeline,
    unit_key,
)
from monitor.core.rates import RateRow
from monitor.store.model import DayHistory, DayRow, InventoryNode, commune_days

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
D = date(2025, 6, 30)
P = "Đắk Lắk"


def at(day: date, hour: float, tz: ZoneInfo = HCM) -> float:
    """Epoch seconds of a local time of day (hours may exceed 24 to reach the next day)."""
    return datetime.combine(day, datetime.min.time(), tzinfo=tz).timestamp() + hour * 3600


def fold_day(windows: list[Window], changes: list[Change], day: date = D) -> Seconds:
    s, e = day_span(day, HCM)
    return fold(timeline(windows, changes, s, e), s, e)


# -- day boundaries ---------------------------------------------------------------------------------


def test_ho_chi_minh_days_start_at_local_midnight_which_is_17h_utc() -> None:
    s, e = day_span(D, HCM)
    assert datetime.fromtimestamp(s, ZoneInfo("UTC")) == datetime(2025, 6, 29, 17, 0, tzinfo=ZoneInfo("UTC"))
    assert e - s == 86_400


@given(st.dates(min_value=date(1990, 1, 1), max_value=date(2060, 12, 31)))
def test_every_ho_chi_minh_day_is_86400_seconds(day: date) -> None:
    s, e = day_span(day, HCM)
    assert e - s == 86_400 and day_of(s, HCM) == day and day_of(e - 0.001, HCM) == day


def test_a_zone_with_dst_is_taken_as_given_23_hour_day() -> None:
    paris = ZoneInfo("Europe/Paris")
    s, e = day_span(date(2025, 3, 30), paris)
    assert e - s == 23 * 3600


def test_an_interval_across_midnight_is_split_at_local_midnight() -> None:
    pieces = split_by_day(at(D, 23), at(D, 25.5), HCM)
    assert [(d, round(e - s)) for d, s, e in pieces] == [(D, 3600), (D + timedelta(days=1), 5400)]


@given(st.floats(0, 3e8), st.floats(0, 3e6))
def test_split_pieces_add_up_to_the_interval(offset: float, length: float) -> None:
    start = 1.5e9 + offset
    pieces = split_by_day(start, start + length, HCM)
    assert sum(e - s for _, s, e in pieces) == pytest.approx(length, abs=1e-6)
    assert all(day_span(d, HCM)[0] <= s < e <= day_span(d, HCM)[1] for d, s, e in pieces)


def test_days_lists_both_ends() -> None:
    assert list(days(D, D + timedelta(days=2))) == [D, D + timedelta(days=1), D + timedelta(days=2)]


# -- folding ----------------------------------------------------------------------------------------


def test_a_day_cut_by_a_monitor_outage_counts_the_gap_as_unknown() -> None:
    # Run 1 observes 00:00-10:00, the monitor is down 10:00-11:00, run 2 observes 11:00-24:00.
    ws = [Window(1, at(D, 0), at(D, 10)), Window(2, at(D, 11), at(D, 24))]
    cs = [Change(1, at(D, 0), UP), Change(1, at(D, 6), DOWN), Change(2, at(D, 11), DOWN), Change(2, at(D, 12), UP)]
    sec = fold_day(ws, cs)
    assert sec == Seconds(up=(6 + 12) * 3600, down=(4 + 1) * 3600, unknown=3600)
    assert sec.availability == pytest.approx(18 / 23)


def test_a_state_never_carries_over_a_restart() -> None:
    # Run 2 never resolved the node (no change in run 2): unknown, not the "up" run 1 left behind.
    ws = [Window(1, at(D, 0), at(D, 10)), Window(2, at(D, 11), at(D, 24))]
    sec = fold_day(ws, [Change(1, at(D, 0), UP)])
    assert sec == Seconds(up=10 * 3600, unknown=14 * 3600)


def test_a_state_carries_over_a_gap_inside_one_run_but_the_gap_is_unknown() -> None:
    ws = [Window(1, at(D, 0), at(D, 10)), Window(1, at(D, 11), at(D, 24))]
    sec = fold_day(ws, [Change(1, at(D, -30), UP)])  # up since the day before
    assert sec == Seconds(up=23 * 3600, unknown=3600)


def test_a_day_the_monitor_never_ran_is_all_unknown_and_has_no_availability() -> None:
    sec = fold_day([], [Change(1, at(D, -30), UP)])
    assert sec == Seconds(unknown=86_400) and sec.availability is None


def test_maintenance_is_outside_availability_and_crosses_midnight() -> None:
    ws = [Window(1, at(D, 0), at(D, 48))]
    cs = [Change(1, at(D, 0), UP), Change(1, at(D, 22), MAINTENANCE), Change(1, at(D, 26), UP),
          Change(1, at(D, 30), DOWN), Change(1, at(D, 31), UP)]
    day1, day2 = fold_day(ws, cs, D), fold_day(ws, cs, D + timedelta(days=1))
    assert day1 == Seconds(up=22 * 3600, maintenance=2 * 3600)
    assert day1.availability == 1.0
    assert day2 == Seconds(up=21 * 3600, down=3600, maintenance=2 * 3600)
    assert day2.availability == pytest.approx(21 / 22)


def test_unreachable_counts_against_availability() -> None:
    ws = [Window(1, at(D, 0), at(D, 24))]
    sec = fold_day(ws, [Change(1, at(D, 0), UP), Change(1, at(D, 12), UNREACHABLE, "AGG")])
    assert sec.availability == 0.5 and sec.outage == 12 * 3600


def test_rounded_seconds_add_up_to_the_day_exactly() -> None:
    sec = Seconds(up=1 / 3, down=2 / 3, unknown=86_399).rounded(86_400)
    assert sec.total == 86_400 and sec.up == 0.333


def test_observed_seconds_counts_overlapping_windows_once() -> None:
    ws = [Window(1, 0, 10), Window(2, 5, 20), Window(3, 30, 40)]
    assert observed_seconds(ws, 0, 35) == 25


# -- outages ----------------------------------------------------------------------------------------


def test_an_outage_across_midnight_is_two_pieces_merged_into_one() -> None:
    ws = [Window(1, at(D, 0), at(D, 48))]
    cs = [Change(1, at(D, 0), UP), Change(1, at(D, 23), DOWN), Change(1, at(D, 24.5), UNREACHABLE, "AGG"),
          Change(1, at(D, 25), UP)]
    pieces = []
    for day in (D, D + timedelta(days=1)):
        s, e = day_span(day, HCM)
        pieces += [("u", p) for p in outage_pieces(timeline(ws, cs, s, e), e)]
    assert [p.ended_by for _, p in pieces] == [ENDED_DAY_END, UP]
    (o,) = merge_outages(pieces)
    assert (o.start, o.end) == (at(D, 23), at(D, 25))
    assert (o.down_s, o.unreachable_s, o.cause, o.ended_by) == (5400, 1800, "AGG", UP)


def test_an_outage_the_monitor_stopped_watching_ends_not_observed() -> None:
    ws = [Window(1, at(D, 0), at(D, 10)), Window(2, at(D, 11), at(D, 24))]
    cs = [Change(1, at(D, 0), UP), Change(1, at(D, 9), DOWN), Change(2, at(D, 11), DOWN), Change(2, at(D, 13), UP)]
    s, e = day_span(D, HCM)
    ps = outage_pieces(timeline(ws, cs, s, e), e)
    assert [(p.ended_by, p.duration) for p in ps] == [(ENDED_NOT_OBSERVED, 3600), (UP, 7200)]
    assert len(merge_outages(("u", p) for p in ps)) == 2  # the gap between them is unknown: two outages


states = st.sampled_from([UP, DOWN, UNREACHABLE, UNKNOWN, MAINTENANCE])


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Window], list[Change]]:
    base = at(D, -2)
    ws, cs, t = [], [], base
    for run in range(1, draw(st.integers(1, 4)) + 1):
        t += draw(st.floats(0, 30_000))
        start = t
        cs.append(Change(run, start, draw(states)))
        for _ in range(draw(st.integers(0, 6))):
            t += draw(st.floats(1, 20_000))
            cs.append(Change(run, t, draw(states)))
        t += draw(st.floats(0, 20_000))
        ws.append(Window(run, start, t))
    return ws, cs


@settings(max_examples=200)
@given(histories())
def test_folds_add_up_and_outages_match_the_seconds(h: tuple[list[Window], list[Change]]) -> None:
    ws, cs = h
    total_out = 0.0
    pieces = []
    for day in (D - timedelta(days=1), D, D + timedelta(days=1)):
        s, e = day_span(day, HCM)
        segs = timeline(ws, cs, s, e)
        sec = fold(segs, s, e)
        assert sec.total == pytest.approx(86_400, abs=1e-6)
        assert sec.up + sec.down + sec.unreachable + sec.maintenance <= observed_seconds(ws, s, e) + 1e-6
        ps = outage_pieces(segs, e)
        assert sum(p.down_s + p.unreachable_s for p in ps) == pytest.approx(sec.outage, abs=0.01)
        total_out += sec.outage
        pieces += [("u", p) for p in ps]
    merged = merge_outages(pieces)
    assert sum(o.down_s + o.unreachable_s for o in merged) == pytest.approx(total_out, abs=0.01)
    assert all(a.end <= b.start for a, b in zip(merged, merged[1:], strict=False))


# -- rates ------------------------------------------------------------------------------------------

UP_DAY = Seconds(up=86_400)
DOWN_DAY = Seconds(down=86_400)


def commune(unit: object, area: str, seconds: Seconds, *, provisioned: bool = True,
            traffic: int | None = None, code: str = "") -> CommuneDay:
    return CommuneDay(unit, code or str(unit), f"Xã {unit}", P, area, provisioned, seconds, traffic)


def test_day_rates_count_every_active_commune_in_the_denominator() -> None:
    cds = [
        commune(1, "A", UP_DAY, traffic=5_000_000),
        commune(2, "A", Seconds(up=80_000, down=6_400)),  # 92.6%: connected
        commune(3, "A", Seconds(up=70_000, down=16_400)),  # 81%: not connected
        commune(4, "B", Seconds(unknown=86_400), provisioned=False),  # no circuit
    ]
    rates = {r.area: r for r in day_rates(D, cds, min_availability=0.9, in_use_min_bytes=1_000_000)}
    assert (rates[""].communes, rates[""].provisioned, rates[""].connected, rates[""].in_use) == (4, 3, 2, 1)
    assert rates[""].connected_rate == 0.5 and rates["A"].connected_rate == pytest.approx(2 / 3)
    assert rates["B"].connected_rate == 0.0 and rates["B"].provisioned_rate == 0.0


def test_in_use_needs_traffic_data_and_a_connected_day() -> None:
    cds = [commune(1, "A", UP_DAY, traffic=None), commune(2, "A", DOWN_DAY, traffic=10**9),
           commune(3, "A", UP_DAY, traffic=999_999), commune(4, "A", UP_DAY, traffic=1_000_000)]
    (prov, _) = day_rates(D, cds, min_availability=0.9, in_use_min_bytes=1_000_000)
    assert prov.in_use == 1


def test_a_period_rate_is_the_mean_of_daily_rates() -> None:
    daily = [r for i, d in enumerate(days(D, D + timedelta(days=3)))
             for r in day_rates(d, [commune(1, "A", UP_DAY), commune(2, "A", UP_DAY if i % 2 else DOWN_DAY)],
                                min_availability=0.9, in_use_min_bytes=1)]
    (prov, area) = period_rates(daily)
    assert prov.connected_rate == 0.75 and prov.days == 4
    assert (prov.connected_min, prov.connected_max) == (0.5, 1.0)


def node(unit: int, code: str, name: str, area: str = "A", *, frm: date | None = None, until: date | None = None,
         address: str = "198.18.0.1") -> InventoryNode:
    return InventoryNode(unit, code, unit_key(code, frm)[1], name, "commune", P, area, address, None, frm, until)


def history(day: date, rows: dict[int, Seconds]) -> DayHistory:
    s, e = day_span(day, HCM)
    return DayHistory(day, s, e, None, 1, 86_400, {u: DayRow(u, sec) for u, sec in rows.items()})


def test_a_commune_that_became_active_mid_period_counts_only_from_then() -> None:
    nodes = [node(1, "24001", "Xã Cũ"), node(2, "24002", "Xã Mới", frm=D + timedelta(days=2))]
    daily: list[RateRow] = []
    totals: dict[object, CommuneTotals] = {}
    for d in days(D, D + timedelta(days=3)):
        cds = commune_days(history(d, {1: UP_DAY, 2: UP_DAY}), nodes)
        daily += day_rates(d, cds, min_availability=0.9, in_use_min_bytes=1)
        for c in cds:
            totals.setdefault(c.unit, CommuneTotals(c.unit, c.code, c.name, c.area)).add_day(
                d, c, min_availability=0.9, in_use_min_bytes=1)
    assert [r.communes for r in daily if r.area == ""] == [1, 1, 2, 2]
    assert totals[2].days_active == 2 and totals[2].first_day == D + timedelta(days=2)
    assert period_rates(daily)[0].connected_rate == 1.0


def test_a_merge_of_two_communes_into_one_reusing_a_code_keeps_histories_apart() -> None:
    # 24133 and 24136 merge on 1 July 2025; the new unit reuses 24133 with another name.
    old_a = node(1, "24133", "Phường Thành Công", until=D)
    old_b = node(2, "24136", "Phường Tân Thành", until=D)
    new = node(3, "24133", "Phường Buôn Ma Thuột", frm=D + timedelta(days=1))
    assert unit_key(old_a.code, old_a.active_from) != unit_key(new.code, new.active_from)
    nodes = [old_a, old_b, new]
    rows = {1: DOWN_DAY, 2: UP_DAY, 3: UP_DAY}  # the old 24133 was down; the new one must not inherit it
    before = commune_days(history(D, rows), nodes)
    after = commune_days(history(D + timedelta(days=1), rows), nodes)
    assert sorted(c.name for c in before) == ["Phường Thành Công", "Phường Tân Thành"]
    assert [c.name for c in after] == ["Phường Buôn Ma Thuột"] and after[0].seconds == UP_DAY
    r_before = day_rates(D, before, min_availability=0.9, in_use_min_bytes=1)[0]
    r_after = day_rates(D + timedelta(days=1), after, min_availability=0.9, in_use_min_bytes=1)[0]
    assert (r_before.communes, r_before.connected) == (2, 1)
    assert (r_after.communes, r_after.connected) == (1, 1)
    totals: dict[object, CommuneTotals] = {}
    for d, cds in ((D, before), (D + timedelta(days=1), after)):
        for c in cds:
            totals.setdefault(c.unit, CommuneTotals(c.unit, c.code, c.name, c.area)).add_day(
                d, c, min_availability=0.9, in_use_min_bytes=1)
    by_name = {t.name: t for t in totals.values()}
    assert by_name["Phường Thành Công"].days_connected == 0
    assert by_name["Phường Buôn Ma Thuột"].days_connected == 1
    assert by_name["Phường Buôn Ma Thuột"].seconds == UP_DAY


def test_a_commune_with_no_row_was_not_observed_and_is_not_connected() -> None:
    cds = commune_days(history(D, {}), [node(1, "24001", "Xã A")])
    assert cds[0].seconds == Seconds(unknown=86_400)
    assert day_rates(D, cds, min_availability=0.9, in_use_min_bytes=1)[0].connected == 0


def test_commune_days_filters_one_area_and_skips_network_nodes() -> None:
    core = InventoryNode(9, "CORE", date(1, 1, 1), "Lõi", "core", P, "", "198.18.0.9", None, None, None)
    nodes = [node(1, "1", "a", "A"), node(2, "2", "b", "B"), core]
    assert [c.code for c in commune_days(history(D, {}), nodes, "B")] == ["2"]
    assert len(commune_days(history(D, {}), nodes)) == 2


# -- unobserved is not disconnected -------------------------------------------------------------------

_SECONDS = st.builds(lambda up, down, unr: Seconds(up=up, down=down, unreachable=unr, unknown=86_400 - up - down - unr),
                     st.integers(0, 28_800), st.integers(0, 28_800), st.integers(0, 28_800))


def _days(per_day: list[dict[int, Seconds]], nodes: list[InventoryNode]) -> list[RateRow]:
    rows: list[RateRow] = []
    for i, day_rows in enumerate(per_day):
        d = D + timedelta(days=i)
        rows.extend(day_rates(d, commune_days(history(d, day_rows), nodes), min_availability=0.9,
                              in_use_min_bytes=1))
    return rows


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.one_of(st.none(), _SECONDS), min_size=3, max_size=3), min_size=1, max_size=6),
       st.lists(st.integers(0, 6), max_size=4))
def test_time_the_monitor_did_not_run_never_changes_a_verdict_or_lowers_a_rate(
        observed: list[list[Seconds | None]], gaps: list[int]) -> None:
    """Three communes (one without a circuit) over some days; then days on which the monitor did not run are
    inserted. Each commune's verdict on the days with data stays, and no period rate goes down (it stays)."""
    nodes = [node(1, "1", "a"), node(2, "2", "b", "B"), node(3, "3", "c", address="")]
    per_day = [{u: s for u, s in zip((1, 2, 3), day, strict=True) if s is not None} for day in observed]
    with_gaps = list(per_day)
    for at in sorted(gaps, reverse=True):
        with_gaps.insert(min(at, len(with_gaps)), {})  # a whole day unobserved: no row for any commune

    def verdicts(days: list[dict[int, Seconds]]) -> list[dict[str, bool]]:
        out = []
        for i, rows in enumerate(days):
            if not rows:
                continue
            d = D + timedelta(days=i)
            out.append({c.code: is_connected(c.seconds, 0.9) for c in commune_days(history(d, rows), nodes)})
        return out

    assert verdicts(with_gaps) == verdicts(per_day)
    before = {(p.province, p.area): p for p in period_rates(_days(per_day, nodes))}
    after = {(p.province, p.area): p for p in period_rates(_days(with_gaps, nodes))}
    assert before.keys() == after.keys()
    for key, b in before.items():
        a = after[key]
        assert a.days == b.days
        if b.connected_rate is None:
            assert a.connected_rate is None
        else:
            assert a.connected_rate is not None and a.connected_rate == pytest.approx(b.connected_rate)
    for r in _days(with_gaps, nodes):
        if r.day is not None and not with_gaps[(r.day - D).days] and r.provisioned:
            assert r.connected_rate is None and r.no_data == r.provisioned  # a day without data has no rate


def test_a_day_nobody_observed_has_no_rate_but_a_commune_without_circuit_is_known_not_connected() -> None:
    nodes = [node(1, "1", "a"), node(2, "2", "b", address="")]
    row = day_rates(D, commune_days(history(D, {}), nodes), min_availability=0.9, in_use_min_bytes=1)[0]
    assert (row.area, row.communes, row.provisioned, row.no_data, row.connected_rate) == ("", 2, 1, 1, None)
    up = Seconds(up=86_400)
    row = day_rates(D, commune_days(history(D, {1: up}), nodes), min_availability=0.9, in_use_min_bytes=1)[0]
    assert (row.no_data, row.connected_rate) == (0, 0.5)  # the commune without a circuit counts, not connected


@given(st.lists(st.tuples(st.floats(0, 80_000), st.floats(60, 20_000)), min_size=1, max_size=6),
       st.lists(st.tuples(st.floats(0, 86_000), st.sampled_from([UP, DOWN, UNREACHABLE])), max_size=12))
def test_another_pollers_heartbeats_say_nothing_of_a_unit_it_does_not_watch(
        other: list[tuple[float, float]], mine: list[tuple[float, str]]) -> None:
    """Issue 14 (pollers sharing one store): run 2 watches other units, its windows overlapping run 1's at will.
    A unit watched by run 1 only has exactly the timeline run 1's windows give it; when run 1 is gone and run 2
    goes on, the unit is unknown, never the state it last had."""
    start, end = 0.0, 86_400.0
    run1 = [Window(1, 1_000, 40_000)]
    run2 = [Window(2, s, min(end, s + d)) for s, d in other]
    changes = [Change(1, 999, UP)] + [Change(1, at, state) for at, state in sorted(mine) if 1_000 < at < 40_000]
    alone = timeline(run1, changes, start, end)
    assert timeline(run1 + run2, changes, start, end) == alone
    assert fold(alone, start, end).unknown >= end - 40_000  # after run 1 stopped: unknown, whatever run 2 saw


def test_carrier_seconds_split_a_commune_whose_circuit_changed_hands() -> None:
    """Issue 17, part 4: each day of a commune counts under the carrier its inventory named that day."""
    from monitor.core.history import Commune, PeriodCount, Roster

    day = date(2026, 11, 1)
    vnpt = Roster([Commune(1, "24133", "A", "P", "", True, "VNPT"), Commune(2, "24121", "B", "P", "", True, None)])
    viettel = Roster([Commune(1, "24133", "A", "P", "", True, "Viettel"),
                      Commune(2, "24121", "B", "P", "", True, None)])
    count = PeriodCount(min_availability=0.9, in_use_min_bytes=0)
    rows = {1: (1, 80_000.0, 6_400.0, 0.0, 0.0, 0.0, None, None, None, None),
            2: (2, 86_400.0, 0.0, 0.0, 0.0, 0.0, None, None, 288, 280)}
    for i, roster in enumerate((vnpt, vnpt, viettel)):
        count.add_day(day + timedelta(days=i), 86_400, roster, rows)
    got = count.carrier_seconds()
    assert got["VNPT"] == (Seconds(up=160_000, down=12_800), frozenset({1}))
    assert got["Viettel"] == (Seconds(up=80_000, down=6_400), frozenset({1}))
    assert got[None] == (Seconds(up=3 * 86_400), frozenset({2}))
    assert count.totals()[1].carrier == "Viettel"  # as on its last day
