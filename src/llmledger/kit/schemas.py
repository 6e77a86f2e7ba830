"""Response pieces shared by several domains."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, PlainSerializer

from llmledger.core.money import as_text
from llmledger.core.pricing import CostBreakdown

# Amounts in JSON: exact decimal strings without exponent or trailing zeros ("0.0075").
Usd = Annotated[Decimal, PlainSerializer(as_text, return_type=str, when_used="json")]


class CostOut(BaseModel):
    """A cost breakdown in USD; amounts are exact decimal strings."""

    input: Usd
    cached_input: Usd
    cache_write: Usd
    output: Usd
    reasoning: Usd
    request: Usd
    total: Usd

    @classmethod
    def of(cls, cost: CostBreakdown) -> CostOut:
        # Built from a CostBreakdown, which is already exact Decimals: no validation needed.
        return cls.model_construct(
            input=cost.input,
            cached_input=cost.cached_input,
            cache_write=cost.cache_write,
            output=cost.output,
            reasoning=cost.reasoning,
            request=cost.request,
            total=cost.total,
        )
