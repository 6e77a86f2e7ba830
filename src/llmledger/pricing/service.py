"""Pricing use cases: cost a usage for an organization, list prices, set overrides."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmledger.core.pricing import CostBreakdown, TokenUsage, compute_cost
from llmledger.kit.errors import ApiError, FieldError, NotFound
from llmledger.models import PriceVersion, UsageEvent
from llmledger.pricing import repository
from llmledger.pricing.book import OrgPrices, PriceBook, PriceQuote


@dataclass(frozen=True)
class Costing:
    """The cost of one usage, or why there is none (unpriced: never a silent $0)."""

    provider: str
    model: str
    cost: CostBreakdown | None
    quote: PriceQuote | None

    @property
    def priced(self) -> bool:
        return self.cost is not None

    @property
    def status(self) -> str:
        return "priced" if self.cost is not None else "unpriced"


def guess_provider(model: str) -> str:
    """A provider name for an unknown model, from a "provider/model" prefix if there is one."""
    return model.split("/", 1)[0] if "/" in model else "unknown"


class Pricer:
    """Prices usage for one organization at any moment, caching look-ups within its life."""

    def __init__(self, book: PriceBook, org: OrgPrices) -> None:
        self.book = book
        self.org = org
        self._resolved: dict[tuple[str, str | None], tuple[str, str] | None] = {}

    def resolve(self, model: str, provider: str | None = None) -> tuple[str, str] | None:
        key = (model, provider)
        if key not in self._resolved:
            self._resolved[key] = self.book.resolve(model, provider, self.org)
        return self._resolved[key]

    def quote(self, model: str, provider: str | None, at: datetime) -> PriceQuote | None:
        found = self.resolve(model, provider)
        if found is None:
            return None
        return self.book.quote(found[0], found[1], at, self.org)

    def cost(self, model: str, provider: str | None, usage: TokenUsage, at: datetime) -> Costing:
        quote = self.quote(model, provider, at)
        if quote is None:
            return Costing(provider or guess_provider(model), model, None, None)
        return Costing(quote.provider, quote.model, compute_cost(usage, quote.sheet), quote)


def pricer_for(session: Session, book: PriceBook, org_id: int) -> Pricer:
    return Pricer(book, repository.load_org_prices(session, org_id))


def set_org_price(
    session: Session,
    book: PriceBook,
    org_id: int,
    *,
    provider: str,
    model: str,
    effective_from: datetime | None,
    discount_percent: Decimal | None,
    prices: dict[str, Decimal | None],
    context_window: int | None,
    display_name: str | None,
) -> PriceVersion:
    """Record an organization's own price: a discount off the catalog, or explicit prices.

    A model the catalog lacks becomes a custom (e.g. self-hosted) model of the organization.
    """
    has_prices = any(v is not None for v in prices.values())
    if discount_percent is None and not has_prices:
        raise FieldError("input_mtok", "give prices or a discount_percent")
    if discount_percent is not None and has_prices:
        raise FieldError("discount_percent", "give either prices or a discount_percent, not both")
    in_catalog = bool(book.history(provider, model))
    if discount_percent is not None and not in_catalog:
        raise FieldError("model", f"{provider}/{model} is not in the catalog; give its prices")
    if has_prices and prices.get("input_mtok") is None and prices.get("output_mtok") is None:
        raise FieldError("input_mtok", "an input or output price is required")
    return repository.add_org_price(
        session,
        org_id,
        provider=provider,
        model=model,
        display_name=display_name,
        source="override" if in_catalog else "custom",
        effective_from=effective_from or datetime.now(UTC),
        discount_percent=discount_percent,
        context_window=context_window,
        **{k: v for k, v in prices.items()},
    )


def delete_org_price(session: Session, org_id: int, version_id: int) -> None:
    row = repository.org_price_row(session, org_id, version_id)
    if row is None:
        raise NotFound(f"no price override {version_id} in this organization")
    used = session.scalar(
        select(UsageEvent.id).where(UsageEvent.price_version_id == version_id).limit(1)
    )
    if used is not None:  # recorded costs must keep pointing at the price they used
        raise ApiError(
            409, "conflict", "usage was recorded with this price; add a newer version instead"
        )
    session.delete(row)
    session.flush()
