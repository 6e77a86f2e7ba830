"""Budgets, per-user allocations, counters, reservations, alerts and their deliveries."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from llmledger.models.base import Base, Id, Json, utcnow

Nanos = BigInteger()


class Budget(Base):
    """Spending limits for one scope: the organization, a team, a department, a user or a key.

    `scope_id` is the id of the scoped row (the organization's own id for scope
    "organization"), so each scope has at most one budget.
    """

    __tablename__ = "budgets"
    __table_args__ = (UniqueConstraint("organization_id", "scope_type", "scope_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    scope_type: Mapped[str] = mapped_column(String(20))
    scope_id: Mapped[int] = mapped_column(Id)
    daily_limit: Mapped[Decimal | None]
    monthly_limit: Mapped[Decimal | None]
    thresholds: Mapped[list[int]] = mapped_column(Json)
    action: Mapped[str] = mapped_column(String(10), default="warn")  # warn | block
    max_tokens_per_prompt: Mapped[int | None]
    notify_emails: Mapped[list[str] | None] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class BudgetAllocation(Base):
    """A member's share of a team budget."""

    __tablename__ = "budget_allocations"
    __table_args__ = (UniqueConstraint("budget_id", "user_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    budget_id: Mapped[int] = mapped_column(ForeignKey("budgets.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    daily_limit: Mapped[Decimal | None]
    monthly_limit: Mapped[Decimal | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BudgetCounter(Base):
    """Spent and reserved amounts (integer nano-dollars) of one budget line in one period.

    A line is a budget (allocation_id 0) or one member's allocation of it. Rows are created
    on first use of a period, so periods reset by themselves.
    """

    __tablename__ = "budget_counters"
    __table_args__ = (UniqueConstraint("budget_id", "allocation_id", "period_key"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    budget_id: Mapped[int] = mapped_column(ForeignKey("budgets.id", ondelete="CASCADE"))
    allocation_id: Mapped[int] = mapped_column(Id, default=0)
    period_key: Mapped[str] = mapped_column(String(24))
    period_end: Mapped[datetime]
    spent_nanos: Mapped[int] = mapped_column(Nanos, default=0)
    reserved_nanos: Mapped[int] = mapped_column(Nanos, default=0)


class Reservation(Base):
    """The worst-case cost of an in-flight call, held against every budget line it touches."""

    __tablename__ = "reservations"
    __table_args__ = (Index(None, "status", "expires_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    amount_nanos: Mapped[int] = mapped_column(Nanos)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(Json)
    status: Mapped[str] = mapped_column(String(10), default="held")  # held|settled|released|expired
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    actual_nanos: Mapped[int | None] = mapped_column(Nanos)


class BudgetAlert(Base):
    """A threshold (or forecast) reached by a budget line in a period. The unique constraint
    is what makes a second process's send of the same alert a no-op."""

    __tablename__ = "budget_alerts"
    __table_args__ = (
        UniqueConstraint("budget_id", "allocation_id", "period_key", "kind", "threshold"),
        Index(None, "organization_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    budget_id: Mapped[int] = mapped_column(ForeignKey("budgets.id", ondelete="CASCADE"))
    allocation_id: Mapped[int] = mapped_column(Id, default=0)
    period_key: Mapped[str] = mapped_column(String(24))
    kind: Mapped[str] = mapped_column(String(10))  # threshold | forecast
    threshold: Mapped[int]  # percent; 0 for a forecast alert
    spent: Mapped[Decimal]
    limit: Mapped[Decimal]
    message: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Notification(Base):
    """An in-app notification, listed and acknowledged through the API."""

    __tablename__ = "notifications"
    __table_args__ = (Index(None, "organization_id", "read_at", "created_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("budget_alerts.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]


class Webhook(Base):
    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    url: Mapped[str] = mapped_column(String(1000))
    # Kept to sign payloads (HMAC-SHA256); returned only when the webhook is created.
    secret: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(10), default="json")  # json | slack
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Delivery(Base):
    """One alert to one destination (email address or webhook): the outbox row a worker sends
    and retries with backoff."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("alert_id", "channel", "target"),
        Index(None, "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("budget_alerts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(10))  # email | webhook
    target: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(10), default="pending")  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(500))
    sent_at: Mapped[datetime | None]
