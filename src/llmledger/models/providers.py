"""Each organization's keys for upstream LLM providers, stored encrypted."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from llmledger.models.base import Base, Id, utcnow


class ProviderCredential(Base):
    __tablename__ = "provider_credentials"
    __table_args__ = (UniqueConstraint("organization_id", "provider"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    # openai, anthropic, deepseek, ... or a name of the organization's own
    provider: Mapped[str] = mapped_column(String(20))
    # Fernet token of the API key (key derived from LLMLEDGER_SECRET_KEY); never returned.
    api_key_encrypted: Mapped[str] = mapped_column(String(2000))
    base_url: Mapped[str | None] = mapped_column(String(1000))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
