"""Calendar budget periods (day, month) in an organization's time zone, DST-correct.

A period is named by its local start date ("2026-03-29" for a day, "2026-03-01" for a
month) and bounded by two UTC instants. A local day is 23 or 25 hours long when the clocks
change; the bounds come from local midnights, so they are right either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

PeriodKind = Literal["daily", "monthly"]
PERIOD_KINDS: tuple[PeriodKind, ...] = ("daily", "monthly")


@dataclass(frozen=True)
class Period:
    kind: PeriodKind
    start_date: date  # local calendar date the period starts on
    start: datetime  # UTC
    end: datetime  # UTC, exclusive

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.start_date.isoformat()}"

    def elapsed_fraction(self, moment: datetime) -> float:
        total = (self.end - self.start).total_seconds()
        done = (min(max(moment, self.start), self.end) - self.start).total_seconds()
        return done / total


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    # fold=0 picks the first occurrence if midnight is repeated; zones whose clocks skip
    # midnight itself resolve to the instant just after the gap, which is still that day.
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def _next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def period_containing(kind: PeriodKind, moment: datetime, time_zone: str) -> Period:
    """The daily or monthly period, in `time_zone`, that contains the instant `moment`."""
    zone = ZoneInfo(time_zone)
    local = moment.astimezone(zone).date()
    if kind == "daily":
        start_day, end_day = local, local + timedelta(days=1)
    else:
        start_day = local.replace(day=1)
        end_day = _next_month(start_day)
    return Period(kind, start_day, _local_midnight(start_day, zone), _local_midnight(end_day, zone))
