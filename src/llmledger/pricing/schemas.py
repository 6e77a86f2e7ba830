"""Prices as the API shows them and takes overrides."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from llmledger.core.pricing import PriceSheet
from llmledger.kit.schemas import Usd
from llmledger.pricing.book import PricedVersion

Price = Usd


class TierOut(BaseModel):
    above_input_tokens: int
    input_mtok: Price | None
    cached_input_mtok: Price | None
    cache_write_mtok: Price | None
    output_mtok: Price | None
    reasoning_mtok: Price | None


class PriceOut(BaseModel):
    """One price version; prices in USD per million tokens."""

    id: int | None
    provider: str
    model: str
    name: str | None
    source: str
    effective_from: datetime
    version: str
    input_mtok: Price | None
    cached_input_mtok: Price | None
    cache_write_mtok: Price | None
    output_mtok: Price | None
    reasoning_mtok: Price | None
    request_fee: Price | None
    discount_percent: Decimal | None
    tiers: list[TierOut]
    context_window: int | None
    deprecated: bool

    @classmethod
    def of(cls, version: PricedVersion, sheet: PriceSheet | None = None) -> PriceOut:
        sheet = sheet or version.sheet
        return cls(
            id=version.version_id,
            provider=version.provider,
            model=version.model,
            name=version.display_name,
            source=version.source,
            effective_from=version.effective_from,
            version=version.label,
            input_mtok=sheet.input if sheet else None,
            cached_input_mtok=sheet.cached_input if sheet else None,
            cache_write_mtok=sheet.cache_write if sheet else None,
            output_mtok=sheet.output if sheet else None,
            reasoning_mtok=sheet.reasoning if sheet else None,
            request_fee=(sheet.per_request or None) if sheet else None,
            discount_percent=version.discount_percent,
            tiers=[
                TierOut(
                    above_input_tokens=t.above,
                    input_mtok=t.input,
                    cached_input_mtok=t.cached_input,
                    cache_write_mtok=t.cache_write,
                    output_mtok=t.output,
                    reasoning_mtok=t.reasoning,
                )
                for t in (sheet.tiers if sheet else ())
            ],
            context_window=version.context_window,
            deprecated=version.deprecated,
        )


class PriceList(BaseModel):
    prices: list[PriceOut]
    total: int


class ModelPrices(BaseModel):
    provider: str
    model: str
    current: PriceOut | None = Field(description="the price in force now for this organization")
    history: list[PriceOut]


class PriceOverrideIn(BaseModel):
    """An organization's own price: a discount off the catalog, or explicit prices (which
    also defines a custom or self-hosted model the catalog lacks)."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field(min_length=1, max_length=100)
    model: str = Field(min_length=1, max_length=200)
    effective_from: AwareDatetime | None = None
    discount_percent: Decimal | None = Field(default=None, gt=0, le=100)
    input_mtok: Price | None = Field(default=None, ge=0)
    cached_input_mtok: Price | None = Field(default=None, ge=0)
    cache_write_mtok: Price | None = Field(default=None, ge=0)
    output_mtok: Price | None = Field(default=None, ge=0)
    reasoning_mtok: Price | None = Field(default=None, ge=0)
    request_fee: Price | None = Field(default=None, ge=0)
    context_window: int | None = Field(default=None, gt=0)
    display_name: str | None = Field(default=None, max_length=200)
