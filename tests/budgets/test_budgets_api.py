"""Budgets through the REST API on the default (SQL) backend, SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

from fastapi.testclient import TestClient

from tests.conftest import Tenant


def usage(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {"model": "gpt-4o", "input_tokens": 100_000, "output_tokens": 0}
    body.update(overrides)
    return body  # 100k gpt-4o input tokens cost $0.25


def create(client: TestClient, tenant: Tenant, **body: object) -> dict[str, object]:
    r = client.post("/api/v1/budgets", json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    return r.json()


def status_line(client: TestClient, tenant: Tenant, budget_id: object) -> dict[str, str]:
    budget = client.get(f"/api/v1/budgets/{budget_id}", headers=tenant.headers).json()
    return budget["status"][0]


def test_usage_counts_against_the_budget_and_status_reports_it(
    client: TestClient, tenant: Tenant
) -> None:
    budget = create(client, tenant, scope="organization", monthly_limit="1.00")
    assert budget["thresholds"] == [75, 90, 100] and budget["action"] == "warn"
    client.post("/api/v1/usage", json=usage(), headers=tenant.headers)
    line = status_line(client, tenant, budget["id"])
    assert Decimal(line["spent"]) == Decimal("0.25")
    assert Decimal(line["remaining"]) == Decimal("0.75")
    assert line["percent_used"] == 25.0
    assert line["period"] == "monthly"
    assert Decimal(line["forecast_spend"]) >= Decimal("0.25")


def test_budget_created_mid_period_starts_from_recorded_usage(
    client: TestClient, tenant: Tenant
) -> None:
    client.post("/api/v1/usage", json=usage(team="ml"), headers=tenant.headers)
    budget = create(client, tenant, scope="team:ml", daily_limit="10")
    assert Decimal(status_line(client, tenant, budget["id"])["spent"]) == Decimal("0.25")


def test_only_the_scopes_a_call_belongs_to_are_charged(client: TestClient, tenant: Tenant) -> None:
    ml = create(client, tenant, scope="team:ml", monthly_limit="5")
    ana = create(client, tenant, scope="user:ana@example.com", monthly_limit="5")
    client.post(
        "/api/v1/usage", json=usage(team="ml", user="bo@example.com"), headers=tenant.headers
    )
    assert Decimal(status_line(client, tenant, ml["id"])["spent"]) == Decimal("0.25")
    assert Decimal(status_line(client, tenant, ana["id"])["spent"]) == 0


def test_usage_from_another_day_counts_in_its_own_period(
    client: TestClient, tenant: Tenant
) -> None:
    budget = create(client, tenant, scope="organization", daily_limit="1")
    client.post(
        "/api/v1/usage", json=usage(occurred_at="2020-01-01T12:00:00Z"), headers=tenant.headers
    )
    assert Decimal(status_line(client, tenant, budget["id"])["spent"]) == 0


def test_check_says_allow_warn_or_block(client: TestClient, tenant: Tenant) -> None:
    create(client, tenant, scope="organization", monthly_limit="1.00", action="warn")
    create(client, tenant, scope="team:ml", monthly_limit="0.10", action="block")
    small = {"model": "gpt-4o", "input_tokens": 1000, "max_output_tokens": 100}
    r = client.post("/api/v1/budgets/check", json=small, headers=tenant.headers)
    assert r.status_code == 200 and r.json()["verdict"] == "allow"
    big = {"model": "gpt-4o", "input_tokens": 500_000, "max_output_tokens": 1000}
    warned = client.post("/api/v1/budgets/check", json=big, headers=tenant.headers).json()
    assert warned["verdict"] == "warn"
    assert any("organization" in reason for reason in warned["reasons"])
    blocked = client.post(
        "/api/v1/budgets/check", json={**big, "team": "ml"}, headers=tenant.headers
    ).json()
    assert blocked["verdict"] == "block"
    assert any("team 'ml'" in reason and "resets at" in reason for reason in blocked["reasons"])
    assert Decimal(blocked["worst_case_cost"]["total"]) > Decimal("1")


def test_max_tokens_per_prompt(client: TestClient, tenant: Tenant) -> None:
    create(client, tenant, scope="organization", max_tokens_per_prompt=2000, action="block")
    ok = {"model": "gpt-4o", "input_tokens": 1000, "max_output_tokens": 1000}
    too_big = {"model": "gpt-4o", "text": "word " * 3000, "max_output_tokens": 10}
    assert (
        client.post("/api/v1/budgets/check", json=ok, headers=tenant.headers).json()["verdict"]
        == "allow"
    )
    decision = client.post("/api/v1/budgets/check", json=too_big, headers=tenant.headers).json()
    assert decision["verdict"] == "block" and "tokens per prompt" in decision["reasons"][0]
    # The tools a prompt offers are part of its input.
    messages = [{"role": "user", "content": "Find the Q3 report."}]
    tool = {"type": "function", "function": {"name": "search", "description": "x " * 2500}}
    small = {"model": "gpt-4o", "messages": messages, "max_output_tokens": 100}
    check = "/api/v1/budgets/check"
    assert client.post(check, json=small, headers=tenant.headers).json()["verdict"] == "allow"
    offered = client.post(check, json={**small, "tools": [tool]}, headers=tenant.headers).json()
    assert offered["verdict"] == "block"


def test_reserve_settle_and_release(client: TestClient, tenant: Tenant) -> None:
    budget = create(client, tenant, scope="organization", monthly_limit="1.00", action="block")
    call = {
        "model": "gpt-4o",
        "input_tokens": 100_000,
        "max_output_tokens": 10_000,
    }  # $0.35 worst case
    held = client.post("/api/v1/reservations", json=call, headers=tenant.headers).json()
    assert held["verdict"] == "allow" and held["reservation_id"]
    line = status_line(client, tenant, budget["id"])
    assert Decimal(line["reserved"]) == Decimal("0.35") and Decimal(line["spent"]) == 0

    settled = client.post(
        f"/api/v1/reservations/{held['reservation_id']}/settle",
        json={"model": "gpt-4o", "input_tokens": 100_000, "output_tokens": 2_000},
        headers=tenant.headers,
    )
    assert settled.status_code == 200, settled.text
    line = status_line(client, tenant, budget["id"])
    assert Decimal(line["reserved"]) == 0 and Decimal(line["spent"]) == Decimal("0.27")

    second = client.post("/api/v1/reservations", json=call, headers=tenant.headers).json()
    assert (
        client.post(
            f"/api/v1/reservations/{second['reservation_id']}/release", headers=tenant.headers
        ).status_code
        == 204
    )
    assert Decimal(status_line(client, tenant, budget["id"])["reserved"]) == 0
    # Releasing twice gives nothing back twice.
    client.post(f"/api/v1/reservations/{second['reservation_id']}/release", headers=tenant.headers)
    assert Decimal(status_line(client, tenant, budget["id"])["reserved"]) == 0


def test_a_budget_created_between_a_hold_and_its_settle_is_charged(
    client: TestClient, tenant: Tenant
) -> None:
    org = create(client, tenant, scope="organization", monthly_limit="5.00", action="block")
    call = {"model": "gpt-4o", "input_tokens": 100_000, "max_output_tokens": 10_000, "team": "ml"}
    held = client.post("/api/v1/reservations", json=call, headers=tenant.headers).json()
    team = create(client, tenant, scope="team:ml", monthly_limit="5.00")
    usage = {"model": "gpt-4o", "input_tokens": 100_000, "output_tokens": 2_000, "team": "ml"}
    path = f"/api/v1/reservations/{held['reservation_id']}/settle"
    for _ in range(2):  # a retried settle records and charges nothing more
        assert client.post(path, json=usage, headers=tenant.headers).status_code == 200
    for budget in (org, team):
        line = status_line(client, tenant, budget["id"])
        assert Decimal(line["spent"]) == Decimal("0.27") and Decimal(line["reserved"]) == 0


def test_hard_budget_refuses_a_hold_that_would_overspend(
    client: TestClient, tenant: Tenant
) -> None:
    budget = create(client, tenant, scope="organization", monthly_limit="1.00", action="block")
    call = {"model": "gpt-4o", "input_tokens": 100_000, "max_output_tokens": 10_000}  # $0.35
    verdicts = [
        client.post("/api/v1/reservations", json=call, headers=tenant.headers).json()
        for _ in range(3)
    ]
    assert [v["verdict"] for v in verdicts] == ["allow", "allow", "block"]
    assert verdicts[2]["reservation_id"] is None
    assert Decimal(status_line(client, tenant, budget["id"])["reserved"]) == Decimal("0.70")


def test_allocations_split_a_team_budget(client: TestClient, tenant: Tenant) -> None:
    team = create(client, tenant, scope="team:ml", monthly_limit="1.00", action="block")
    url = f"/api/v1/budgets/{team['id']}/allocations"
    assert (
        client.put(
            url, json={"user": "ana@example.com", "monthly_limit": "0.30"}, headers=tenant.headers
        ).status_code
        == 200
    )
    too_much = client.put(
        url, json={"user": "bo@example.com", "monthly_limit": "0.80"}, headers=tenant.headers
    )
    assert too_much.status_code == 422 and too_much.json()["errors"][0]["field"] == "monthly_limit"
    call = {"model": "gpt-4o", "input_tokens": 100_000, "max_output_tokens": 10_000, "team": "ml"}
    assert (
        client.post(
            "/api/v1/budgets/check",
            json={**call, "user": "ana@example.com"},
            headers=tenant.headers,
        ).json()["verdict"]
        == "block"
    )
    assert (
        client.post(
            "/api/v1/budgets/check", json={**call, "user": "cy@example.com"}, headers=tenant.headers
        ).json()["verdict"]
        == "allow"
    )
    shown = client.get(f"/api/v1/budgets/{team['id']}", headers=tenant.headers).json()
    assert [a["user"] for a in shown["allocations"]] == ["ana@example.com"]
    assert len(shown["status"]) == 2  # the team's line and ana's share


def test_update_and_delete(client: TestClient, tenant: Tenant) -> None:
    budget = create(client, tenant, scope="organization", monthly_limit="1.00")
    r = client.patch(
        f"/api/v1/budgets/{budget['id']}",
        json={"daily_limit": "0.5", "thresholds": [50, 100]},
        headers=tenant.headers,
    )
    assert (
        r.status_code == 200
        and r.json()["thresholds"] == [50, 100]
        and len(r.json()["status"]) == 2
    )
    assert (
        client.delete(f"/api/v1/budgets/{budget['id']}", headers=tenant.headers).status_code == 204
    )
    assert client.get(f"/api/v1/budgets/{budget['id']}", headers=tenant.headers).status_code == 404


def test_bad_budgets_name_the_field(client: TestClient, tenant: Tenant) -> None:
    cases = [
        ({"scope": "organization", "monthly_limit": "-1"}, "monthly_limit"),
        ({"scope": "organization", "monthly_limit": "1", "thresholds": [0, 90]}, "thresholds"),
        ({"scope": "organization", "monthly_limit": "1", "thresholds": [1001]}, "thresholds"),
        ({"scope": "galaxy:far", "monthly_limit": "1"}, "scope"),
        ({"scope": "key:999999", "monthly_limit": "1"}, "scope"),
        ({"scope": "organization", "monthly_limit": "1", "action": "explode"}, "action"),
    ]
    for body, field in cases:
        r = client.post("/api/v1/budgets", json=body, headers=tenant.headers)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["errors"][0]["field"] == field, (body, r.json())
    create(client, tenant, scope="organization", monthly_limit="1")
    again = client.post(
        "/api/v1/budgets",
        json={"scope": "organization", "daily_limit": "1"},
        headers=tenant.headers,
    )
    assert again.status_code == 409


def test_budgets_are_private_to_their_organization(
    client: TestClient, tenant: Tenant, database_url: str
) -> None:
    from tests.conftest import create_tenant

    budget = create(client, tenant, scope="organization", monthly_limit="1")
    other = create_tenant(database_url)
    assert client.get(f"/api/v1/budgets/{budget['id']}", headers=other.headers).status_code == 404
    assert client.get("/api/v1/budgets", headers=other.headers).json() == []


def test_a_repeated_alert_address_is_kept_once(client: TestClient, tenant: Tenant) -> None:
    budget = create(
        client,
        tenant,
        scope="organization",
        monthly_limit="0.10",
        notify_emails=["a@x.com", "a@x.com"],
    )
    assert budget["notify_emails"] == ["a@x.com"]
    # Crossing every threshold still records the usage.
    assert client.post("/api/v1/usage", json=usage(), headers=tenant.headers).status_code == 201
