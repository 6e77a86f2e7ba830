"""The usage ledger through the REST API, on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

from fastapi.testclient import TestClient

from tests.conftest import Tenant, create_tenant


def event(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {"model": "gpt-4o", "input_tokens": 1000, "output_tokens": 200}
    body.update(overrides)
    return body


def test_one_event_is_recorded_with_its_cost(client: TestClient, tenant: Tenant) -> None:
    r = client.post("/api/v1/usage", json=event(client_request_id="r1"), headers=tenant.headers)
    assert r.status_code == 201, r.text
    recorded = r.json()["events"][0]
    assert recorded["provider"] == "openai"
    assert recorded["pricing_status"] == "priced"
    cost = {k: Decimal(v) for k, v in recorded["cost"].items()}
    assert cost["total"] == cost["input"] + cost["output"] > 0
    assert recorded["price_version"].startswith("catalog:openai/gpt-4o@")


def test_replayed_request_id_records_nothing_new(client: TestClient, tenant: Tenant) -> None:
    first = client.post(
        "/api/v1/usage", json=event(client_request_id="same"), headers=tenant.headers
    )
    again = client.post(
        "/api/v1/usage", json=event(client_request_id="same"), headers=tenant.headers
    )
    assert again.status_code == 201
    assert again.json()["recorded"] == 0 and again.json()["duplicates"] == 1
    assert again.json()["events"][0]["id"] == first.json()["events"][0]["id"]
    assert again.json()["events"][0]["cost"] == first.json()["events"][0]["cost"]
    listed = client.get("/api/v1/usage", headers=tenant.headers).json()["events"]
    assert len(listed) == 1


def test_batch_records_every_event_and_sums_cost(client: TestClient, tenant: Tenant) -> None:
    events = [event(client_request_id=f"b{i}", input_tokens=100 * (i + 1)) for i in range(50)]
    r = client.post("/api/v1/usage", json={"events": events}, headers=tenant.headers)
    assert r.status_code == 201
    body = r.json()
    assert body["recorded"] == 50
    assert Decimal(body["total_cost"]) == sum(Decimal(e["cost"]["total"]) for e in body["events"])


def test_bad_event_rejects_the_whole_batch(client: TestClient, tenant: Tenant) -> None:
    events = [event(client_request_id=f"ok{i}") for i in range(3)]
    events.append(event(input_tokens=-5))
    r = client.post("/api/v1/usage", json={"events": events}, headers=tenant.headers)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "events.3.input_tokens"
    assert client.get("/api/v1/usage", headers=tenant.headers).json()["events"] == []


def test_batch_over_the_limit_is_refused(client: TestClient, tenant: Tenant) -> None:
    r = client.post("/api/v1/usage", json={"events": [event()] * 1001}, headers=tenant.headers)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "events"


def test_malformed_time_and_impossible_counts_name_the_field(
    client: TestClient, tenant: Tenant
) -> None:
    bad_time = client.post(
        "/api/v1/usage", json=event(occurred_at="yesterday"), headers=tenant.headers
    )
    assert bad_time.status_code == 422
    assert bad_time.json()["errors"][0]["field"] == "occurred_at"
    naive = client.post(
        "/api/v1/usage", json=event(occurred_at="2026-01-01T10:00:00"), headers=tenant.headers
    )
    assert naive.status_code == 422
    too_many_cached = client.post(
        "/api/v1/usage", json=event(cached_input_tokens=5000), headers=tenant.headers
    )
    assert too_many_cached.status_code == 422
    assert "cached_input_tokens" in too_many_cached.json()["message"]


def test_unknown_model_is_recorded_as_unpriced_not_zero(client: TestClient, tenant: Tenant) -> None:
    r = client.post("/api/v1/usage", json=event(model="acme-internal-llm"), headers=tenant.headers)
    assert r.status_code == 201
    recorded = r.json()["events"][0]
    assert recorded["pricing_status"] == "unpriced"
    assert recorded["cost"] is None


def test_cache_tokens_are_priced_once_at_the_cache_price(
    client: TestClient, tenant: Tenant
) -> None:
    plain = client.post(
        "/api/v1/usage",
        json=event(model="claude-3-5-sonnet", input_tokens=10_000),
        headers=tenant.headers,
    )
    cached = client.post(
        "/api/v1/usage",
        json=event(model="claude-3-5-sonnet", input_tokens=10_000, cached_input_tokens=8_000),
        headers=tenant.headers,
    )
    plain_cost = Decimal(plain.json()["events"][0]["cost"]["total"])
    cached_cost = Decimal(cached.json()["events"][0]["cost"]["total"])
    assert cached_cost < plain_cost
    assert Decimal(cached.json()["events"][0]["cost"]["cached_input"]) > 0


def test_past_usage_is_priced_with_the_price_then_in_force(
    client: TestClient, tenant: Tenant
) -> None:
    # o3's price was cut on 2025-06-10 (a dated price in the catalog).
    before = client.post(
        "/api/v1/usage",
        json=event(model="o3", occurred_at="2025-05-01T00:00:00Z"),
        headers=tenant.headers,
    )
    after = client.post(
        "/api/v1/usage",
        json=event(model="o3", occurred_at="2025-07-01T00:00:00Z"),
        headers=tenant.headers,
    )
    b, a = before.json()["events"][0], after.json()["events"][0]
    assert b["price_version"] != a["price_version"]
    assert Decimal(b["cost"]["total"]) > Decimal(a["cost"]["total"])


def test_listing_filters_and_paginates_with_a_cursor(client: TestClient, tenant: Tenant) -> None:
    events = [
        event(
            client_request_id=f"p{i}",
            occurred_at=f"2026-03-{i + 1:02d}T12:00:00Z",
            user="ana@example.com" if i % 2 else "bo@example.com",
            team="research",
            prompt_id="summarise" if i < 5 else "translate",
            model="gpt-4o-mini" if i % 3 == 0 else "gpt-4o",
        )
        for i in range(12)
    ]
    assert (
        client.post("/api/v1/usage", json={"events": events}, headers=tenant.headers).status_code
        == 201
    )
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 5}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/v1/usage", params=params, headers=tenant.headers).json()
        seen += [e["id"] for e in page["events"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 12
    ana = client.get(
        "/api/v1/usage", params={"user": "ana@example.com"}, headers=tenant.headers
    ).json()
    assert {e["user"] for e in ana["events"]} == {"ana@example.com"} and len(ana["events"]) == 6
    ranged = client.get(
        "/api/v1/usage",
        params={
            "start": "2026-03-03T00:00:00Z",
            "end": "2026-03-06T00:00:00Z",
            "prompt_id": "summarise",
        },
        headers=tenant.headers,
    ).json()
    assert [e["occurred_at"][:10] for e in ranged["events"]] == [
        "2026-03-05",
        "2026-03-04",
        "2026-03-03",
    ]
    mini = client.get(
        "/api/v1/usage", params={"model": "gpt-4o-mini", "team": "research"}, headers=tenant.headers
    )
    assert len(mini.json()["events"]) == 4
    bad = client.get("/api/v1/usage", params={"cursor": "garbage"}, headers=tenant.headers)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "cursor"


def test_organizations_never_see_each_other(
    client: TestClient, tenant: Tenant, database_url: str
) -> None:
    other = create_tenant(database_url)
    client.post("/api/v1/usage", json=event(client_request_id="shared-id"), headers=tenant.headers)
    r = client.post(
        "/api/v1/usage", json=event(client_request_id="shared-id"), headers=other.headers
    )
    assert r.json()["recorded"] == 1  # the same request id in another organization is new
    assert len(client.get("/api/v1/usage", headers=other.headers).json()["events"]) == 1


def test_requests_without_a_valid_key_are_refused(client: TestClient) -> None:
    assert client.get("/api/v1/usage").status_code == 401
    r = client.get("/api/v1/usage", headers={"Authorization": "Bearer llk_nope"})
    assert r.status_code == 401 and r.json()["error"] == "unauthenticated"


def test_time_of_day_prices_survive_the_database(client: TestClient, tenant: Tenant) -> None:
    def total(when: str) -> Decimal:
        r = client.post(
            "/api/v1/usage",
            json=event(model="deepseek-chat", provider="deepseek", occurred_at=when),
            headers=tenant.headers,
        )
        return Decimal(r.json()["events"][0]["cost"]["total"])

    assert total("2026-06-01T20:00:00Z") < total("2026-06-01T10:00:00Z")
