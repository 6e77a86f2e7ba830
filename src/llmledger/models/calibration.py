"""How our token estimates compare with what providers reported for an organization's calls."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from llmledger.models.base import Base, Id, utcnow


class TokenCalibration(Base):
    """Per organization and model, running sums over gateway calls whose provider reported
    usage: our input token estimate, the provider's count, and the per-call ratio (for its
    spread). Ratios are statistics, not money: floats are fine here."""

    __tablename__ = "token_calibrations"
    __table_args__ = (UniqueConstraint("organization_id", "provider", "model"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    # Per organization: what its calls carry (tools, languages) shapes the ratio, and no
    # organization should see or steer another's.
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    provider: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200))
    calls: Mapped[int] = mapped_column(BigInteger, default=0)
    estimated_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    reported_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    ratio_sum: Mapped[float] = mapped_column(Float, default=0.0)
    ratio_square_sum: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
