"""Rate arithmetic by docs/design.md's definitions."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.core.rates import CommuneNow, availability, connected_on_day, current_rates, period_rate


def test_availability_excludes_unknown_and_maintenance() -> None:
    assert availability(up_s=90, down_s=5, unreachable_s=5) == pytest.approx(0.9)
    assert availability(0, 0, 0) is None


def test_connected_on_day_uses_the_threshold() -> None:
    assert connected_on_day(0.9, 0.9)
    assert not connected_on_day(0.8999, 0.9)
    assert not connected_on_day(None, 0.0)


def test_period_rate_is_mean_of_daily_rates() -> None:
    assert period_rate([1.0, 0.5, 0.0]) == pytest.approx(0.5)
    assert period_rate([]) is None


def test_current_rates_count_unprovisioned_communes_in_the_denominator() -> None:
    communes = [
        CommuneNow("P", "A", provisioned=True, up=True),
        CommuneNow("P", "A", provisioned=True, up=False),
        CommuneNow("P", "B", provisioned=False, up=False),
        CommuneNow("P", "B", provisioned=True, up=True),
        CommuneNow("P", "", provisioned=True, up=True),
    ]
    rows = {(r.province, r.area): r for r in current_rates(communes)}
    whole = rows[("P", "")]
    assert (whole.communes, whole.provisioned, whole.connected) == (5, 4, 3)
    assert whole.rate == pytest.approx(0.6) and whole.provisioned_rate == pytest.approx(0.8)
    assert (rows[("P", "B")].communes, rows[("P", "B")].connected) == (2, 1)
    assert rows[("P", "A")].rate == pytest.approx(0.5)


def test_no_communes_gives_zero_not_a_division_error() -> None:
    assert current_rates([]) == ()


@given(st.lists(st.tuples(st.sampled_from(["Đắk Lắk", "Lai Châu", "Gia Lai", "Cao Bằng"]),
                          st.sampled_from(["", "A", "B"]), st.booleans(), st.booleans()), max_size=60))
def test_the_national_row_is_the_sum_of_the_provinces_watched(communes: list[tuple[str, str, bool, bool]]) -> None:
    """Issue 15, part 4: with several provinces watched, the national row's counts are the sums of theirs (so
    the provinces add up to it) and its rate is the rate over all their communes; other provinces' nodes count
    in their own rows only."""
    from monitor.config import NATIONAL, Config
    from monitor.core.rates import for_scope

    cfg = Config.model_validate({"province": ["Đắk Lắk", "Lai Châu", "Gia Lai"], "inventory": "x"})
    rows = for_scope(current_rates(CommuneNow(p, a, prov, up) for p, a, prov, up in communes), cfg)
    national = rows[0]
    assert (national.province, national.area) == (NATIONAL, "")
    watched = [c for c in communes if c[0] in cfg.watched]
    assert national.communes == len(watched) == sum(r.communes for r in rows if r.area == "" and r.province in
                                                    cfg.watched)
    assert national.connected == sum(1 for _, _, prov, up in watched if prov and up)
    assert national.provisioned == sum(1 for _, _, prov, _ in watched if prov)
    assert national.rate == (national.connected / len(watched) if watched else 0.0)
    one = Config.model_validate({"province": "Đắk Lắk", "inventory": "x"})
    assert for_scope(rows[1:], one) == rows[1:]  # a province's own deployment: its rows as they are
