"""Sending queued alert deliveries: email over SMTP, signed JSON webhooks; retries with
exponential backoff. Safe to run in several workers: each row is claimed before sending."""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from llmledger.kit.settings import Settings
from llmledger.models import BudgetAlert, Delivery, Webhook

SIGNATURE_HEADER = "X-Llmledger-Signature"
TIMESTAMP_HEADER = "X-Llmledger-Timestamp"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over "<timestamp>.<body>", as receivers should recompute it."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def alert_payload(alert: BudgetAlert) -> dict[str, Any]:
    return {
        "type": f"budget.{alert.kind}",
        "alert_id": alert.id,
        "budget_id": alert.budget_id,
        "allocation_id": alert.allocation_id or None,
        "period": alert.period_key,
        "threshold_percent": alert.threshold or None,
        "spent": format(alert.spent, "f"),
        "limit": format(alert.limit, "f"),
        "currency": "USD",
        "message": alert.message,
        "created_at": alert.created_at.isoformat(),
    }


def send_webhook(hook: Webhook, alert: BudgetAlert, timeout: float = 5.0) -> None:
    if hook.format == "slack":
        body = json.dumps({"text": f":warning: {alert.message}"}).encode()
    else:
        body = json.dumps(alert_payload(alert)).encode()
    timestamp = str(int(time.time()))
    response = httpx.post(
        hook.url,
        content=body,
        timeout=timeout,
        headers={
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(hook.secret, timestamp, body),
        },
    )
    response.raise_for_status()


def send_email(settings: Settings, to: str, alert: BudgetAlert) -> None:
    if not settings.smtp_host:
        raise RuntimeError("no SMTP server configured (LLMLEDGER_SMTP_HOST)")
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    kind = "forecast" if alert.kind == "forecast" else f"{alert.threshold}% reached"
    message["Subject"] = f"[llmledger] Budget {kind}"
    message.set_content(f"{alert.message}\n\nSpent ${alert.spent} of ${alert.limit} (USD).\n")
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=10) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_username and settings.smtp_password:
            smtp.login(settings.smtp_username, settings.smtp_password)
        smtp.send_message(message)


def deliver_due(session: Session, settings: Settings, now: datetime | None = None) -> int:
    """Send the deliveries that are due; returns how many were sent."""
    now = now or datetime.now(UTC)
    query = (
        select(Delivery)
        .where(Delivery.status == "pending", Delivery.next_attempt_at <= now)
        .order_by(Delivery.id)
        .limit(50)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)  # workers never send the same row
    sent = 0
    for delivery in session.scalars(query).all():
        alert = session.get(BudgetAlert, delivery.alert_id)
        try:
            if alert is None:
                raise RuntimeError("alert is gone")
            if delivery.channel == "email":
                send_email(settings, delivery.target, alert)
            else:
                hook = session.get(Webhook, int(delivery.target))
                if hook is None or not hook.active:
                    delivery.status = "failed"
                    delivery.last_error = "webhook removed"
                    continue
                send_webhook(hook, alert)
        except Exception as exc:  # any failure is retried later with backoff
            delivery.attempts += 1
            delivery.last_error = str(exc)[:500]
            if delivery.attempts >= settings.delivery_max_attempts:
                delivery.status = "failed"
            else:
                backoff = settings.delivery_backoff_seconds * 2 ** (delivery.attempts - 1)
                delivery.next_attempt_at = now + timedelta(seconds=backoff)
            continue
        delivery.attempts += 1
        delivery.status = "sent"
        delivery.sent_at = datetime.now(UTC)
        sent += 1
    session.flush()
    return sent
