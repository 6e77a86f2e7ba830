"""The usage ledger: one append-only row per LLM call."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from llmledger.models.base import Base, Id, Json, utcnow


class UsageEvent(Base):
    __tablename__ = "usage_events"
    __table_args__ = (
        # Idempotency: a replayed client request id records nothing new.
        UniqueConstraint("organization_id", "client_request_id"),
        Index(None, "organization_id", "occurred_at", "id"),
        Index(None, "organization_id", "model", "occurred_at"),
        Index(None, "organization_id", "user_id", "occurred_at"),
        Index(None, "organization_id", "team_id", "occurred_at"),
        Index(None, "organization_id", "prompt_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    prompt_id: Mapped[str | None] = mapped_column(String(200))
    prompt_version: Mapped[str | None] = mapped_column(String(100))
    provider: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200))
    input_tokens: Mapped[int]
    cached_input_tokens: Mapped[int] = mapped_column(default=0)
    cache_write_tokens: Mapped[int] = mapped_column(default=0)
    output_tokens: Mapped[int]
    reasoning_tokens: Mapped[int] = mapped_column(default=0)
    # Cost parts are NULL when the model is unpriced: never a silent $0.
    pricing_status: Mapped[str] = mapped_column(String(20))  # priced | unpriced
    cost_input: Mapped[Decimal | None]
    cost_cached_input: Mapped[Decimal | None]
    cost_cache_write: Mapped[Decimal | None]
    cost_output: Mapped[Decimal | None]
    cost_reasoning: Mapped[Decimal | None]
    cost_request: Mapped[Decimal | None]
    cost_total: Mapped[Decimal | None]
    price_version_id: Mapped[int | None] = mapped_column(ForeignKey("price_versions.id"))
    price_version: Mapped[str | None] = mapped_column(String(300))
    latency_ms: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(20), default="success")
    source: Mapped[str] = mapped_column(String(20), default="api")
    tags: Mapped[dict[str, Any] | None] = mapped_column(Json)
    occurred_at: Mapped[datetime]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    client_request_id: Mapped[str | None] = mapped_column(String(200))
