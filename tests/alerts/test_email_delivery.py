"""Email alerts reach a real SMTP server, once each, however many delivery passes run."""

from __future__ import annotations

import uuid

from llmledger.alerts.worker import run_once
from tests.alerts.conftest import AlertsApp, alerts_of, create_budget, deliveries_of, spend
from tests.conftest import Tenant


def _address() -> str:
    return f"finance-{uuid.uuid4().hex[:10]}@example.com"


def test_email_alert_reaches_each_recipient_once_with_the_budget_message(
    alerts_app: AlertsApp, tenant: Tenant
) -> None:
    first, second = _address(), _address()
    create_budget(alerts_app, tenant, monthly_limit="1", notify_emails=[first, second])
    spend(alerts_app, tenant, "1")
    [alert] = alerts_of(alerts_app, tenant.org_id)
    assert alerts_app.smtp.to(first) == []  # queued, not sent: the worker is off

    run_once(alerts_app.sessions, alerts_app.store, alerts_app.settings)
    run_once(alerts_app.sessions, alerts_app.store, alerts_app.settings)

    for address in (first, second):
        [message] = alerts_app.smtp.to(address)
        assert message["To"] == address
        assert message["From"] == alerts_app.settings.smtp_from
        assert message["Subject"] == "[llmledger] Budget 100% reached"
        body = message.get_content()
        assert alert.message in body
        assert "organization" in body and "reached 100%: $1.00 of $1.00" in body
    deliveries = deliveries_of(alerts_app, tenant.org_id)
    assert sorted(d.target for d in deliveries) == sorted([first, second])
    assert all(d.channel == "email" for d in deliveries)
    assert [(d.status, d.attempts) for d in deliveries] == [("sent", 1), ("sent", 1)]
    assert all(d.sent_at is not None for d in deliveries)


def test_email_is_sent_once_per_threshold_not_once_per_usage_event(
    alerts_app: AlertsApp, tenant: Tenant
) -> None:
    address = _address()
    create_budget(alerts_app, tenant, monthly_limit="1", notify_emails=[address])
    spend(alerts_app, tenant, "1")
    run_once(alerts_app.sessions, alerts_app.store, alerts_app.settings)
    spend(alerts_app, tenant, "0.5")
    spend(alerts_app, tenant, "0.5")
    run_once(alerts_app.sessions, alerts_app.store, alerts_app.settings)
    assert len(alerts_app.smtp.to(address)) == 1
    assert len(deliveries_of(alerts_app, tenant.org_id)) == 1
