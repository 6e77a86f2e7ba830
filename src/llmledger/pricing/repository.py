"""Price versions in the database: catalog seeding and each organization's own prices."""

from __future__ import annotations

from dataclasses import asdict
from datetime import time
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from llmledger.core.pricing import DailyWindow, PriceSheet, Tier
from llmledger.models import PriceVersion
from llmledger.pricing.book import OrgPrices, PricedVersion
from llmledger.pricing.catalog import catalog_models


def tiers_to_json(tiers: tuple[Tier, ...]) -> list[dict[str, Any]] | None:
    if not tiers:
        return None
    return [
        {
            k: (str(v) if isinstance(v, Decimal) else v)
            for k, v in asdict(t).items()
            if v is not None
        }
        for t in tiers
    ]


def tiers_from_json(raw: list[dict[str, Any]] | None) -> tuple[Tier, ...]:
    if not raw:
        return ()
    return tuple(
        Tier(
            above=int(t["above"]),
            **{k: Decimal(v) for k, v in t.items() if k != "above" and v is not None},
        )
        for t in raw
    )


def sheet_of(row: PriceVersion) -> PriceSheet | None:
    if row.input_mtok is None and row.output_mtok is None:
        return None
    return PriceSheet(
        input=row.input_mtok or Decimal(0),
        output=row.output_mtok or Decimal(0),
        cached_input=row.cached_input_mtok,
        cache_write=row.cache_write_mtok,
        reasoning=row.reasoning_mtok,
        per_request=row.request_fee or Decimal(0),
        tiers=tiers_from_json(row.tiers),
    )


def sheet_columns(sheet: PriceSheet) -> dict[str, Any]:
    return {
        "input_mtok": sheet.input,
        "cached_input_mtok": sheet.cached_input,
        "cache_write_mtok": sheet.cache_write,
        "output_mtok": sheet.output,
        "reasoning_mtok": sheet.reasoning,
        "request_fee": sheet.per_request or None,
        "tiers": tiers_to_json(sheet.tiers),
    }


def _sheet_json(sheet: PriceSheet) -> dict[str, Any]:
    columns = sheet_columns(sheet)
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in columns.items()}


def _sheet_from_json(raw: dict[str, Any]) -> PriceSheet:
    def price(key: str) -> Decimal | None:
        return Decimal(raw[key]) if raw.get(key) is not None else None

    return PriceSheet(
        input=price("input_mtok") or Decimal(0),
        output=price("output_mtok") or Decimal(0),
        cached_input=price("cached_input_mtok"),
        cache_write=price("cache_write_mtok"),
        reasoning=price("reasoning_mtok"),
        per_request=price("request_fee") or Decimal(0),
        tiers=tiers_from_json(raw.get("tiers")),
    )


def windows_to_json(windows: tuple[DailyWindow, ...]) -> list[dict[str, Any]] | None:
    if not windows:
        return None
    return [
        {"start": w.start.isoformat(), "end": w.end.isoformat(), "sheet": _sheet_json(w.sheet)}
        for w in windows
    ]


def windows_from_json(raw: list[dict[str, Any]] | None) -> tuple[DailyWindow, ...]:
    if not raw:
        return ()
    return tuple(
        DailyWindow(
            time.fromisoformat(w["start"]),
            time.fromisoformat(w["end"]),
            _sheet_from_json(w["sheet"]),
        )
        for w in raw
    )


def priced_version(row: PriceVersion) -> PricedVersion:
    return PricedVersion(
        provider=row.provider,
        model=row.model,
        effective_from=row.effective_from,
        source=row.source,
        sheet=sheet_of(row),
        discount_percent=row.discount_percent,
        version_id=row.id,
        context_window=row.context_window,
        display_name=row.display_name,
        deprecated=row.deprecated,
        windows=windows_from_json(row.daily_windows),
    )


def sync_catalog(session: Session) -> int:
    """Add the catalog versions the database lacks (idempotent); returns how many were added.

    A price that changes in a later genai-prices release arrives as a new dated version,
    so history is kept and past usage keeps the price it was recorded with.
    """
    known = set(
        session.execute(
            select(PriceVersion.provider, PriceVersion.model, PriceVersion.effective_from).where(
                PriceVersion.organization_id.is_(None)
            )
        ).all()
    )
    rows = []
    for model in catalog_models():
        for price in model.prices:
            if (model.provider, model.model, price.effective_from) in known:
                continue
            rows.append(
                {
                    "organization_id": None,
                    "provider": model.provider,
                    "model": model.model,
                    "display_name": model.name,
                    "source": "catalog",
                    "effective_from": price.effective_from,
                    "context_window": model.context_window,
                    "deprecated": model.deprecated,
                    "discount_percent": None,
                    **sheet_columns(price.sheet),
                    "daily_windows": windows_to_json(price.windows),
                }
            )
    if rows:
        session.execute(insert(PriceVersion), rows)
    return len(rows)


def load_catalog(session: Session) -> list[PricedVersion]:
    rows = session.scalars(select(PriceVersion).where(PriceVersion.organization_id.is_(None)))
    return [priced_version(r) for r in rows]


def org_price_rows(session: Session, org_id: int) -> list[PriceVersion]:
    return list(
        session.scalars(
            select(PriceVersion)
            .where(PriceVersion.organization_id == org_id)
            .order_by(PriceVersion.provider, PriceVersion.model, PriceVersion.effective_from)
        )
    )


def load_org_prices(session: Session, org_id: int) -> OrgPrices:
    return OrgPrices(priced_version(r) for r in org_price_rows(session, org_id))


def add_org_price(session: Session, org_id: int, **columns: Any) -> PriceVersion:
    row = PriceVersion(organization_id=org_id, **columns)
    session.add(row)
    session.flush()
    return row


def org_price_row(session: Session, org_id: int, version_id: int) -> PriceVersion | None:
    return session.scalar(
        select(PriceVersion).where(
            PriceVersion.id == version_id, PriceVersion.organization_id == org_id
        )
    )
