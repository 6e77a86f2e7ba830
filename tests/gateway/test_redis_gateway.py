"""The gateway with Redis budget counters: once its look-ups are cached, admission holds on
the event loop (no thread, no database), and the budget still holds exactly."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import openai
import pytest

from llmledger.app import create_app
from llmledger.gateway.credentials import set_provider
from llmledger.kit.db import make_engine, make_sessionmaker, unit_of_work
from llmledger.kit.settings import Settings
from tests.conftest import Tenant, create_tenant
from tests.gateway.conftest import Gateway, serve
from tests.gateway.fake_upstream import UPSTREAM_KEY

MESSAGES = [{"role": "user", "content": "Say something about budgets."}]


@pytest.fixture(scope="module")
def redis_gateway(database_url: str, upstream_url: str, redis_url: str) -> Iterator[Gateway]:
    import uuid

    import redis

    prefix = f"llmledger-test-{uuid.uuid4().hex[:10]}"
    settings = Settings(
        database_url=database_url,
        env="test",
        worker_in_process=False,
        openai_base_url=f"{upstream_url}/v1",
        budget_backend="redis",
        redis_url=redis_url,
        redis_prefix=prefix,
    )
    app = create_app(settings)
    with serve(app) as url:
        yield Gateway(url, settings, database_url, app)
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)


def _caller(gateway: Gateway) -> Tenant:
    tenant = create_tenant(gateway.database_url)
    engine = make_engine(gateway.database_url)
    with unit_of_work(make_sessionmaker(engine)) as session:
        set_provider(session, gateway.settings, tenant.org_id, "openai", UPSTREAM_KEY)
    engine.dispose()
    return tenant


def _events(gateway: Gateway, tenant: Tenant) -> list[dict[str, object]]:
    gateway.flush()
    return httpx.get(f"{gateway.url}/api/v1/usage", headers=tenant.headers).json()["events"]


def _admissions(gateway: Gateway) -> tuple[int, int]:
    """How many admissions took the event-loop path and how many the thread path."""
    counts = gateway.app.state.gateway.admissions
    return counts["fast"], counts["thread"]


def test_warm_calls_are_admitted_on_the_event_loop_and_recorded(redis_gateway: Gateway) -> None:
    tenant = _caller(redis_gateway)
    httpx.post(
        f"{redis_gateway.url}/api/v1/budgets",
        json={"scope": "organization", "monthly_limit": "5", "action": "block"},
        headers=tenant.headers,
    )
    client = openai.OpenAI(base_url=f"{redis_gateway.url}/v1", api_key=tenant.key, max_retries=0)
    fast_before, _ = _admissions(redis_gateway)
    for _ in range(5):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=100)
    fast_after, _ = _admissions(redis_gateway)
    assert fast_after - fast_before >= 3  # the first calls warm the caches and counters
    events = _events(redis_gateway, tenant)
    assert len(events) == 5 and all(Decimal(e["cost"]["total"]) > 0 for e in events)
    line = httpx.get(f"{redis_gateway.url}/api/v1/budgets", headers=tenant.headers).json()[0]
    status = line["status"][0]
    assert Decimal(status["reserved"]) == 0
    assert Decimal(status["spent"]) == sum(Decimal(e["cost"]["total"]) for e in events)


def test_concurrent_warm_calls_never_overspend(redis_gateway: Gateway) -> None:
    tenant = _caller(redis_gateway)
    httpx.post(
        f"{redis_gateway.url}/api/v1/budgets",
        json={"scope": "organization", "daily_limit": "0.02", "action": "block"},
        headers=tenant.headers,
    )
    client = openai.OpenAI(base_url=f"{redis_gateway.url}/v1", api_key=tenant.key, max_retries=0)

    def call(_: int) -> bool:
        try:
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=1000)
        except openai.RateLimitError:
            return False
        return True

    call(0)  # warm the caches so the rest race on the event-loop path
    with ThreadPoolExecutor(max_workers=16) as pool:
        allowed = 1 + sum(pool.map(call, range(40)))
    events = _events(redis_gateway, tenant)
    spent = sum(Decimal(e["cost"]["total"]) for e in events)
    assert 1 < allowed < 41 and len(events) == allowed
    assert spent <= Decimal("0.02")
