"""REST endpoints for prices and organization overrides."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response

from llmledger.kit.deps import PriceBookDep, PrincipalDep, SessionDep
from llmledger.kit.errors import NotFound
from llmledger.pricing import repository, service
from llmledger.pricing.schemas import ModelPrices, PriceList, PriceOut, PriceOverrideIn

router = APIRouter(prefix="/prices", tags=["prices"])


@router.get("", response_model=PriceList)
def list_prices(
    book: PriceBookDep,
    session: SessionDep,
    principal: PrincipalDep,
    provider: str | None = None,
    q: Annotated[str | None, Query(description="part of the model name")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> PriceList:
    """Current prices of every catalog model, with this organization's overrides applied."""
    now = datetime.now(UTC)
    pricer = service.pricer_for(session, book, principal.organization_id)
    versions = sorted(book.current_versions(now), key=lambda v: (v.provider, v.model))
    if provider:
        versions = [v for v in versions if v.provider == provider.lower()]
    if q:
        versions = [v for v in versions if q.lower() in v.model.lower()]
    page = versions[offset : offset + limit]
    prices = []
    for version in page:
        quote = book.quote(version.provider, version.model, now, pricer.org)
        prices.append(PriceOut.of(version, quote.sheet if quote else None))
    return PriceList(prices=prices, total=len(versions))


@router.get("/overrides", response_model=list[PriceOut])
def list_overrides(session: SessionDep, principal: PrincipalDep) -> list[PriceOut]:
    """This organization's own prices: overrides and custom models, every version."""
    rows = repository.org_price_rows(session, principal.organization_id)
    return [PriceOut.of(repository.priced_version(r)) for r in rows]


@router.post("/overrides", response_model=PriceOut, status_code=201)
def add_override(
    body: PriceOverrideIn, session: SessionDep, principal: PrincipalDep, book: PriceBookDep
) -> PriceOut:
    """Set a negotiated price or discount, or add a custom model, effective from a date."""
    row = service.set_org_price(
        session,
        book,
        principal.organization_id,
        provider=body.provider,
        model=body.model,
        effective_from=body.effective_from,
        discount_percent=body.discount_percent,
        prices={
            "input_mtok": body.input_mtok,
            "cached_input_mtok": body.cached_input_mtok,
            "cache_write_mtok": body.cache_write_mtok,
            "output_mtok": body.output_mtok,
            "reasoning_mtok": body.reasoning_mtok,
            "request_fee": body.request_fee,
        },
        context_window=body.context_window,
        display_name=body.display_name,
    )
    return PriceOut.of(repository.priced_version(row))


@router.delete("/overrides/{version_id}", status_code=204)
def delete_override(version_id: int, session: SessionDep, principal: PrincipalDep) -> Response:
    """Remove an override no usage was priced with."""
    service.delete_org_price(session, principal.organization_id, version_id)
    return Response(status_code=204)


@router.get("/{provider}/{model:path}", response_model=ModelPrices)
def model_prices(
    provider: str, model: str, book: PriceBookDep, session: SessionDep, principal: PrincipalDep
) -> ModelPrices:
    """A model's price in force now and its whole history (catalog and organization)."""
    pricer = service.pricer_for(session, book, principal.organization_id)
    found = pricer.resolve(model, provider)
    if found is None:
        raise NotFound(f"no price for {provider}/{model}")
    now = datetime.now(UTC)
    history = [PriceOut.of(v) for v in book.history(*found)]
    own = [
        PriceOut.of(repository.priced_version(r))
        for r in repository.org_price_rows(session, principal.organization_id)
        if (r.provider.lower(), r.model.lower()) == (found[0].lower(), found[1].lower())
    ]
    quote = book.quote(found[0], found[1], now, pricer.org)
    current = None
    if quote is not None:
        in_force = pricer.org.at(found[0], found[1], now) or book.catalog_version(*found, now)
        current = PriceOut.of(in_force, quote.sheet) if in_force else None
    return ModelPrices(provider=found[0], model=found[1], current=current, history=history + own)
