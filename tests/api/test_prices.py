"""Prices and organization overrides through the REST API."""

from __future__ import annotations

from decimal import Decimal

from fastapi.testclient import TestClient

from tests.conftest import Tenant


def test_catalog_covers_every_provider(client: TestClient, tenant: Tenant) -> None:
    r = client.get("/api/v1/prices", params={"limit": 5000}, headers=tenant.headers)
    assert r.status_code == 200
    body = r.json()
    providers = {p["provider"] for p in body["prices"]}
    assert {"openai", "anthropic", "google", "mistral", "deepseek"} <= providers
    assert body["total"] > 1500


def test_model_lookup_accepts_dated_snapshots_and_shows_history(
    client: TestClient, tenant: Tenant
) -> None:
    r = client.get("/api/v1/prices/openai/gpt-4o-2024-08-06", headers=tenant.headers)
    assert r.status_code == 200
    assert r.json()["model"] == "gpt-4o"
    o3 = client.get("/api/v1/prices/openai/o3", headers=tenant.headers).json()
    assert len(o3["history"]) >= 2
    assert client.get("/api/v1/prices/openai/nope-1", headers=tenant.headers).status_code == 404


def test_discount_override_applies_from_its_date(client: TestClient, tenant: Tenant) -> None:
    def cost_at(when: str) -> Decimal:
        r = client.post(
            "/api/v1/usage",
            json={
                "model": "gpt-4o",
                "input_tokens": 1_000_000,
                "output_tokens": 0,
                "occurred_at": when,
            },
            headers=tenant.headers,
        )
        return Decimal(r.json()["events"][0]["cost"]["total"])

    before = cost_at("2026-02-01T00:00:00Z")
    r = client.post(
        "/api/v1/prices/overrides",
        json={
            "provider": "openai",
            "model": "gpt-4o",
            "discount_percent": "20",
            "effective_from": "2026-03-01T00:00:00Z",
        },
        headers=tenant.headers,
    )
    assert r.status_code == 201, r.text
    assert cost_at("2026-02-15T00:00:00Z") == before
    assert cost_at("2026-03-15T00:00:00Z") == before * Decimal("0.8")


def test_custom_model_gets_priced(client: TestClient, tenant: Tenant) -> None:
    r = client.post(
        "/api/v1/prices/overrides",
        json={
            "provider": "self-hosted",
            "model": "acme-llama-70b",
            "input_mtok": "0.4",
            "output_mtok": "0.8",
            "context_window": 32000,
            "effective_from": "2026-01-01T00:00:00Z",
        },
        headers=tenant.headers,
    )
    assert r.status_code == 201 and r.json()["source"] == "custom"
    used = client.post(
        "/api/v1/usage",
        json={"model": "acme-llama-70b", "input_tokens": 1_000_000, "output_tokens": 1_000_000},
        headers=tenant.headers,
    ).json()["events"][0]
    assert used["pricing_status"] == "priced"
    assert Decimal(used["cost"]["total"]) == Decimal("1.2")
    listed = client.get("/api/v1/prices/overrides", headers=tenant.headers).json()
    assert [p["model"] for p in listed] == ["acme-llama-70b"]
    # The override was used, so it cannot be deleted any more.
    assert (
        client.delete(
            f"/api/v1/prices/overrides/{listed[0]['id']}", headers=tenant.headers
        ).status_code
        == 409
    )


def test_bad_override_names_the_field(client: TestClient, tenant: Tenant) -> None:
    r = client.post(
        "/api/v1/prices/overrides",
        json={"provider": "openai", "model": "gpt-4o", "input_mtok": "-1"},
        headers=tenant.headers,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "input_mtok"
    r = client.post(
        "/api/v1/prices/overrides", json={"provider": "x", "model": "y"}, headers=tenant.headers
    )
    assert r.status_code == 422


def test_health_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    spec = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/usage" in spec["paths"] and "/api/v1/estimates" in spec["paths"]
