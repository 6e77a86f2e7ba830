"""A forecast alert fires once when the pace of spend would pass the limit before the
period ends, and not while the pace is within it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from llmledger.alerts.service import alerts_for_spend
from llmledger.budgets.counters import SpendChange
from llmledger.budgets.lines import Line
from llmledger.core.money import to_nanos
from llmledger.core.periods import period_containing
from llmledger.kit.db import make_engine, make_sessionmaker, unit_of_work
from llmledger.models import Budget, BudgetAlert, Notification
from tests.conftest import create_tenant

LIMIT = to_nanos(100)  # $100 a month


def _line(budget_id: int) -> Line:
    period = period_containing("monthly", datetime(2026, 4, 1, tzinfo=UTC), "UTC")  # 30 days
    return Line(
        budget_id, 0, period, LIMIT, False, (75, 90, 100), "organization 'x' monthly budget"
    )


def test_forecast_alert_fires_once_when_the_pace_would_overrun(database_url: str) -> None:
    tenant = create_tenant(database_url)
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    ten_days_in = datetime(2026, 4, 11, tzinfo=UTC)  # a third of the month gone
    with unit_of_work(sessions) as session:
        budget = Budget(
            organization_id=tenant.org_id,
            scope_type="organization",
            scope_id=tenant.org_id,
            monthly_limit=100,
            thresholds=[75, 90, 100],
            action="warn",
            notify_emails=[],
        )
        session.add(budget)
        session.flush()
        line = _line(budget.id)
        # $30 in ten days projects $90: no alert.
        calm = alerts_for_spend(
            session, tenant.org_id, [SpendChange(line, 0, to_nanos(30))], ten_days_in
        )
        assert calm == []
        # $40 in ten days projects $120: one forecast alert, not a threshold alert.
        hot = alerts_for_spend(
            session, tenant.org_id, [SpendChange(line, to_nanos(30), to_nanos(40))], ten_days_in
        )
        assert len(hot) == 1
        again = alerts_for_spend(
            session, tenant.org_id, [SpendChange(line, to_nanos(30), to_nanos(41))], ten_days_in
        )
        assert again == []
        alerts = session.scalars(
            select(BudgetAlert).where(BudgetAlert.budget_id == budget.id)
        ).all()
        assert [(a.kind, a.threshold) for a in alerts] == [("forecast", 0)]
        assert "2026-04-26" in alerts[0].message  # $40 per 10 days reaches $100 on day 25
        notes = session.scalars(
            select(Notification).where(Notification.organization_id == tenant.org_id)
        ).all()
        assert [n.title for n in notes] == ["Budget forecast"]
    engine.dispose()
