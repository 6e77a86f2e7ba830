"""Cost calculations per second: llmledger's engine vs genai-prices' calc_price, same usages."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import genai_prices

from llmledger.core.pricing import TokenUsage, compute_cost
from llmledger.pricing.book import NO_ORG_PRICES, PriceBook
from llmledger.pricing.catalog import catalog_models
from llmledger.pricing.service import Pricer

MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("openai", "o3"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-3-5-haiku"),
    ("google", "gemini-2.5-pro"),
    ("deepseek", "deepseek-chat"),
    ("mistral", "mistral-large"),
]


def main() -> None:
    rng = random.Random(1)
    now = datetime.now(UTC)
    cases = []
    for _ in range(20_000):
        provider, model = rng.choice(MODELS)
        inp = rng.randint(10, 300_000)
        cached = rng.randint(0, inp // 2)
        out = rng.randint(0, 8_000)
        cases.append((provider, model, TokenUsage(inp, out, cached, 0, 0)))
    pricer = Pricer(PriceBook.from_catalog_models(catalog_models()), NO_ORG_PRICES)
    theirs_usage = [
        (
            p,
            m,
            genai_prices.Usage(
                input_tokens=u.input_tokens,
                output_tokens=u.output_tokens,
                cache_read_tokens=u.cached_input_tokens,
            ),
        )
        for p, m, u in cases
    ]

    # Warm both sides' look-up caches, then check they agree before timing.
    for (p, m, u), (_, _, tu) in zip(cases[:200], theirs_usage[:200], strict=True):
        ours = pricer.cost(m, p, u, now).cost
        theirs = genai_prices.calc_price(tu, m, provider_id=p, genai_request_timestamp=now)
        assert ours is not None and abs(ours.total - theirs.total_price) < 1e-9, (p, m)

    start = time.perf_counter()
    for p, m, u in cases:
        pricer.cost(m, p, u, now)
    ours_s = time.perf_counter() - start

    quotes = {(p, m): pricer.quote(m, p, now) for p, m in MODELS}
    start = time.perf_counter()
    for p, m, u in cases:
        compute_cost(u, quotes[(p, m)].sheet)  # type: ignore[union-attr]
    core_s = time.perf_counter() - start

    start = time.perf_counter()
    for p, m, tu in theirs_usage:
        genai_prices.calc_price(tu, m, provider_id=p, genai_request_timestamp=now)
    theirs_s = time.perf_counter() - start

    n = len(cases)
    print(
        f"{n:,} usages, identical totals | llmledger look-up + cost {n / ours_s:,.0f}/s "
        f"(core math alone {n / core_s:,.0f}/s) | genai-prices calc_price {n / theirs_s:,.0f}/s | "
        f"ratio {theirs_s / ours_s:.1f}x"
    )


if __name__ == "__main__":
    main()
