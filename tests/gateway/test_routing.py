"""OpenAI-compatible providers behind the same endpoint: a provider prefix on the model, or
the x-llmledger-provider header, picks the upstream; the call is priced as that provider's."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import httpx
import openai
import pytest

from llmledger.gateway.credentials import set_provider
from llmledger.kit.db import make_engine, make_sessionmaker, unit_of_work
from llmledger.pricing.book import NO_ORG_PRICES
from llmledger.pricing.service import Pricer
from tests.conftest import Tenant, create_tenant
from tests.gateway import fake_upstream
from tests.gateway.conftest import Gateway

MESSAGES = [{"role": "user", "content": "Say something about budgets."}]


def _tenant_with(gateway: Gateway, upstream_url: str, *providers: str) -> Tenant:
    """An organization whose keys for these providers point at the fake upstream."""
    tenant = create_tenant(gateway.database_url)
    engine = make_engine(gateway.database_url)
    with unit_of_work(make_sessionmaker(engine)) as session:
        for provider in providers:
            set_provider(
                session,
                gateway.settings,
                tenant.org_id,
                provider,
                fake_upstream.UPSTREAM_KEY,
                f"{upstream_url}/v1",
            )
    engine.dispose()
    return tenant


def _occurred(event: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(event["occurred_at"]).replace("Z", "+00:00"))


def _events(gateway: Gateway, tenant: Tenant) -> list[dict[str, object]]:
    gateway.flush()
    return httpx.get(f"{gateway.url}/api/v1/usage", headers=tenant.headers).json()["events"]


def test_a_provider_prefix_routes_the_call_and_prices_it_as_that_provider(
    gateway: Gateway, upstream_url: str
) -> None:
    tenant = _tenant_with(gateway, upstream_url, "deepseek")
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=tenant.key, max_retries=0)
    reply = client.chat.completions.create(model="deepseek/deepseek-chat", messages=MESSAGES)
    assert reply.choices[0].message.content
    assert fake_upstream.seen[-1]["model"] == "deepseek-chat"  # sent without the prefix
    [event] = _events(gateway, tenant)
    assert (event["provider"], event["model"]) == ("deepseek", "deepseek-chat")
    usage = fake_upstream.OPENAI_USAGE
    book = gateway.app.state.price_book
    quote = Pricer(book, NO_ORG_PRICES).quote("deepseek-chat", "deepseek", _occurred(event))
    assert quote is not None and event["price_version"] == quote.version
    assert Decimal(event["cost"]["total"]) > 0
    assert event["input_tokens"] == usage["prompt_tokens"]
    # Calls without a prefix still go to OpenAI, which this organization has no key for.
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert "no openai key" in str(caught.value)


def test_a_provider_of_the_organizations_own_is_named_by_header(
    gateway: Gateway, upstream_url: str
) -> None:
    tenant = _tenant_with(gateway, upstream_url, "gpu-box")
    client = openai.OpenAI(
        base_url=f"{gateway.url}/v1",
        api_key=tenant.key,
        max_retries=0,
        default_headers={"x-llmledger-provider": "gpu-box"},
    )
    stream = client.chat.completions.create(
        model="meta-llama/Llama-3.3-70B-Instruct", messages=MESSAGES, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert fake_upstream.seen[-1]["model"] == "meta-llama/Llama-3.3-70B-Instruct"
    [event] = _events(gateway, tenant)
    assert event["provider"] == "gpu-box" and event["model"] == "meta-llama/Llama-3.3-70B-Instruct"
    assert event["pricing_status"] == "unpriced" and event["cost"] is None  # never $0
    # The header wins over a prefix that names a public provider: the model is the server's.
    client.chat.completions.create(model="openai/gpt-oss-120b", messages=MESSAGES)
    assert fake_upstream.seen[-1]["model"] == "openai/gpt-oss-120b"
    assert _events(gateway, tenant)[0]["provider"] == "gpu-box"


def test_models_lists_other_providers_models_by_the_name_that_routes_them(
    gateway: Gateway, upstream_url: str
) -> None:
    tenant = _tenant_with(gateway, upstream_url, "deepseek", "groq")
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=tenant.key, max_retries=0)
    models = {m.id: m.owned_by for m in client.models.list()}
    assert models["deepseek/deepseek-chat"] == "deepseek"
    assert any(name.startswith("groq/") for name in models)
    assert "gpt-4o" not in models


def test_a_price_the_organization_gives_its_own_model_is_charged(
    gateway: Gateway, upstream_url: str
) -> None:
    tenant = _tenant_with(gateway, upstream_url, "gpu-box")
    model = "llama-3.3-70b-internal"
    httpx.post(
        f"{gateway.url}/api/v1/prices/overrides",
        json={
            "provider": "gpu-box",
            "model": model,
            "effective_from": "2020-01-01T00:00:00Z",
            "input_mtok": "0.10",
            "output_mtok": "0.40",
        },
        headers=tenant.headers,
    ).raise_for_status()
    client = openai.OpenAI(
        base_url=f"{gateway.url}/v1",
        api_key=tenant.key,
        max_retries=0,
        default_headers={"x-llmledger-provider": "gpu-box"},
    )
    client.chat.completions.create(model=model, messages=MESSAGES)
    [event] = _events(gateway, tenant)
    usage = fake_upstream.OPENAI_USAGE
    expected = (
        Decimal(usage["prompt_tokens"]) * Decimal("0.10")
        + Decimal(usage["completion_tokens"]) * Decimal("0.40")
    ) / 1_000_000
    assert event["pricing_status"] == "priced"
    assert Decimal(event["cost"]["total"]) == expected
