"""Webhooks: signed JSON payloads, Slack-format messages, retries with exponential backoff."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from llmledger.alerts.delivery import deliver_due
from llmledger.kit.db import unit_of_work
from llmledger.kit.settings import Settings
from llmledger.models import Delivery
from tests.alerts.conftest import (
    BACKOFF_SECONDS,
    AlertsApp,
    WebhookReceiver,
    add_webhook,
    alerts_of,
    create_budget,
    deliveries_of,
    spend,
)
from tests.conftest import Tenant

Receiver = Callable[..., WebhookReceiver]


def _pass(app: AlertsApp, now: datetime, settings: Settings | None = None) -> None:
    with unit_of_work(app.sessions) as session:
        deliver_due(session, settings or app.settings, now)


def _only_delivery(app: AlertsApp, tenant: Tenant) -> Delivery:
    [delivery] = deliveries_of(app, tenant.org_id)
    return delivery


def test_json_webhook_receives_the_alert_signed_with_its_secret(
    alerts_app: AlertsApp, tenant: Tenant, webhook_receiver: Receiver
) -> None:
    receiver = webhook_receiver()
    hook = add_webhook(alerts_app, tenant, receiver.url, "json")
    budget = create_budget(alerts_app, tenant, monthly_limit="1", thresholds=[100])
    spend(alerts_app, tenant, "1")
    [alert] = alerts_of(alerts_app, tenant.org_id)

    _pass(alerts_app, datetime.now(UTC))

    [request] = receiver.received
    assert request.path == "/hooks/alerts"
    assert request.headers["Content-Type"] == "application/json"
    timestamp = request.headers["X-Llmledger-Timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    expected = hmac.new(
        hook["secret"].encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256
    ).hexdigest()
    assert request.headers["X-Llmledger-Signature"] == f"sha256={expected}"
    payload = json.loads(request.body)
    assert payload["type"] == "budget.threshold"
    assert payload["alert_id"] == alert.id
    assert payload["budget_id"] == budget["id"]
    assert payload["allocation_id"] is None
    assert payload["threshold_percent"] == 100
    assert Decimal(payload["spent"]) == Decimal(payload["limit"]) == Decimal("1")
    assert payload["currency"] == "USD"
    assert payload["message"] == alert.message and "reached 100%" in payload["message"]
    assert payload["period"].startswith("monthly:")
    delivery = _only_delivery(alerts_app, tenant)
    assert (delivery.channel, delivery.target) == ("webhook", str(hook["id"]))
    assert (delivery.status, delivery.attempts) == ("sent", 1)


def test_signature_does_not_verify_with_another_secret_or_a_changed_body(
    alerts_app: AlertsApp, tenant: Tenant, webhook_receiver: Receiver
) -> None:
    receiver = webhook_receiver()
    hook = add_webhook(alerts_app, tenant, receiver.url)
    create_budget(alerts_app, tenant, monthly_limit="1")
    spend(alerts_app, tenant, "1")
    _pass(alerts_app, datetime.now(UTC))
    [request] = receiver.received
    timestamp, signature = (
        request.headers["X-Llmledger-Timestamp"],
        request.headers["X-Llmledger-Signature"],
    )

    def mac(secret: str, body: bytes) -> str:
        digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
        return f"sha256={digest.hexdigest()}"

    assert signature == mac(hook["secret"], request.body)
    assert signature != mac(hook["secret"] + "x", request.body)
    assert signature != mac(hook["secret"], request.body.replace(b"100", b"101"))
    listed = alerts_app.client.get("/api/v1/webhooks", headers=tenant.headers).json()
    assert [h["secret"] for h in listed] == [None]  # shown once, at creation


def test_slack_webhook_receives_a_text_message(
    alerts_app: AlertsApp, tenant: Tenant, webhook_receiver: Receiver
) -> None:
    receiver = webhook_receiver()
    add_webhook(alerts_app, tenant, receiver.url, "slack")
    create_budget(alerts_app, tenant, monthly_limit="1", thresholds=[100])
    spend(alerts_app, tenant, "1")
    [alert] = alerts_of(alerts_app, tenant.org_id)

    _pass(alerts_app, datetime.now(UTC))

    [request] = receiver.received
    payload = json.loads(request.body)
    assert list(payload) == ["text"]
    assert alert.message in payload["text"]
    assert "reached 100%: $1.00 of $1.00" in payload["text"]


def test_every_active_webhook_gets_the_alert_and_a_removed_one_does_not(
    alerts_app: AlertsApp, tenant: Tenant, webhook_receiver: Receiver
) -> None:
    kept, removed = webhook_receiver(), webhook_receiver()
    add_webhook(alerts_app, tenant, kept.url)
    gone = add_webhook(alerts_app, tenant, removed.url)
    r = alerts_app.client.delete(f"/api/v1/webhooks/{gone['id']}", headers=tenant.headers)
    assert r.status_code == 204
    create_budget(alerts_app, tenant, monthly_limit="1")
    spend(alerts_app, tenant, "1")
    _pass(alerts_app, datetime.now(UTC))
    assert len(kept.received) == 1
    assert removed.received == []


def test_webhook_failing_twice_is_retried_with_backoff_and_sent_on_the_third_attempt(
    alerts_app: AlertsApp, tenant: Tenant, webhook_receiver: Receiver
) -> None:
    receiver = webhook_receiver(fail_first=2)
    add_webhook(alerts_app, tenant, receiver.url)
    create_budget(alerts_app, tenant, monthly_limit="1")
    spend(alerts_app, tenant, "1")
    t0 = datetime.now(UTC)

    _pass(alerts_app, t0)
    first = _only_delivery(alerts_app, tenant)
    assert (first.status, first.attempts) == ("pending", 1)
    assert first.next_attempt_at == t0 + timedelta(seconds=BACKOFF_SECONDS)
    assert first.last_error is not None and "500" in first.last_error
    assert len(receiver.received) == 1

    _pass(alerts_app, t0 + timedelta(seconds=BACKOFF_SECONDS - 1))  # not due yet
    assert len(receiver.received) == 1
    assert _only_delivery(alerts_app, tenant).attempts == 1

    retry_at = first.next_attempt_at
    _pass(alerts_app, retry_at)
    second = _only_delivery(alerts_app, tenant)
    assert (second.status, second.attempts) == ("pending", 2)
    assert second.next_attempt_at == retry_at + timedelta(seconds=2 * BACKOFF_SECONDS)
    assert len(receiver.received) == 2

    _pass(alerts_app, second.next_attempt_at)
    third = _only_delivery(alerts_app, tenant)
    assert (third.status, third.attempts) == ("sent", 3)
    assert third.sent_at is not None
    assert len(receiver.received) == 3
    assert len({r.body for r in receiver.received}) == 1  # the same payload each time

    _pass(alerts_app, third.next_attempt_at + timedelta(days=1))
    assert len(receiver.received) == 3


def test_webhook_that_always_fails_ends_failed_after_the_maximum_attempts(
    alerts_app: AlertsApp, tenant: Tenant, webhook_receiver: Receiver
) -> None:
    settings = alerts_app.settings.model_copy(update={"delivery_max_attempts": 3})
    receiver = webhook_receiver(always_fail=True)
    add_webhook(alerts_app, tenant, receiver.url)
    create_budget(alerts_app, tenant, monthly_limit="1")
    spend(alerts_app, tenant, "1")

    now = datetime.now(UTC)
    waits = []
    for _ in range(3):
        _pass(alerts_app, now, settings)
        delivery = _only_delivery(alerts_app, tenant)
        waits.append(delivery.next_attempt_at - now)
        now = delivery.next_attempt_at
    assert len(receiver.received) == 3
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert delivery.sent_at is None and "500" in (delivery.last_error or "")
    assert waits[:2] == [timedelta(seconds=BACKOFF_SECONDS), timedelta(seconds=2 * BACKOFF_SECONDS)]

    _pass(alerts_app, now + timedelta(days=30), settings)
    assert len(receiver.received) == 3
    assert _only_delivery(alerts_app, tenant).status == "failed"
