"""Bad alert settings are refused with 422 naming the field, and nothing is created."""

from __future__ import annotations

import pytest

from tests.alerts.conftest import AlertsApp
from tests.conftest import Tenant


@pytest.mark.parametrize("url", ["not a url", "example.com/hook", "ftp://example.com/hook", ""])
def test_webhook_with_a_bad_url_is_refused_naming_the_url_field(
    alerts_app: AlertsApp, tenant: Tenant, url: str
) -> None:
    r = alerts_app.client.post("/api/v1/webhooks", json={"url": url}, headers=tenant.headers)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_request"
    assert [e["field"] for e in r.json()["errors"]] == ["url"]
    assert alerts_app.client.get("/api/v1/webhooks", headers=tenant.headers).json() == []


def test_webhook_with_an_unknown_format_is_refused_naming_the_format_field(
    alerts_app: AlertsApp, tenant: Tenant
) -> None:
    r = alerts_app.client.post(
        "/api/v1/webhooks",
        json={"url": "https://example.com/hook", "format": "teams"},
        headers=tenant.headers,
    )
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["format"]


def test_budget_with_a_bad_notify_email_is_refused(alerts_app: AlertsApp, tenant: Tenant) -> None:
    r = alerts_app.client.post(
        "/api/v1/budgets",
        json={
            "scope": "organization",
            "monthly_limit": "10",
            "notify_emails": ["ok@example.com", "not-an-email"],
        },
        headers=tenant.headers,
    )
    assert r.status_code == 422, r.text
    [error] = r.json()["errors"]
    assert error["field"] == "notify_emails"
    assert "not-an-email" in error["message"]
    assert alerts_app.client.get("/api/v1/budgets", headers=tenant.headers).json() == []
