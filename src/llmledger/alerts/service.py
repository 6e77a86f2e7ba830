"""Raising alerts when spend crosses a budget threshold or is forecast to pass the limit.

Each alert is inserted with ON CONFLICT DO NOTHING against a unique (budget, allocation,
period, kind, threshold) key: however many processes see the same crossing, one row wins and
only the winner queues its notification and deliveries.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmledger.budgets.counters import SpendChange
from llmledger.budgets.lines import Line
from llmledger.core.budget_math import forecast, thresholds_crossed
from llmledger.core.money import from_nanos, round_for_display
from llmledger.kit.bulk import insert_returning
from llmledger.models import Budget, BudgetAlert, Delivery, Notification, Webhook


def alerts_for_spend(
    session: Session, org_id: int, changes: Sequence[SpendChange], now: datetime
) -> list[int]:
    """Record the alerts these spend changes trigger; returns the ids of new alerts."""
    raised: list[int] = []
    for change in changes:
        line = change.line
        for threshold in thresholds_crossed(
            change.before, change.after, line.limit_nanos, line.thresholds
        ):
            message = (
                f"{line.label} reached {threshold}%: ${_usd(change.after)} of "
                f"${_usd(line.limit_nanos)} spent in the period starting "
                f"{line.period.start_date.isoformat()}"
            )
            raised += _raise(session, org_id, line, "threshold", threshold, change.after, message)
        was = forecast(change.before, line.limit_nanos, line.period, now)
        now_f = forecast(change.after, line.limit_nanos, line.period, now)
        if now_f.over_limit and not was.over_limit and change.after < line.limit_nanos:
            when = now_f.limit_reached_at.date().isoformat() if now_f.limit_reached_at else "soon"
            message = (
                f"{line.label} is forecast to reach its ${_usd(line.limit_nanos)} limit on "
                f"{when} (projected ${_usd(now_f.projected)} by the period's end)"
            )
            raised += _raise(session, org_id, line, "forecast", 0, change.after, message)
    return raised


def _usd(nanos: int) -> str:
    return str(round_for_display(from_nanos(nanos), 2))


def _raise(
    session: Session, org_id: int, line: Line, kind: str, threshold: int, spent: int, message: str
) -> list[int]:
    inserted = insert_returning(
        session,
        BudgetAlert.__table__,  # type: ignore[arg-type]
        [
            {
                "organization_id": org_id,
                "budget_id": line.budget_id,
                "allocation_id": line.allocation_id,
                "period_key": line.period.key,
                "kind": kind,
                "threshold": threshold,
                "spent": from_nanos(spent),
                "limit": from_nanos(line.limit_nanos),
                "message": message[:500],
                "created_at": datetime.now(UTC),
            }
        ],
        ("id",),
    )
    if not inserted:
        return []  # another process raised it first
    alert_id = int(inserted[0][0])
    title = "Budget forecast" if kind == "forecast" else f"Budget at {threshold}%"
    session.add(Notification(organization_id=org_id, alert_id=alert_id, title=title, body=message))
    _queue_deliveries(session, org_id, line.budget_id, alert_id)
    return [alert_id]


def _queue_deliveries(session: Session, org_id: int, budget_id: int, alert_id: int) -> None:
    budget = session.get(Budget, budget_id)
    targets = [("email", email) for email in (budget.notify_emails or [] if budget else [])]
    hooks = session.scalars(
        select(Webhook.id).where(Webhook.organization_id == org_id, Webhook.active.is_(True))
    )
    targets += [("webhook", str(hook_id)) for hook_id in hooks]
    for channel, target in dict.fromkeys(targets):  # a repeated address gets one email
        session.add(Delivery(alert_id=alert_id, channel=channel, target=target))
    session.flush()
