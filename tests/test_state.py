"""The state machine: hysteresis, parents, maintenance, flapping (unit + hypothesis properties)."""

from hypothesis import given
from hypothesis import strategies as st

from monitor.core.state import History, Link, Resolved, State, advance, is_flapping, observe, resolve


def run(results: list[bool], down_after: int = 2, up_after: int = 2) -> list[bool | None]:
    link, out = Link(), []
    for r in results:
        link = observe(link, r, down_after=down_after, up_after=up_after)
        out.append(link.ok)
    return out


def test_starts_unknown_then_up_on_first_success() -> None:
    assert Link().ok is None
    assert run([True]) == [True]


def test_goes_down_only_after_down_after_failures_and_back_after_up_after() -> None:
    assert run([True, False, False, False, True, True], down_after=3, up_after=2) == [
        True, True, True, False, False, True]


def test_a_single_success_between_failures_resets_the_count() -> None:
    assert run([True, False, True, False, True], down_after=2) == [True] * 5


@given(st.lists(st.booleans(), max_size=60), st.integers(1, 5), st.integers(1, 5))
def test_never_down_before_down_after_consecutive_failures(results: list[bool], down_after: int,
                                                            up_after: int) -> None:
    states = run(results, down_after, up_after)
    for i, s in enumerate(states):
        if s is False and (i == 0 or states[i - 1] is not False):
            window = results[max(0, i - down_after + 1): i + 1]
            assert len(window) == down_after and not any(window)


@given(st.lists(st.booleans(), max_size=60), st.integers(1, 5), st.integers(1, 5))
def test_never_back_up_before_up_after_consecutive_successes(results: list[bool], down_after: int,
                                                              up_after: int) -> None:
    states = run(results, down_after, up_after)
    for i in range(1, len(states)):
        if states[i - 1] is False and states[i] is True:
            window = results[max(0, i - up_after + 1): i + 1]
            assert len(window) == up_after and all(window)


@given(st.lists(st.booleans(), min_size=1, max_size=60), st.integers(1, 5), st.integers(1, 5))
def test_unknown_only_before_the_first_decision(results: list[bool], down_after: int, up_after: int) -> None:
    states = run(results, down_after, up_after)
    decided = [i for i, s in enumerate(states) if s is not None]
    if decided:
        assert all(s is not None for s in states[decided[0]:])
    assert states[-1] is not None or (not any(results) and len(results) < down_after)


def test_child_of_a_down_parent_is_unreachable_with_the_topmost_cause() -> None:
    links = {"core": Link(ok=True), "agg": Link(ok=False), "c1": Link(ok=False), "c2": Link(ok=True),
             "sub": Link(ok=False), "c3": Link(ok=False)}
    parents = {"core": None, "agg": "core", "c1": "agg", "c2": "agg", "sub": "agg", "c3": "sub"}
    r = resolve(links, parents)
    assert r["agg"] == Resolved(State.DOWN)
    assert r["c1"] == Resolved(State.UNREACHABLE, "agg")
    assert r["c2"] == Resolved(State.UP)  # answers: up whatever its parent says
    assert r["sub"] == Resolved(State.UNREACHABLE, "agg")
    assert r["c3"] == Resolved(State.UNREACHABLE, "agg")


def test_maintenance_overrides_and_blocks_children() -> None:
    links = {"agg": Link(ok=False), "c1": Link(ok=False), "c2": Link(ok=None)}
    r = resolve(links, {"agg": None, "c1": "agg", "c2": "agg"}, frozenset({"agg"}))
    assert r["agg"].state is State.MAINTENANCE
    assert r["c1"] == Resolved(State.UNREACHABLE, "agg")
    assert r["c2"].state is State.UNKNOWN


def test_unprobed_or_cyclic_parents_never_block_or_hang() -> None:
    r = resolve({"a": Link(ok=False), "b": Link(ok=False)}, {"a": "b", "b": "a"})
    assert {r["a"].state, r["b"].state} <= {State.DOWN, State.UNREACHABLE}
    r = resolve({"a": Link(ok=False)}, {"a": "not-probed"})
    assert r["a"] == Resolved(State.DOWN)


def test_events_carry_time_and_cause_and_count_changes() -> None:
    h = History()
    h, ev = advance(h, "x", Resolved(State.UP), 100.0, flap_changes=6)
    assert ev is not None and (ev.old, ev.new, ev.at) == (State.UNKNOWN, State.UP, 100.0)
    assert h.changes == 0 and h.since == 100.0
    h, ev = advance(h, "x", Resolved(State.UP), 110.0, flap_changes=6)
    assert ev is None and h.since == 100.0
    h, ev = advance(h, "x", Resolved(State.UNREACHABLE, "agg"), 120.0, flap_changes=6)
    assert ev is not None and ev.cause == "agg" and h.changes == 1 and h.since == 120.0


def test_flapping_is_flagged_within_the_window_only() -> None:
    h = History()
    t = 0.0
    for i in range(8):
        h, _ = advance(h, "x", Resolved(State.UP if i % 2 else State.DOWN), t, flap_changes=6)
        t += 10
    assert is_flapping(h, t, flap_window_s=100, flap_changes=6)
    assert not is_flapping(h, t + 200, flap_window_s=100, flap_changes=6)


@given(st.lists(st.sampled_from(list(State)), max_size=50))
def test_change_count_equals_number_of_events_after_the_first(seq: list[State]) -> None:
    h, events = History(), []
    for i, s in enumerate(seq):
        h, ev = advance(h, "x", Resolved(s), float(i), flap_changes=6)
        if ev:
            events.append(ev)
    first_is_event = bool(seq) and seq[0] is not State.UNKNOWN
    assert h.changes == len(events) - (1 if first_is_event else 0)


@given(st.lists(st.tuples(st.sampled_from([State.UP, State.DOWN, State.UNREACHABLE]),
                          st.floats(min_value=0.5, max_value=400.0)), max_size=80),
       st.integers(min_value=1, max_value=8), st.floats(min_value=1.0, max_value=1000.0))
def test_flapping_in_constant_space_agrees_with_counting_every_change(
        seq: list[tuple[State, float]], flap_changes: int, window: float) -> None:
    """Issue 13, part 5: the history keeps only the last ``flap_changes`` change times and an unchanged state
    allocates nothing, yet the flag is exactly "at least flap_changes changes within the window", counted
    over every change since the start, at every sweep."""
    h, changes, t = History(), [], 0.0
    for state, gap in seq:
        t += gap
        before = h
        h, ev = advance(h, "x", Resolved(state), t, flap_changes=flap_changes)
        if ev is None and before.since is not None:
            assert h is before
        if ev is not None and before.since is not None:
            changes.append(t)
        assert len(h.recent) <= flap_changes
        for probe in (t, t + window / 2, t + window):
            naive = sum(1 for c in changes if probe - c < window) >= flap_changes
            assert is_flapping(h, probe, flap_window_s=window, flap_changes=flap_changes) == naive
