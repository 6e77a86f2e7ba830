"""Cost preview through the REST API."""

from __future__ import annotations

from decimal import Decimal

from fastapi.testclient import TestClient

from llmledger import count_messages, count_tokens, count_tools
from tests.conftest import Tenant


def test_estimate_counts_prices_and_suggests_cheaper_models(
    client: TestClient, tenant: Tenant
) -> None:
    text = "Write a haiku about budgets. " * 30
    r = client.post(
        "/api/v1/estimates",
        json={"model": "gpt-4o", "text": text, "max_output_tokens": 500},
        headers=tenant.headers,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["input_tokens"] == count_tokens(text, "gpt-4o")
    assert body["tokens_exact"] is True
    assert body["output_tokens"] == 500
    cost = {k: Decimal(v) for k, v in body["cost"].items()}
    assert cost["total"] == cost["input"] + cost["output"]
    alternatives = body["alternatives"]
    assert 0 < len(alternatives) <= 5
    totals = [Decimal(a["cost"]["total"]) for a in alternatives]
    assert totals == sorted(totals)
    for a in alternatives:
        assert Decimal(a["cost"]["total"]) < cost["total"]
        assert Decimal(a["saving"]) == cost["total"] - Decimal(a["cost"]["total"])
        assert a["context_window"] >= a["input_tokens"] + 500


def test_alternatives_must_fit_the_context_window(client: TestClient, tenant: Tenant) -> None:
    r = client.post(
        "/api/v1/estimates",
        json={"model": "gpt-4.1", "text": "hi", "max_output_tokens": 900_000},
        headers=tenant.headers,
    )
    assert r.status_code == 200
    assert all(a["context_window"] >= 900_000 for a in r.json()["alternatives"])


def test_chat_messages_are_estimated_with_framing(client: TestClient, tenant: Tenant) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello!"}]
    r = client.post(
        "/api/v1/estimates",
        json={"model": "gpt-4o-mini", "messages": messages},
        headers=tenant.headers,
    )
    assert r.status_code == 200
    assert r.json()["input_tokens"] == count_messages(messages, "gpt-4o-mini").tokens


def test_tools_the_prompt_offers_are_part_of_its_input(client: TestClient, tenant: Tenant) -> None:
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    tools = [
        {
            "type": "function",
            "function": {
                "name": "forecast",
                "description": "Weather forecast for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    plain, offered = (
        client.post(
            "/api/v1/estimates",
            json={"model": "gpt-4o-mini", "messages": messages, **extra},
            headers=tenant.headers,
        ).json()
        for extra in ({}, {"tools": tools})
    )
    assert offered["input_tokens"] == plain["input_tokens"] + count_tools(tools).tokens
    assert plain["tokens_exact"] and not offered["tokens_exact"]
    assert Decimal(offered["cost"]["input"]) > Decimal(plain["cost"]["input"])


def test_other_providers_are_estimated_and_say_so(client: TestClient, tenant: Tenant) -> None:
    r = client.post(
        "/api/v1/estimates",
        json={"model": "claude-sonnet-4-5", "text": "Hello there"},
        headers=tenant.headers,
    )
    assert r.status_code == 200
    body = r.json()
    assert body["provider"] == "anthropic"
    assert body["tokens_exact"] is False and body["input_tokens"] > 0 and body["expected_error"] > 0


def test_unknown_model_and_bad_input_name_the_field(client: TestClient, tenant: Tenant) -> None:
    unknown = client.post(
        "/api/v1/estimates", json={"model": "no-such-model", "text": "x"}, headers=tenant.headers
    )
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "model"
    negative = client.post(
        "/api/v1/estimates",
        json={"model": "gpt-4o", "text": "x", "max_output_tokens": -1},
        headers=tenant.headers,
    )
    assert (
        negative.status_code == 422 and negative.json()["errors"][0]["field"] == "max_output_tokens"
    )
    neither = client.post("/api/v1/estimates", json={"model": "gpt-4o"}, headers=tenant.headers)
    assert neither.status_code == 422
