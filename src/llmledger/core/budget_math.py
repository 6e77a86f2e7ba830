"""Budget arithmetic: thresholds crossed, percent used, forecasts. Pure; amounts in nanos."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from llmledger.core.periods import Period

DEFAULT_THRESHOLDS: tuple[int, ...] = (75, 90, 100)


def percent_used(spent: int, limit: int) -> float:
    if limit <= 0:
        return 100.0 if spent > 0 else 0.0
    return spent * 100 / limit


def thresholds_crossed(before: int, after: int, limit: int, thresholds: Sequence[int]) -> list[int]:
    """Thresholds (percent of `limit`) that spend moving from `before` to `after` reached.

    A threshold is reached when spend is at or above it; one already reached before is not
    reached again, so each fires once per period however the spend arrives.
    """
    return [t for t in sorted(thresholds) if before * 100 < t * limit <= after * 100]


@dataclass(frozen=True)
class Forecast:
    """Where spend is heading at the pace so far in the period."""

    projected: int  # nanos by the period's end
    limit_reached_at: datetime | None  # when spend reaches the limit at this pace, if in period
    over_limit: bool


def forecast(spent: int, limit: int | None, period: Period, now: datetime) -> Forecast:
    """Linear projection of spend to the period's end. Integer arithmetic throughout (nanos
    and microseconds), so no float touches an amount."""
    elapsed = min(max(now, period.start), period.end) - period.start
    micro = timedelta(microseconds=1)
    elapsed_us = elapsed // micro
    if elapsed_us <= 0 or spent <= 0:
        return Forecast(spent, None, False)
    projected = spent * ((period.end - period.start) // micro) // elapsed_us
    if limit is None:
        return Forecast(projected, None, False)
    reached_at: datetime | None = None
    if spent >= limit:
        reached_at = now
    elif projected > limit:
        reached_at = period.start + timedelta(microseconds=elapsed_us * limit // spent)
    return Forecast(projected, reached_at, projected > limit)
