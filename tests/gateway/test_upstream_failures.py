"""Upstream timeouts and unreachable upstreams: the hold is released, nothing is charged,
and the caller gets an error in the provider's shape."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import httpx
import openai
import pytest

from llmledger.app import create_app
from llmledger.gateway.credentials import set_provider
from llmledger.kit.db import make_engine, make_sessionmaker, unit_of_work
from llmledger.kit.settings import Settings
from tests.conftest import Tenant, create_tenant
from tests.gateway.conftest import serve
from tests.gateway.fake_upstream import UPSTREAM_KEY

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def impatient(database_url: str, upstream_url: str) -> Iterator[tuple[str, Settings]]:
    settings = Settings(
        database_url=database_url,
        env="test",
        worker_in_process=False,
        openai_base_url=f"{upstream_url}/v1",
        upstream_timeout_seconds=0.5,
    )
    with serve(create_app(settings)) as url:
        yield url, settings


def _tenant(database_url: str, settings: Settings, base_url: str | None = None) -> Tenant:
    tenant = create_tenant(database_url)
    engine = make_engine(database_url)
    with unit_of_work(make_sessionmaker(engine)) as session:
        set_provider(session, settings, tenant.org_id, "openai", UPSTREAM_KEY, base_url)
    engine.dispose()
    return tenant


def _budgeted_client(url: str, tenant: Tenant) -> openai.OpenAI:
    """The tenant's SDK client, with a $5 monthly budget whose hold the test watches."""
    httpx.post(
        f"{url}/api/v1/budgets",
        json={"scope": "organization", "monthly_limit": "5"},
        headers=tenant.headers,
    ).raise_for_status()
    return openai.OpenAI(base_url=f"{url}/v1", api_key=tenant.key, max_retries=0)


def _reserved_and_spent(url: str, tenant: Tenant) -> tuple[Decimal, Decimal]:
    line = httpx.get(f"{url}/api/v1/budgets", headers=tenant.headers).json()[0]["status"][0]
    return Decimal(line["reserved"]), Decimal(line["spent"])


def test_a_timeout_releases_the_hold_and_answers_504(
    impatient: tuple[str, Settings], database_url: str
) -> None:
    url, settings = impatient
    tenant = _tenant(database_url, settings)
    client = _budgeted_client(url, tenant)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stop=["SLOW"])
    assert caught.value.status_code == 504
    assert _reserved_and_spent(url, tenant) == (0, 0)
    assert httpx.get(f"{url}/api/v1/usage", headers=tenant.headers).json()["events"] == []


def test_an_unreachable_upstream_answers_502(
    impatient: tuple[str, Settings], database_url: str
) -> None:
    url, settings = impatient
    tenant = _tenant(database_url, settings, base_url="http://127.0.0.1:1/v1")
    client = _budgeted_client(url, tenant)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert _reserved_and_spent(url, tenant) == (0, 0)


def test_a_redirect_is_not_followed_and_releases_the_hold(
    impatient: tuple[str, Settings], database_url: str
) -> None:
    """Following it would resend the provider key to wherever the redirect points."""
    url, settings = impatient
    tenant = _tenant(database_url, settings)
    client = _budgeted_client(url, tenant)
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stop=["REDIRECT"], stream=stream
            )
        assert caught.value.status_code == 502 and "redirect" in caught.value.message
    assert _reserved_and_spent(url, tenant) == (0, 0)


def test_an_organization_without_a_provider_key_is_told_how_to_add_one(
    impatient: tuple[str, Settings], database_url: str
) -> None:
    url, _ = impatient
    tenant = create_tenant(database_url)
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=tenant.key, max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert "providers set" in str(caught.value)


def test_bad_bodies_get_the_providers_error_shape(
    impatient: tuple[str, Settings], database_url: str
) -> None:
    url, settings = impatient
    tenant = _tenant(database_url, settings)
    r = httpx.post(f"{url}/v1/chat/completions", json={"messages": []}, headers=tenant.headers)
    assert r.status_code == 400 and "model" in r.json()["error"]["message"]
    r = httpx.post(f"{url}/v1/messages", content=b"not json", headers=tenant.headers)
    assert r.status_code == 400 and r.json()["type"] == "error"
    for content in (42, {"text": "hi"}):
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": content}]}
        r = httpx.post(f"{url}/v1/chat/completions", json=body, headers=tenant.headers)
        assert r.status_code == 400 and "content" in r.json()["error"]["message"]
    body = {"model": "gpt-4o", "messages": ["hi"]}
    r = httpx.post(f"{url}/v1/chat/completions", json=body, headers=tenant.headers)
    assert r.status_code == 400
