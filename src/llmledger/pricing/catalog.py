"""The price catalog as shipped inside the genai-prices package (read offline).

Each model becomes a `CatalogModel` with its price history: the unconditional price is in
force from the epoch, dated prices from their start date. Time-of-day prices (DeepSeek's
peak and off-peak hours) become daily windows of the version they belong to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal
from functools import cache

from genai_prices import types as gp
from genai_prices.data import providers as _providers

from llmledger.core.pricing import DailyWindow, PriceSheet, Tier

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_FIELDS = {
    "input": "input_mtok",
    "cached_input": "cache_read_mtok",
    "cache_write": "cache_write_mtok",
    "output": "output_mtok",
    "reasoning": "output_reasoning_mtok",
}


@dataclass(frozen=True)
class CatalogPrice:
    effective_from: datetime
    sheet: PriceSheet
    windows: tuple[DailyWindow, ...] = ()


@dataclass(frozen=True)
class CatalogModel:
    provider: str
    model: str
    name: str
    context_window: int | None
    deprecated: bool
    prices: tuple[CatalogPrice, ...]


def _base(value: Decimal | gp.TieredPrices | None) -> Decimal | None:
    if isinstance(value, gp.TieredPrices):
        return value.base
    return value


def sheet_from_model_price(price: gp.ModelPrice) -> PriceSheet | None:
    """Our price sheet for a genai-prices ModelPrice; None when it is not priced by tokens."""
    raw = {ours: getattr(price, theirs) for ours, theirs in _FIELDS.items()}
    if raw["input"] is None and raw["output"] is None:
        return None
    thresholds = sorted(
        {tier.start for v in raw.values() if isinstance(v, gp.TieredPrices) for tier in v.tiers}
    )
    tiers = []
    for above in thresholds:
        at: dict[str, Decimal | None] = {}
        for ours, value in raw.items():
            if isinstance(value, gp.TieredPrices):
                applicable = [t.price for t in value.tiers if t.start <= above]
                at[ours] = applicable[-1] if applicable else value.base
            else:
                at[ours] = None
        tiers.append(Tier(above=above, **at))
    requests = price.requests_kcount
    return PriceSheet(
        input=_base(raw["input"]) or Decimal(0),
        output=_base(raw["output"]) or Decimal(0),
        cached_input=_base(raw["cached_input"]),
        cache_write=_base(raw["cache_write"]),
        reasoning=_base(raw["reasoning"]),
        per_request=(_base(requests) or Decimal(0)) / 1000,
        tiers=tuple(tiers),
    )


def _history(model: gp.ModelInfo) -> tuple[CatalogPrice, ...]:
    if isinstance(model.prices, gp.ModelPrice):
        sheet = sheet_from_model_price(model.prices)
        return () if sheet is None else (CatalogPrice(EPOCH, sheet),)
    history: list[CatalogPrice] = []
    windows: list[DailyWindow] = []
    for conditional in model.prices:
        constraint = conditional.constraint
        sheet = sheet_from_model_price(conditional.prices)
        if sheet is None:
            continue
        if isinstance(constraint, gp.TimeOfDateConstraint):
            windows.append(
                DailyWindow(_utc_time(constraint.start_time), _utc_time(constraint.end_time), sheet)
            )
            continue
        start = EPOCH
        if isinstance(constraint, gp.StartDateConstraint):
            start = datetime.combine(constraint.start_date, datetime.min.time(), tzinfo=UTC)
        history.append(CatalogPrice(start, sheet))
    history.sort(key=lambda p: p.effective_from)
    if windows:  # genai-prices gives windows no dates: they apply to every version
        history = [CatalogPrice(p.effective_from, p.sheet, tuple(windows)) for p in history]
    return tuple(history)


def _utc_time(value: time) -> time:
    if value.tzinfo is None:
        return value
    moment = datetime.combine(EPOCH.date(), value).astimezone(UTC)
    return moment.time().replace(tzinfo=None)


@cache
def catalog_models() -> tuple[CatalogModel, ...]:
    """Every token-priced model of every provider in the genai-prices snapshot."""
    models = []
    for provider in _providers:
        for model in provider.models:
            history = _history(model)
            if history:
                models.append(
                    CatalogModel(
                        provider=provider.id,
                        model=model.id,
                        name=model.name or model.id,
                        context_window=model.context_window,
                        deprecated=bool(model.deprecated),
                        prices=history,
                    )
                )
    return tuple(models)


def match_catalog_model(model_ref: str, provider: str | None = None) -> tuple[str, str] | None:
    """(provider, model id) for a name as callers write it: dated snapshots, aliases,
    "provider/model" prefixes. Uses genai-prices' own matching rules."""
    from genai_prices.data_snapshot import get_snapshot

    ref = model_ref.strip()
    if provider is None and "/" in ref:
        head, tail = ref.split("/", 1)
        found = match_catalog_model(tail, head)
        if found is not None:
            return found
    try:
        found_provider, found_model = get_snapshot().find_provider_model(ref, None, provider, None)
    except LookupError:
        return None
    return found_provider.id, found_model.id
