"""Cost invariants (property tests) and agreement with genai-prices on the whole catalog."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from llmledger import PriceSheet, Tier, TokenUsage, compute_cost
from llmledger.core.pricing import UsageError
from llmledger.pricing.catalog import catalog_models

prices = st.decimals(min_value=0, max_value=200, places=4, allow_nan=False, allow_infinity=False)
counts = st.integers(min_value=0, max_value=5_000_000)


@st.composite
def sheets(draw: st.DrawFn) -> PriceSheet:
    base = draw(prices)
    tiers = ()
    if draw(st.booleans()):
        tiers = (
            Tier(above=draw(st.integers(1, 1_000_000)), input=base * 2, output=draw(prices) * 2),
        )
    return PriceSheet(
        input=base,
        output=draw(prices),
        cached_input=draw(st.none() | st.decimals(min_value=0, max_value=base, places=4)),
        cache_write=draw(st.none() | prices),
        reasoning=draw(st.none() | prices),
        per_request=draw(st.decimals(min_value=0, max_value=1, places=4)),
        tiers=tiers,
    )


@st.composite
def usages(draw: st.DrawFn) -> TokenUsage:
    input_tokens = draw(counts)
    cached = draw(st.integers(0, input_tokens))
    write = draw(st.integers(0, input_tokens - cached))
    output = draw(counts)
    return TokenUsage(input_tokens, output, cached, write, draw(st.integers(0, output)))


@given(usages(), sheets())
def test_total_is_the_sum_of_parts(usage: TokenUsage, sheet: PriceSheet) -> None:
    cost = compute_cost(usage, sheet)
    parts = cost.as_dict()
    total = parts.pop("total")
    assert total == sum(parts.values(), Decimal(0))
    assert all(isinstance(v, Decimal) and v >= 0 for v in parts.values())


@given(usages(), sheets(), st.integers(1, 100_000), st.sampled_from(["output", "input"]))
def test_more_tokens_never_cost_less(
    usage: TokenUsage, sheet: PriceSheet, extra: int, kind: str
) -> None:
    assume(not sheet.tiers)  # a tier can make a longer prompt cheaper per token, not in total
    more = TokenUsage(
        usage.input_tokens + (extra if kind == "input" else 0),
        usage.output_tokens + (extra if kind == "output" else 0),
        usage.cached_input_tokens,
        usage.cache_write_tokens,
        usage.reasoning_tokens,
    )
    assert compute_cost(more, sheet).total >= compute_cost(usage, sheet).total


@given(usages(), sheets(), st.integers(1, 100_000))
def test_more_tokens_never_cost_less_across_tiers(
    usage: TokenUsage, sheet: PriceSheet, extra: int
) -> None:
    # With tier prices at or above base prices (as every provider sets them), crossing a
    # threshold can only raise the total.
    more = TokenUsage(
        usage.input_tokens + extra,
        usage.output_tokens,
        usage.cached_input_tokens,
        usage.cache_write_tokens,
        usage.reasoning_tokens,
    )

    def at_least_base(tier_price: Decimal | None, base: Decimal) -> bool:
        return tier_price is None or tier_price >= base

    assume(
        all(
            at_least_base(t.input, sheet.input) and at_least_base(t.output, sheet.output)
            for t in sheet.tiers
        )
    )
    assume((sheet.cached_input is None and sheet.cache_write is None) or not sheet.tiers)
    assert compute_cost(more, sheet).total >= compute_cost(usage, sheet).total


@given(usages(), sheets())
def test_a_cache_read_never_costs_more_than_the_same_tokens_uncached(
    usage: TokenUsage, sheet: PriceSheet
) -> None:
    uncached = TokenUsage(
        usage.input_tokens, usage.output_tokens, 0, usage.cache_write_tokens, usage.reasoning_tokens
    )
    assert compute_cost(usage, sheet).total <= compute_cost(uncached, sheet).total


def test_nothing_is_counted_twice() -> None:
    sheet = PriceSheet(
        input=Decimal(3),
        output=Decimal(15),
        cached_input=Decimal("0.3"),
        cache_write=Decimal("3.75"),
    )
    usage = TokenUsage(
        1_000_000,
        1_000_000,
        cached_input_tokens=400_000,
        cache_write_tokens=100_000,
        reasoning_tokens=250_000,
    )
    cost = compute_cost(usage, sheet)
    assert cost.input == Decimal(3) * Decimal("0.5")
    assert cost.cached_input == Decimal("0.3") * Decimal("0.4")
    assert cost.cache_write == Decimal("3.75") * Decimal("0.1")
    assert cost.output == Decimal(15) * Decimal("0.75")
    assert cost.reasoning == Decimal(15) * Decimal("0.25")


def test_long_prompts_pay_the_tier_price_on_every_token() -> None:
    sheet = PriceSheet(
        input=Decimal(3),
        output=Decimal(15),
        tiers=(Tier(200_000, Decimal(6), output=Decimal("22.5")),),
    )
    at_limit = compute_cost(TokenUsage(200_000, 0), sheet)
    above = compute_cost(TokenUsage(200_001, 1000), sheet)
    assert at_limit.input == Decimal("0.6")
    assert above.input == Decimal(6) * 200_001 / 1_000_000
    assert above.output == Decimal("22.5") * 1000 / 1_000_000


@pytest.mark.parametrize(
    "kwargs",
    [
        {"input_tokens": -1},
        {"input_tokens": 10, "output_tokens": -5},
        {"input_tokens": 10, "cached_input_tokens": 11},
        {"input_tokens": 10, "output_tokens": 3, "reasoning_tokens": 4},
    ],
)
def test_impossible_usage_is_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(UsageError):
        TokenUsage(**kwargs)


def test_every_catalog_model_costs_what_genai_prices_says() -> None:
    """The anchor: our engine over our imported catalog equals genai-prices' own result."""
    usage = TokenUsage(123_456, 7_890, cached_input_tokens=20_000, cache_write_tokens=3_000)
    theirs_usage = genai_prices.Usage(
        input_tokens=123_456,
        output_tokens=7_890,
        cache_read_tokens=20_000,
        cache_write_tokens=3_000,
    )
    checked = 0
    for model in catalog_models():
        for price in model.prices:
            moment = max(price.effective_from, datetime(2020, 1, 1, tzinfo=UTC))
            later = [p for p in model.prices if price.effective_from < p.effective_from <= moment]
            if later:
                continue
            try:
                theirs = genai_prices.calc_price(
                    theirs_usage,
                    model.model,
                    provider_id=model.provider,
                    genai_request_timestamp=moment,
                )
            except Exception:  # models genai-prices cannot price for this usage shape
                continue
            if theirs.model.id != model.model:
                continue
            extra = theirs.model_price.__dict__
            if any(
                extra.get(k) is not None
                for k in (
                    "cache_write_1h_mtok",
                    "web_searches_kcount",
                    "input_mchars",
                    "requests_kcount",
                )
            ):
                continue
            ours = compute_cost(usage, price.sheet)
            assert ours.total == pytest.approx(theirs.total_price, abs=Decimal("1e-9")), (
                model.provider,
                model.model,
            )
            checked += 1
    assert checked > 1500


@pytest.mark.parametrize("hour", [2, 10, 16, 17, 23])
def test_peak_and_off_peak_prices_follow_genai_prices(hour: int) -> None:
    from llmledger.pricing.book import PriceBook

    book = PriceBook.from_catalog_models(catalog_models())
    moment = datetime(2026, 6, 1, hour, 45, tzinfo=UTC)
    quote = book.quote("deepseek", "deepseek-chat", moment)
    assert quote is not None
    ours = compute_cost(TokenUsage(1_000_000, 1_000_000), quote.sheet)
    theirs = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=1_000_000, output_tokens=1_000_000),
        "deepseek-chat",
        provider_id="deepseek",
        genai_request_timestamp=moment,
    )
    assert ours.total == theirs.total_price


def test_off_peak_is_cheaper_than_peak() -> None:
    from llmledger.pricing.book import PriceBook

    book = PriceBook.from_catalog_models(catalog_models())
    peak = book.quote("deepseek", "deepseek-chat", datetime(2026, 6, 1, 10, tzinfo=UTC))
    off_peak = book.quote("deepseek", "deepseek-chat", datetime(2026, 6, 1, 20, tzinfo=UTC))
    assert peak is not None and off_peak is not None
    assert off_peak.sheet.input < peak.sheet.input
