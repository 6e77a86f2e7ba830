"""Self-correcting estimates: token counts we can only estimate (every provider but OpenAI
publishes no tokenizer) are checked against what providers reported for the same gateway
calls, and corrected by what they showed.

Each gateway call whose provider reported usage adds one observation: our input estimate
and the provider's count. Per organization and model we keep running sums; once a model has
enough of the organization's calls, its estimates are scaled by reported/estimated over all
of them, and the spread of the per-call ratio becomes the stated expected error. OpenAI's
models are counted exactly and are left alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmledger.core.tokens import TokenCount, openai_encoding
from llmledger.kit.upsert import insert_or_add
from llmledger.models import TokenCalibration

# Calls a model needs before its estimates are corrected: fewer say too little.
MIN_CALLS = 20

# Tokenizers differ by tens of percent, not by multiples. A call outside this range carried
# content we do not count (a PDF, audio) or reports something else; it says nothing about the
# model's tokenizer and is left out.
PLAUSIBLE = (0.5, 2.0)

ModelKey = tuple[str, str]  # provider, model (the price catalog's names)


@dataclass(frozen=True)
class Observation:
    organization_id: int
    provider: str
    model: str
    estimated: int  # our input token estimate, before any correction
    reported: int  # the provider's input tokens (cache reads and writes included)


@dataclass(frozen=True)
class Calibration:
    provider: str
    model: str
    calls: int
    estimated_tokens: int
    reported_tokens: int
    ratio_sum: float
    ratio_square_sum: float

    @property
    def trusted(self) -> bool:
        return self.calls >= MIN_CALLS and self.estimated_tokens > 0

    @property
    def factor(self) -> float:
        """What to multiply our estimates by: reported over estimated, token-weighted."""
        return self.reported_tokens / self.estimated_tokens if self.estimated_tokens else 1.0

    @property
    def spread(self) -> float:
        """The per-call ratio's relative standard deviation: how far one corrected estimate
        is expected to be off."""
        if not self.calls or not self.ratio_sum:
            return 0.0
        mean = self.ratio_sum / self.calls
        variance = max(self.ratio_square_sum / self.calls - mean * mean, 0.0)
        return math.sqrt(variance) / mean


def record_observations(session: Session, observations: Sequence[Observation]) -> None:
    """Add observations to their models' running sums (one statement)."""
    usable = [
        o
        for o in observations
        if o.estimated > 0
        and PLAUSIBLE[0] <= o.reported / o.estimated <= PLAUSIBLE[1]
        and openai_encoding(o.model) is None  # exact already
    ]
    if not usable:
        return
    now = datetime.now(UTC)
    rows: dict[tuple[int, str, str], dict[str, Any]] = {}
    for o in usable:
        row = rows.setdefault(
            (o.organization_id, o.provider, o.model),
            {
                "organization_id": o.organization_id,
                "provider": o.provider,
                "model": o.model,
                "calls": 0,
                "estimated_tokens": 0,
                "reported_tokens": 0,
                "ratio_sum": 0.0,
                "ratio_square_sum": 0.0,
                "updated_at": now,
            },
        )
        ratio = o.reported / o.estimated
        row["calls"] += 1
        row["estimated_tokens"] += o.estimated
        row["reported_tokens"] += o.reported
        row["ratio_sum"] += ratio
        row["ratio_square_sum"] += ratio * ratio
    added = ("calls", "estimated_tokens", "reported_tokens", "ratio_sum", "ratio_square_sum")
    key = ("organization_id", "provider", "model")
    # Sorted, so concurrent writers lock rows in one order.
    ordered = [rows[k] for k in sorted(rows)]
    session.execute(insert_or_add(session, TokenCalibration, key, added), ordered)


def load_calibrations(session: Session, org_id: int) -> dict[ModelKey, Calibration]:
    """An organization's calibrations, by (provider, model)."""
    return {
        (row.provider, row.model): Calibration(
            row.provider,
            row.model,
            row.calls,
            row.estimated_tokens,
            row.reported_tokens,
            row.ratio_sum,
            row.ratio_square_sum,
        )
        for row in session.scalars(
            select(TokenCalibration).where(TokenCalibration.organization_id == org_id)
        )
    }


def corrected(
    tokens: int, provider: str, model: str, calibrations: Mapping[ModelKey, Calibration]
) -> int:
    """A call's input count corrected by what its model's calls showed, unless the model has
    an exact tokenizer (OpenAI's)."""
    if openai_encoding(model) is not None:
        return tokens
    return calibrated_tokens(tokens, calibrations.get((provider, model)))


def calibrated_tokens(tokens: int, calibration: Calibration | None) -> int:
    """An estimate corrected by what the model's calls showed (as is until it is trusted)."""
    if calibration is None or not calibration.trusted:
        return tokens
    # In integers (rounding up), so the same sums always give the same count.
    return -(-tokens * calibration.reported_tokens // calibration.estimated_tokens)


def calibrate(count: TokenCount, calibration: Calibration | None) -> TokenCount:
    """A count corrected by what the model's calls showed; OpenAI's stay as they are."""
    if calibration is None or not calibration.trusted:
        return count
    if openai_encoding(calibration.model) is not None:
        return count
    return replace(
        count,
        tokens=calibrated_tokens(count.tokens, calibration),
        expected_error=calibration.spread,
    )
