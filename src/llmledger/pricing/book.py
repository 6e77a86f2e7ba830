"""The price book: which price is in force for a model at a moment, for an organization.

Built once from the catalog rows (or straight from the genai-prices data for offline CLI
use); an organization's own rows are passed in per request as `OrgPrices`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from llmledger.core.money import as_text
from llmledger.core.pricing import DailyWindow, PriceSheet, sheet_at
from llmledger.pricing.catalog import CatalogModel, match_catalog_model


@dataclass(frozen=True)
class PricedVersion:
    """One price version as the book keeps it."""

    provider: str
    model: str
    effective_from: datetime
    source: str  # catalog | override | custom
    sheet: PriceSheet | None  # None for a discount-only override
    discount_percent: Decimal | None = None
    version_id: int | None = None
    context_window: int | None = None
    display_name: str | None = None
    deprecated: bool = False
    windows: tuple[DailyWindow, ...] = ()

    def sheet_at(self, moment: datetime) -> PriceSheet | None:
        """This version's sheet at a moment, taking peak/off-peak windows into account."""
        return None if self.sheet is None else sheet_at(self.sheet, self.windows, moment)

    @property
    def label(self) -> str:
        day = self.effective_from.date().isoformat()
        text = f"{self.source}:{self.provider}/{self.model}@{day}"
        if self.source != "catalog" and self.version_id is not None:
            text += f"#{self.version_id}"  # an organization may add several versions a day
        if self.discount_percent is not None:
            text += f"-{as_text(self.discount_percent)}%"
        return text


@dataclass(frozen=True)
class PriceQuote:
    """The price to apply, and the version label recorded with every cost."""

    provider: str
    model: str
    sheet: PriceSheet
    version: str
    version_id: int | None
    context_window: int | None


def _key(provider: str, model: str) -> tuple[str, str]:
    return provider.lower(), model.lower()


@dataclass
class _History:
    versions: list[PricedVersion] = field(default_factory=list)
    # Kept beside `versions` so a look-up (once per priced event) builds no list.
    starts: list[datetime] = field(default_factory=list)

    def add(self, version: PricedVersion) -> None:
        index = bisect.bisect_right(self.starts, version.effective_from)
        self.versions.insert(index, version)
        self.starts.insert(index, version.effective_from)

    def at(self, moment: datetime) -> PricedVersion | None:
        index = bisect.bisect_right(self.starts, moment) - 1
        return self.versions[index] if index >= 0 else None


class OrgPrices:
    """One organization's overrides and custom models."""

    def __init__(self, versions: Iterable[PricedVersion] = ()) -> None:
        self._by_model: dict[tuple[str, str], _History] = {}
        self._by_name: dict[str, tuple[str, str]] = {}
        for version in versions:
            key = _key(version.provider, version.model)
            self._by_model.setdefault(key, _History()).add(version)
            self._by_name.setdefault(version.model.lower(), (version.provider, version.model))

    def find(self, model_ref: str, provider: str | None) -> tuple[str, str] | None:
        if provider is not None:
            key = _key(provider, model_ref)
            if key in self._by_model:
                first = self._by_model[key].versions[0]
                return first.provider, first.model
            return None
        return self._by_name.get(model_ref.lower())

    def at(self, provider: str, model: str, moment: datetime) -> PricedVersion | None:
        history = self._by_model.get(_key(provider, model))
        return history.at(moment) if history else None


NO_ORG_PRICES = OrgPrices()


class PriceBook:
    def __init__(self, catalog: Iterable[PricedVersion]) -> None:
        self._catalog: dict[tuple[str, str], _History] = {}
        for version in catalog:
            self._catalog.setdefault(_key(version.provider, version.model), _History()).add(version)

    @classmethod
    def from_catalog_models(cls, models: Iterable[CatalogModel]) -> PriceBook:
        """A book straight from the genai-prices data, for use without a database."""
        return cls(
            PricedVersion(
                provider=m.provider,
                model=m.model,
                effective_from=p.effective_from,
                source="catalog",
                sheet=p.sheet,
                windows=p.windows,
                context_window=m.context_window,
                display_name=m.name,
                deprecated=m.deprecated,
            )
            for m in models
            for p in m.prices
        )

    def __len__(self) -> int:
        return len(self._catalog)

    def resolve(
        self, model_ref: str, provider: str | None = None, org: OrgPrices = NO_ORG_PRICES
    ) -> tuple[str, str] | None:
        """(provider, model) the book knows for a name as a caller wrote it, or None."""
        ref = model_ref.strip()
        found = org.find(ref, provider)
        if found is not None:
            return found
        if provider is not None:
            history = self._catalog.get(_key(provider, ref))
            if history is not None:
                first = history.versions[0]
                return first.provider, first.model
        matched = match_catalog_model(ref, provider)
        if matched is not None and _key(*matched) in self._catalog:
            return matched
        return None

    def catalog_version(self, provider: str, model: str, moment: datetime) -> PricedVersion | None:
        history = self._catalog.get(_key(provider, model))
        return history.at(moment) if history else None

    def quote(
        self, provider: str, model: str, moment: datetime, org: OrgPrices = NO_ORG_PRICES
    ) -> PriceQuote | None:
        """The price in force at `moment`, the organization's own winning; None if unpriced."""
        catalog = self.catalog_version(provider, model, moment)
        own = org.at(provider, model, moment)
        chosen = own or catalog
        if chosen is None:
            return None
        sheet = chosen.sheet_at(moment)
        if sheet is None:  # a discount off whatever the catalog says at that moment
            base = catalog.sheet_at(moment) if catalog is not None else None
            if base is None or chosen.discount_percent is None:
                return None
            factor = (Decimal(100) - chosen.discount_percent) / Decimal(100)
            sheet = base.scaled(factor)
        context = chosen.context_window or (catalog.context_window if catalog else None)
        return PriceQuote(
            chosen.provider, chosen.model, sheet, chosen.label, chosen.version_id, context
        )

    def current_versions(self, moment: datetime) -> list[PricedVersion]:
        """The catalog version in force at `moment` for every model."""
        found = []
        for history in self._catalog.values():
            version = history.at(moment)
            if version is not None:
                found.append(version)
        return found

    def history(self, provider: str, model: str) -> list[PricedVersion]:
        history = self._catalog.get(_key(provider, model))
        return list(history.versions) if history else []
