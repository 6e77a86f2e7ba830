from datetime import UTC, date, datetime, timedelta

import pytest

from llmledger.core.periods import period_containing


def test_daily_period_in_a_time_zone() -> None:
    p = period_containing("daily", datetime(2026, 1, 15, 23, 30, tzinfo=UTC), "Europe/Berlin")
    assert p.start_date == date(2026, 1, 16)  # already the 16th in Berlin
    assert p.start == datetime(2026, 1, 15, 23, 0, tzinfo=UTC)
    assert p.end == datetime(2026, 1, 16, 23, 0, tzinfo=UTC)
    assert p.key == "daily:2026-01-16"


@pytest.mark.parametrize(
    ("day", "hours"),
    [(datetime(2026, 3, 29, 12, tzinfo=UTC), 23), (datetime(2026, 10, 25, 12, tzinfo=UTC), 25)],
)
def test_days_when_the_clocks_change_are_23_or_25_hours(day: datetime, hours: int) -> None:
    p = period_containing("daily", day, "Europe/Berlin")
    assert p.end - p.start == timedelta(hours=hours)


def test_monthly_period_wraps_the_year_and_follows_dst() -> None:
    p = period_containing("monthly", datetime(2026, 12, 31, 12, tzinfo=UTC), "America/New_York")
    assert p.start_date == date(2026, 12, 1)
    assert p.start == datetime(2026, 12, 1, 5, tzinfo=UTC)
    assert p.end == datetime(2027, 1, 1, 5, tzinfo=UTC)
    march = period_containing("monthly", datetime(2026, 3, 15, tzinfo=UTC), "America/New_York")
    assert march.start == datetime(2026, 3, 1, 5, tzinfo=UTC)
    assert march.end == datetime(2026, 4, 1, 4, tzinfo=UTC)  # EDT began in between


def test_consecutive_periods_tile_time() -> None:
    moment = datetime(2026, 3, 28, tzinfo=UTC)
    for _ in range(5):
        p = period_containing("daily", moment, "Australia/Lord_Howe")  # a 30-minute DST shift
        nxt = period_containing("daily", p.end, "Australia/Lord_Howe")
        assert nxt.start == p.end and nxt.start_date == p.start_date + timedelta(days=1)
        moment = p.end


def test_elapsed_fraction() -> None:
    p = period_containing("daily", datetime(2026, 5, 5, 6, tzinfo=UTC), "UTC")
    assert p.elapsed_fraction(datetime(2026, 5, 5, 6, tzinfo=UTC)) == 0.25
    assert p.elapsed_fraction(datetime(2026, 5, 7, tzinfo=UTC)) == 1.0
