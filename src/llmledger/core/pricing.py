"""Pricing math: what a usage costs under a price sheet.

Convention (the same as genai-prices and OpenAI): `input_tokens` includes cached and
cache-write tokens; `output_tokens` includes reasoning tokens. Each token is priced once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time
from decimal import Decimal

from llmledger.core.money import ZERO, per_million, quantize_for_storage


@dataclass(frozen=True)
class Tier:
    """Prices that replace the base prices for all tokens once input exceeds `above` tokens.

    This is the "cliff" model providers use for long-context prices: a prompt of 200,001
    tokens pays the tier price on every token, not just the ones above the threshold.
    A None price keeps the base price of that kind.
    """

    above: int
    input: Decimal | None = None
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    output: Decimal | None = None
    reasoning: Decimal | None = None


@dataclass(frozen=True)
class PriceSheet:
    """Prices in USD per million tokens, plus an optional fee per request.

    A missing cached-input or cache-write price means those tokens cost the input price; a
    missing reasoning price means reasoning tokens cost the output price.
    """

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None
    per_request: Decimal = ZERO
    tiers: tuple[Tier, ...] = field(default=())

    def __post_init__(self) -> None:
        # Sorted once here, not on every cost computed.
        object.__setattr__(self, "tiers", tuple(sorted(self.tiers, key=lambda t: t.above)))

    def for_prompt_length(self, input_tokens: int) -> PriceSheet:
        """The sheet in force for a prompt of `input_tokens` (highest tier it exceeds)."""
        chosen: Tier | None = None
        for tier in self.tiers:
            if input_tokens > tier.above:
                chosen = tier
        if chosen is None:
            return self
        return replace(
            self,
            input=chosen.input if chosen.input is not None else self.input,
            cached_input=chosen.cached_input
            if chosen.cached_input is not None
            else self.cached_input,
            cache_write=chosen.cache_write if chosen.cache_write is not None else self.cache_write,
            output=chosen.output if chosen.output is not None else self.output,
            reasoning=chosen.reasoning if chosen.reasoning is not None else self.reasoning,
            tiers=(),
        )

    def scaled(self, factor: Decimal) -> PriceSheet:
        """Every price multiplied by `factor` (a negotiated discount is a factor below 1)."""

        def times(price: Decimal | None) -> Decimal | None:
            return None if price is None else price * factor

        return PriceSheet(
            input=self.input * factor,
            output=self.output * factor,
            cached_input=times(self.cached_input),
            cache_write=times(self.cache_write),
            reasoning=times(self.reasoning),
            per_request=self.per_request * factor,
            tiers=tuple(
                Tier(
                    t.above,
                    times(t.input),
                    times(t.cached_input),
                    times(t.cache_write),
                    times(t.output),
                    times(t.reasoning),
                )
                for t in self.tiers
            ),
        )


@dataclass(frozen=True)
class DailyWindow:
    """A price sheet in force every day between two UTC times of day (peak/off-peak prices).

    `end` before `start` means the window wraps past midnight.
    """

    start: time
    end: time
    sheet: PriceSheet

    def covers(self, moment: datetime) -> bool:
        now = moment.astimezone(UTC).time().replace(tzinfo=None)
        if self.end < self.start:
            return now >= self.start or now < self.end
        return self.start <= now < self.end


def sheet_at(sheet: PriceSheet, windows: tuple[DailyWindow, ...], moment: datetime) -> PriceSheet:
    """The sheet in force at `moment`: the last daily window covering it, else `sheet`."""
    for window in reversed(windows):
        if window.covers(moment):
            return window.sheet
    return sheet


class UsageError(ValueError):
    """A token usage that cannot be real; `field` names the offending count."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class TokenUsage:
    """Tokens of one call, in the genai-prices / OpenAI convention (see module doc)."""

    input_tokens: int
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    def __post_init__(self) -> None:
        for name in (
            "input_tokens",
            "output_tokens",
            "cached_input_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
        ):
            if getattr(self, name) < 0:
                raise UsageError(name, "must not be negative")
        if self.cached_input_tokens + self.cache_write_tokens > self.input_tokens:
            raise UsageError(
                "cached_input_tokens",
                "cached and cache-write tokens are part of input_tokens and cannot exceed it",
            )
        if self.reasoning_tokens > self.output_tokens:
            raise UsageError(
                "reasoning_tokens",
                "reasoning tokens are part of output_tokens and cannot exceed it",
            )


@dataclass(frozen=True)
class CostBreakdown:
    """Cost of one usage in USD, each part rounded once for storage; total is their sum."""

    input: Decimal
    cached_input: Decimal
    cache_write: Decimal
    output: Decimal
    reasoning: Decimal
    request: Decimal
    total: Decimal

    @classmethod
    def of_parts(
        cls,
        *,
        input: Decimal,
        cached_input: Decimal,
        cache_write: Decimal,
        output: Decimal,
        reasoning: Decimal,
        request: Decimal,
    ) -> CostBreakdown:
        q = quantize_for_storage
        parts = [q(p) for p in (input, cached_input, cache_write, output, reasoning, request)]
        return cls(
            input=parts[0],
            cached_input=parts[1],
            cache_write=parts[2],
            output=parts[3],
            reasoning=parts[4],
            request=parts[5],
            total=sum(parts, ZERO),
        )

    def as_dict(self) -> dict[str, Decimal]:
        return {
            "input": self.input,
            "cached_input": self.cached_input,
            "cache_write": self.cache_write,
            "output": self.output,
            "reasoning": self.reasoning,
            "request": self.request,
            "total": self.total,
        }


def compute_cost(usage: TokenUsage, sheet: PriceSheet) -> CostBreakdown:
    """The cost of `usage` under `sheet`, choosing the long-context tier by input length."""
    prices = sheet.for_prompt_length(usage.input_tokens)
    uncached = usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens
    visible_output = usage.output_tokens - usage.reasoning_tokens
    cached_price = prices.cached_input if prices.cached_input is not None else prices.input
    write_price = prices.cache_write if prices.cache_write is not None else prices.input
    reasoning_price = prices.reasoning if prices.reasoning is not None else prices.output
    return CostBreakdown.of_parts(
        input=per_million(uncached, prices.input),
        cached_input=per_million(usage.cached_input_tokens, cached_price),
        cache_write=per_million(usage.cache_write_tokens, write_price),
        output=per_million(visible_output, prices.output),
        reasoning=per_million(usage.reasoning_tokens, reasoning_price),
        request=prices.per_request,
    )
