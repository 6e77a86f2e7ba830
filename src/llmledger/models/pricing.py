"""Price versions: the catalog's and each organization's own, each effective from a date."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from llmledger.models.base import Base, Id, Json, utcnow


class PriceVersion(Base):
    """One price of one model from `effective_from` until the next version of the same scope.

    `organization_id` is None for the catalog (seeded from genai-prices). An organization's
    row either gives its own prices (custom or self-hosted model, negotiated price) or a
    `discount_percent` off the catalog price in force at the time of use.
    """

    __tablename__ = "price_versions"
    __table_args__ = (
        Index(None, "provider", "model", "effective_from"),
        Index(None, "organization_id", "provider", "model"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"))
    provider: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200))
    display_name: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(20))  # catalog | override | custom
    effective_from: Mapped[datetime]
    input_mtok: Mapped[Decimal | None]
    cached_input_mtok: Mapped[Decimal | None]
    cache_write_mtok: Mapped[Decimal | None]
    output_mtok: Mapped[Decimal | None]
    reasoning_mtok: Mapped[Decimal | None]
    request_fee: Mapped[Decimal | None]
    discount_percent: Mapped[Decimal | None]
    tiers: Mapped[list[dict[str, Any]] | None] = mapped_column(Json)
    # Peak/off-peak prices: [{"start": "00:30", "end": "16:30", "sheet": {...}}], UTC times.
    daily_windows: Mapped[list[dict[str, Any]] | None] = mapped_column(Json)
    context_window: Mapped[int | None]
    deprecated: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
