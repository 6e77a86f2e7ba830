"""The same crossing raised twice, in one process or in two at once, yields one alert, one
notification and one set of deliveries."""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from llmledger.alerts.service import alerts_for_spend
from llmledger.alerts.worker import run_once
from llmledger.budgets.counters import SpendChange
from llmledger.budgets.rules import load_rules
from llmledger.kit.db import unit_of_work
from llmledger.models import Budget
from tests.alerts._raise_in_process import raise_alerts
from tests.alerts.conftest import (
    AlertsApp,
    WebhookReceiver,
    add_webhook,
    alerts_of,
    create_budget,
    deliveries_of,
    notifications_of,
)
from tests.conftest import Tenant


def _crossing_of_100_percent(app: AlertsApp, tenant: Tenant, budget_id: int) -> SpendChange:
    with unit_of_work(app.sessions) as session:
        budget = session.get(Budget, budget_id)
        assert budget is not None
        [line] = load_rules(session, tenant.org_id).budget_lines(budget, datetime.now(UTC), "UTC")
    return SpendChange(line, before=0, after=line.limit_nanos)


def _budget_with_email_and_webhook(
    app: AlertsApp, tenant: Tenant, receiver: WebhookReceiver
) -> tuple[int, str]:
    address = f"ops-{uuid.uuid4().hex[:10]}@example.com"
    add_webhook(app, tenant, receiver.url)
    budget = create_budget(app, tenant, monthly_limit="1", notify_emails=[address])
    return int(budget["id"]), address


def _assert_one_alert_delivered_once(
    app: AlertsApp, tenant: Tenant, receiver: WebhookReceiver, address: str
) -> None:
    alerts = alerts_of(app, tenant.org_id)
    assert [(a.kind, a.threshold) for a in alerts] == [("threshold", 100)]
    assert [n.alert_id for n in notifications_of(app, tenant.org_id)] == [alerts[0].id]
    deliveries = deliveries_of(app, tenant.org_id)
    assert sorted(d.channel for d in deliveries) == ["email", "webhook"]
    run_once(app.sessions, app.store, app.settings)
    assert len(app.smtp.to(address)) == 1
    assert len(receiver.received) == 1


def test_raising_the_same_crossing_twice_creates_one_alert_and_one_set_of_deliveries(
    alerts_app: AlertsApp, tenant: Tenant, webhook_receiver: Callable[..., WebhookReceiver]
) -> None:
    receiver = webhook_receiver()
    budget_id, address = _budget_with_email_and_webhook(alerts_app, tenant, receiver)
    change = _crossing_of_100_percent(alerts_app, tenant, budget_id)

    with unit_of_work(alerts_app.sessions) as session:
        first = alerts_for_spend(session, tenant.org_id, [change], datetime.now(UTC))
    with unit_of_work(alerts_app.sessions) as session:
        second = alerts_for_spend(session, tenant.org_id, [change], datetime.now(UTC))

    assert len(first) == 1
    assert second == []
    _assert_one_alert_delivered_once(alerts_app, tenant, receiver, address)


def test_two_processes_raising_the_same_crossing_at_once_create_one_alert(
    alerts_app: AlertsApp,
    tenant: Tenant,
    database_url: str,
    webhook_receiver: Callable[..., WebhookReceiver],
) -> None:
    receiver = webhook_receiver()
    budget_id, address = _budget_with_email_and_webhook(alerts_app, tenant, receiver)
    change = _crossing_of_100_percent(alerts_app, tenant, budget_id)

    # Processes forked from a clean, single-threaded server that has already imported what
    # they run: safe (no threads or connections of this one inherited) and quick to start.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tests.alerts._raise_in_process", "psycopg"])
    start = context.Barrier(2)
    results = context.Queue()
    processes = [
        context.Process(
            target=raise_alerts, args=(database_url, tenant.org_id, change, start, results)
        )
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    raised = [results.get(timeout=30) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0

    assert sorted(raised) == [0, 1]  # one process won the insert; the other was a no-op
    _assert_one_alert_delivered_once(alerts_app, tenant, receiver, address)
