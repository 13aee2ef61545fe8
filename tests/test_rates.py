"""Rate arithmetic by docs/design.md's definitions."""

import pytest

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
