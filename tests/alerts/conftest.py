"""Fixtures for alert delivery: a real SMTP server (aiosmtpd), real local HTTP servers as
webhook receivers, and an app of the module's own whose background worker is off, so each
test runs the delivery pass itself, deterministically."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from llmledger.app import create_app
from llmledger.budgets.counters import CounterStore
from llmledger.kit.db import unit_of_work
from llmledger.kit.settings import Settings
from llmledger.models import BudgetAlert, Delivery, Notification
from tests.conftest import Tenant

# gpt-4o input tokens are $2.50 per million: 400,000 of them cost exactly $1.00.
TOKENS_PER_DOLLAR = 400_000
BACKOFF_SECONDS = 10.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SmtpSink:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self._received.append((list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        """Messages whose envelope named `address` as a recipient."""
        with self._lock:
            return [message for rcpts, message in self._received if address in rcpts]


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[SmtpSink, int]]:
    sink = SmtpSink()
    port = _free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    server: WebhookReceiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status = self.server.record(Received(self.path, dict(self.headers.items()), body))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass


class WebhookReceiver(ThreadingHTTPServer):
    """A real HTTP server on 127.0.0.1 that records requests; it answers 500 to the first
    `fail_first` of them (to every one if `always_fail`) and 200 afterwards."""

    def __init__(self, fail_first: int = 0, always_fail: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fail_first = fail_first
        self.always_fail = always_fail
        self._lock = threading.Lock()
        self._received: list[Received] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/alerts"

    def record(self, request: Received) -> int:
        with self._lock:
            self._received.append(request)
            failing = self.always_fail or len(self._received) <= self.fail_first
        return 500 if failing else 200

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)


@pytest.fixture
def webhook_receiver() -> Iterator[Callable[..., WebhookReceiver]]:
    started: list[tuple[WebhookReceiver, threading.Thread]] = []

    def start(fail_first: int = 0, always_fail: bool = False) -> WebhookReceiver:
        receiver = WebhookReceiver(fail_first, always_fail)
        thread = threading.Thread(target=receiver.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        started.append((receiver, thread))
        return receiver

    yield start
    for receiver, thread in started:
        receiver.shutdown()
        receiver.server_close()
        thread.join(timeout=5)


@dataclass
class AlertsApp:
    client: TestClient
    sessions: sessionmaker[Session]
    store: CounterStore
    settings: Settings
    smtp: SmtpSink


@pytest.fixture(scope="module")
def alerts_app(database_url: str, smtp: tuple[SmtpSink, int]) -> Iterator[AlertsApp]:
    sink, port = smtp
    settings = Settings(
        database_url=database_url,
        env="test",
        worker_in_process=False,
        smtp_host="127.0.0.1",
        smtp_port=port,
        delivery_backoff_seconds=BACKOFF_SECONDS,
        delivery_max_attempts=8,
    )
    app = create_app(settings)
    with TestClient(app) as client:
        yield AlertsApp(client, app.state.sessions, app.state.enforcer.store, settings, sink)


@pytest.fixture(autouse=True)
def _no_pending_deliveries_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """Deliver passes are global; a test that fails half-way must not leave due rows of its
    organization for later tests' passes to trip over."""
    if "tenant" not in request.fixturenames or "alerts_app" not in request.fixturenames:
        yield
        return
    tenant: Tenant = request.getfixturevalue("tenant")
    app: AlertsApp = request.getfixturevalue("alerts_app")
    yield
    with unit_of_work(app.sessions) as session:
        alert_ids = select(BudgetAlert.id).where(BudgetAlert.organization_id == tenant.org_id)
        session.execute(
            update(Delivery)
            .where(Delivery.status == "pending", Delivery.alert_id.in_(alert_ids))
            .values(status="failed", last_error="left over by a test")
        )


def create_budget(app: AlertsApp, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"scope": "organization", "monthly_limit": "1", "thresholds": [100]}
    body.update(fields)
    r = app.client.post("/api/v1/budgets", json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


def add_webhook(app: AlertsApp, tenant: Tenant, url: str, fmt: str = "json") -> dict[str, Any]:
    r = app.client.post(
        "/api/v1/webhooks", json={"url": url, "format": fmt}, headers=tenant.headers
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def spend(app: AlertsApp, tenant: Tenant, dollars: str) -> None:
    """Record one gpt-4o call costing exactly `dollars`."""
    tokens = int(Decimal(dollars) * TOKENS_PER_DOLLAR)
    r = app.client.post(
        "/api/v1/usage",
        json={"model": "gpt-4o", "input_tokens": tokens, "output_tokens": 0},
        headers=tenant.headers,
    )
    assert r.status_code == 201, r.text
    assert Decimal(r.json()["total_cost"]) == Decimal(dollars)


def alerts_of(app: AlertsApp, org_id: int) -> list[BudgetAlert]:
    with unit_of_work(app.sessions) as session:
        return list(
            session.scalars(
                select(BudgetAlert)
                .where(BudgetAlert.organization_id == org_id)
                .order_by(BudgetAlert.id)
            )
        )


def notifications_of(app: AlertsApp, org_id: int) -> list[Notification]:
    with unit_of_work(app.sessions) as session:
        return list(
            session.scalars(select(Notification).where(Notification.organization_id == org_id))
        )


def deliveries_of(app: AlertsApp, org_id: int) -> list[Delivery]:
    with unit_of_work(app.sessions) as session:
        return list(
            session.scalars(
                select(Delivery)
                .join(BudgetAlert, BudgetAlert.id == Delivery.alert_id)
                .where(BudgetAlert.organization_id == org_id)
                .order_by(Delivery.id)
            )
        )
