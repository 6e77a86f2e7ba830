"""In-app notifications: one per threshold crossed, listed newest first, acknowledged."""

from __future__ import annotations

from typing import Any

from tests.alerts.conftest import AlertsApp, create_budget, spend
from tests.conftest import Tenant, create_tenant


def _listed(app: AlertsApp, tenant: Tenant, unread: bool = False) -> list[dict[str, Any]]:
    r = app.client.get("/api/v1/notifications", params={"unread": unread}, headers=tenant.headers)
    assert r.status_code == 200, r.text
    return list(r.json())


def _threshold_titles(notifications: list[dict[str, Any]]) -> list[str]:
    # A forecast notification may also appear, depending on the day of the month.
    return [n["title"] for n in notifications if n["title"].startswith("Budget at")]


def test_each_threshold_crossed_raises_one_notification_and_none_past_the_limit(
    alerts_app: AlertsApp, tenant: Tenant
) -> None:
    create_budget(alerts_app, tenant, monthly_limit="1", thresholds=[75, 100])
    assert _listed(alerts_app, tenant) == []

    spend(alerts_app, tenant, "0.75")
    assert _threshold_titles(_listed(alerts_app, tenant)) == ["Budget at 75%"]

    spend(alerts_app, tenant, "0.10")  # 85%: no threshold between 75 and 100
    assert _threshold_titles(_listed(alerts_app, tenant)) == ["Budget at 75%"]

    spend(alerts_app, tenant, "0.15")
    after_limit = _listed(alerts_app, tenant)
    assert _threshold_titles(after_limit) == ["Budget at 100%", "Budget at 75%"]
    ids = [n["id"] for n in after_limit]
    assert ids == sorted(ids, reverse=True)  # newest first
    hundred = next(n for n in after_limit if n["title"] == "Budget at 100%")
    assert "reached 100%" in hundred["body"] and "$1.00 of $1.00" in hundred["body"]
    assert hundred["alert_id"] is not None and hundred["read_at"] is None

    spend(alerts_app, tenant, "0.50")
    spend(alerts_app, tenant, "2")
    assert _listed(alerts_app, tenant) == after_limit


def test_notifications_are_acknowledged_one_by_one_and_all_at_once(
    alerts_app: AlertsApp, tenant: Tenant
) -> None:
    create_budget(alerts_app, tenant, monthly_limit="1", thresholds=[50, 75, 100])
    spend(alerts_app, tenant, "1")
    everything = _listed(alerts_app, tenant)
    assert len(_threshold_titles(everything)) == 3
    assert _listed(alerts_app, tenant, unread=True) == everything

    first = everything[-1]
    r = alerts_app.client.post(f"/api/v1/notifications/{first['id']}/read", headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == first["id"] and r.json()["read_at"] is not None
    unread = _listed(alerts_app, tenant, unread=True)
    assert [n["id"] for n in unread] == [n["id"] for n in everything[:-1]]

    r = alerts_app.client.post("/api/v1/notifications/read-all", headers=tenant.headers)
    assert r.status_code == 204
    assert _listed(alerts_app, tenant, unread=True) == []
    listed = _listed(alerts_app, tenant)
    assert [n["id"] for n in listed] == [n["id"] for n in everything]
    assert all(n["read_at"] is not None for n in listed)


def test_another_organization_cannot_see_or_acknowledge_a_notification(
    alerts_app: AlertsApp, tenant: Tenant, database_url: str
) -> None:
    create_budget(alerts_app, tenant, monthly_limit="1", thresholds=[100])
    spend(alerts_app, tenant, "1")
    mine = _listed(alerts_app, tenant)[0]
    other = create_tenant(database_url)

    assert _listed(alerts_app, other) == []
    r = alerts_app.client.post(f"/api/v1/notifications/{mine['id']}/read", headers=other.headers)
    assert r.status_code == 404
    r = alerts_app.client.post("/api/v1/notifications/read-all", headers=other.headers)
    assert r.status_code == 204
    assert _listed(alerts_app, tenant, unread=True)[0]["id"] == mine["id"]
