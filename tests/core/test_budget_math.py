from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from llmledger.core.budget_math import forecast, percent_used, thresholds_crossed
from llmledger.core.money import from_nanos, to_nanos
from llmledger.core.periods import period_containing


def test_each_threshold_is_crossed_once() -> None:
    limit = 100
    assert thresholds_crossed(0, 74, limit, [75, 90, 100]) == []
    assert thresholds_crossed(74, 75, limit, [75, 90, 100]) == [75]
    assert thresholds_crossed(75, 95, limit, [75, 90, 100]) == [90]
    assert thresholds_crossed(50, 150, limit, [100, 75, 90, 120]) == [75, 90, 100, 120]
    assert thresholds_crossed(95, 99, limit, [75, 90, 100]) == []


@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=30), st.integers(1, 100_000))
def test_any_sequence_of_spends_fires_each_reached_threshold_exactly_once(
    spends: list[int], limit: int
) -> None:
    fired: list[int] = []
    total = 0
    for spend in spends:
        fired += thresholds_crossed(total, total + spend, limit, [75, 90, 100])
        total += spend
    assert fired == [t for t in (75, 90, 100) if total * 100 >= t * limit]


def test_nanos_round_trip_and_reservations_round_up() -> None:
    assert to_nanos(Decimal("1.5")) == 1_500_000_000
    assert from_nanos(to_nanos(Decimal("0.000000001"))) == Decimal("0.000000001")
    assert to_nanos(Decimal("0.0000000001"), round_up=True) == 1
    assert to_nanos(Decimal("0.0000000001")) == 0


def test_forecast_projects_the_pace_to_the_period_end() -> None:
    period = period_containing("monthly", datetime(2026, 4, 1, tzinfo=UTC), "UTC")  # 30 days
    now = datetime(2026, 4, 11, tzinfo=UTC)  # a third of the month
    f = forecast(spent=40, limit=100, period=period, now=now)
    assert f.projected == 120 and f.over_limit
    assert f.limit_reached_at == datetime(2026, 4, 26, tzinfo=UTC)
    calm = forecast(spent=10, limit=100, period=period, now=now)
    assert not calm.over_limit and calm.limit_reached_at is None
    assert percent_used(50, 200) == 25.0
