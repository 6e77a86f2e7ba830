"""REST endpoints: in-app notifications, webhooks, alert history."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, HttpUrl
from sqlalchemy import select, update

from llmledger.kit.deps import PrincipalDep, SessionDep
from llmledger.kit.errors import NotFound
from llmledger.models import Notification, Webhook

router = APIRouter(tags=["alerts"])


class NotificationOut(BaseModel):
    id: int
    alert_id: int | None
    title: str
    body: str
    created_at: datetime
    read_at: datetime | None


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl
    format: Literal["json", "slack"] = "json"


class WebhookOut(BaseModel):
    id: int
    url: str
    format: str
    active: bool
    secret: str | None = Field(default=None, description="shown once, when created")


@router.get("/notifications", response_model=list[NotificationOut])
def list_notifications(
    session: SessionDep, principal: PrincipalDep, unread: bool = False, limit: int = 100
) -> list[NotificationOut]:
    """Newest first; `unread=true` for the ones not yet acknowledged."""
    query = select(Notification).where(Notification.organization_id == principal.organization_id)
    if unread:
        query = query.where(Notification.read_at.is_(None))
    rows = session.scalars(query.order_by(Notification.id.desc()).limit(min(max(limit, 1), 500)))
    return [NotificationOut.model_validate(r, from_attributes=True) for r in rows]


@router.post("/notifications/{notification_id}/read", response_model=NotificationOut)
def mark_read(
    notification_id: int, session: SessionDep, principal: PrincipalDep
) -> NotificationOut:
    """Acknowledge one notification."""
    row = session.get(Notification, notification_id)
    if row is None or row.organization_id != principal.organization_id:
        raise NotFound(f"no notification {notification_id}")
    row.read_at = row.read_at or datetime.now(UTC)
    session.flush()
    return NotificationOut.model_validate(row, from_attributes=True)


@router.post("/notifications/read-all", status_code=204)
def mark_all_read(session: SessionDep, principal: PrincipalDep) -> Response:
    """Acknowledge every unread notification."""
    session.execute(
        update(Notification)
        .where(
            Notification.organization_id == principal.organization_id,
            Notification.read_at.is_(None),
        )
        .values(read_at=datetime.now(UTC))
    )
    return Response(status_code=204)


@router.post("/webhooks", response_model=WebhookOut, status_code=201)
def add_webhook(body: WebhookIn, session: SessionDep, principal: PrincipalDep) -> WebhookOut:
    """Send budget alerts to a URL as signed JSON (or a Slack-compatible message)."""
    hook = Webhook(
        organization_id=principal.organization_id,
        url=str(body.url),
        secret=secrets.token_urlsafe(32),
        format=body.format,
    )
    session.add(hook)
    session.flush()
    return WebhookOut(id=hook.id, url=hook.url, format=hook.format, active=True, secret=hook.secret)


@router.get("/webhooks", response_model=list[WebhookOut])
def list_webhooks(session: SessionDep, principal: PrincipalDep) -> list[WebhookOut]:
    """The organization's webhooks (secrets are not shown again)."""
    rows = session.scalars(
        select(Webhook).where(Webhook.organization_id == principal.organization_id)
    )
    return [WebhookOut(id=h.id, url=h.url, format=h.format, active=h.active) for h in rows]


@router.delete("/webhooks/{webhook_id}", status_code=204)
def delete_webhook(webhook_id: int, session: SessionDep, principal: PrincipalDep) -> Response:
    """Stop sending to a webhook."""
    hook = session.get(Webhook, webhook_id)
    if hook is None or hook.organization_id != principal.organization_id:
        raise NotFound(f"no webhook {webhook_id}")
    hook.active = False
    session.flush()
    return Response(status_code=204)
