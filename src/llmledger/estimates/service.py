"""Estimate a prompt's tokens and cost, and find cheaper models whose context window fits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from llmledger.core.pricing import CostBreakdown, TokenUsage, compute_cost
from llmledger.core.tokens import (
    TokenCount,
    count_messages,
    count_text,
    count_tools,
    estimator_for,
    openai_encoding,
)
from llmledger.estimates.calibration import Calibration, ModelKey, calibrate
from llmledger.kit.errors import FieldError
from llmledger.pricing.service import Pricer


@dataclass(frozen=True)
class Prompt:
    """What is about to be sent: plain text or chat messages, and the tools it offers."""

    text: str | None = None
    messages: Sequence[Mapping[str, Any]] | None = None
    tools: Sequence[Mapping[str, Any]] | None = None

    def count(self, model: str) -> TokenCount:
        if self.messages is not None:
            counted = count_messages(self.messages, model)
        else:
            counted = count_text(self.text or "", model)
        if not self.tools:
            return counted
        tools = count_tools(self.tools, model)
        return replace(
            counted,
            tokens=counted.tokens + tools.tokens,
            exact=False,  # tool definitions are counted as their JSON: an estimate
            expected_error=max(counted.expected_error, tools.expected_error),
        )


@dataclass(frozen=True)
class Alternative:
    provider: str
    model: str
    input_tokens: int
    tokens_exact: bool
    cost: CostBreakdown
    saving: Any  # Decimal; the selected model's total minus this one's
    context_window: int


@dataclass(frozen=True)
class Estimate:
    provider: str
    model: str
    tokens: TokenCount
    output_tokens: int
    cost: CostBreakdown
    price_version: str
    context_window: int | None
    alternatives: list[Alternative]
    calibration: Calibration | None = None  # what corrected the count, if anything did


def _family(model: str) -> str:
    encoding = openai_encoding(model)
    return encoding if encoding is not None else estimator_for(model).family


def estimate(
    pricer: Pricer,
    prompt: Prompt,
    model: str,
    *,
    provider: str | None,
    max_output_tokens: int | None,
    at: datetime,
    alternatives: int = 5,
    calibrations: Mapping[ModelKey, Calibration] | None = None,
) -> Estimate:
    """The prompt's tokens and cost on `model`, with cheaper alternatives. Estimated counts
    are corrected by what providers reported for the models' calls (`calibrations`)."""
    calibrations = calibrations or {}
    quote = pricer.quote(model, provider, at)
    if quote is None:
        raise FieldError("model", f"unknown model {model!r}: it has no price in the catalog")
    calibration = calibrations.get((quote.provider, quote.model))
    counted = prompt.count(quote.model)
    tokens = calibrate(counted, calibration)
    output = max_output_tokens or 0
    cost = compute_cost(TokenUsage(tokens.tokens, output), quote.sheet)
    found = (
        cheaper_alternatives(
            pricer,
            prompt,
            quote.model,
            quote.provider,
            output,
            cost,
            at,
            alternatives,
            calibrations,
        )
        if alternatives
        else []
    )
    return Estimate(
        quote.provider,
        quote.model,
        tokens,
        output,
        cost,
        quote.version,
        quote.context_window,
        found,
        calibration if tokens is not counted else None,
    )


def cheaper_alternatives(
    pricer: Pricer,
    prompt: Prompt,
    model: str,
    provider: str,
    output_tokens: int,
    reference: CostBreakdown,
    at: datetime,
    limit: int,
    calibrations: Mapping[ModelKey, Calibration] | None = None,
) -> list[Alternative]:
    """The cheapest current catalog models that fit the prompt, each model once (its cheapest
    provider), cheaper than the reference. Free ($0) and deprecated models are left out:
    a $0 price usually means the catalog lacks a price, not that the call is free."""
    counts: dict[str, TokenCount] = {}
    best: dict[str, Alternative] = {}
    for version in pricer.book.current_versions(at):
        if version.deprecated or version.sheet is None or version.context_window is None:
            continue
        if version.model == model and version.provider == provider:
            continue
        sheet = version.sheet
        if sheet.input <= 0 or sheet.output <= 0:
            continue
        family = _family(version.model)
        if family not in counts:
            counts[family] = prompt.count(version.model)
        tokens = calibrate(
            counts[family], (calibrations or {}).get((version.provider, version.model))
        )
        if tokens.tokens + output_tokens > version.context_window:
            continue
        cost = compute_cost(TokenUsage(tokens.tokens, output_tokens), sheet)
        if cost.total >= reference.total:
            continue
        current = best.get(version.model)
        if current is None or cost.total < current.cost.total:
            best[version.model] = Alternative(
                version.provider,
                version.model,
                tokens.tokens,
                tokens.exact,
                cost,
                reference.total - cost.total,
                version.context_window,
            )
    return sorted(best.values(), key=lambda a: (a.cost.total, a.provider, a.model))[:limit]
