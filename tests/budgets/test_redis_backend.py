"""The Redis counter backend against a real Redis, and what happens when Redis is down."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
import redis
from fastapi.testclient import TestClient

from llmledger.app import create_app
from llmledger.kit.settings import Settings
from tests.conftest import Tenant, create_tenant

CALL = {"model": "gpt-4o", "input_tokens": 100_000, "max_output_tokens": 10_000}  # $0.35


def _client(database_url: str, **settings: object) -> TestClient:
    return TestClient(
        create_app(
            Settings(database_url=database_url, env="test", worker_in_process=False, **settings)
        )
    )


@pytest.fixture
def redis_client(database_url: str, redis_url: str, redis_prefix: str) -> Iterator[TestClient]:
    with _client(
        database_url, budget_backend="redis", redis_url=redis_url, redis_prefix=redis_prefix
    ) as c:
        yield c


def _line(client: TestClient, tenant: Tenant, budget_id: int) -> dict[str, str]:
    return client.get(f"/api/v1/budgets/{budget_id}", headers=tenant.headers).json()["status"][0]


def test_redis_holds_settles_and_refuses(redis_client: TestClient, database_url: str) -> None:
    tenant = create_tenant(database_url)
    budget = redis_client.post(
        "/api/v1/budgets",
        json={"scope": "organization", "monthly_limit": "1.00", "action": "block"},
        headers=tenant.headers,
    ).json()
    held = [
        redis_client.post("/api/v1/reservations", json=CALL, headers=tenant.headers).json()
        for _ in range(3)
    ]
    assert [h["verdict"] for h in held] == ["allow", "allow", "block"]
    assert Decimal(_line(redis_client, tenant, budget["id"])["reserved"]) == Decimal("0.70")

    r = redis_client.post(
        f"/api/v1/reservations/{held[0]['reservation_id']}/settle",
        json={"model": "gpt-4o", "input_tokens": 100_000, "output_tokens": 2_000},
        headers=tenant.headers,
    )
    assert r.status_code == 200, r.text
    redis_client.post(
        f"/api/v1/reservations/{held[1]['reservation_id']}/release", headers=tenant.headers
    )
    line = _line(redis_client, tenant, budget["id"])
    assert Decimal(line["spent"]) == Decimal("0.27") and Decimal(line["reserved"]) == 0


def test_redis_counters_are_rebuilt_from_the_database(
    redis_client: TestClient, database_url: str, redis_url: str, redis_prefix: str
) -> None:
    tenant = create_tenant(database_url)
    budget = redis_client.post(
        "/api/v1/budgets",
        json={"scope": "organization", "monthly_limit": "1.00"},
        headers=tenant.headers,
    ).json()
    redis_client.post(
        "/api/v1/usage", json={"model": "gpt-4o", "input_tokens": 100_000}, headers=tenant.headers
    )
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{redis_prefix}:c:{budget['id']}:*"))
    assert keys, "spend should have reached Redis"
    client.delete(*keys)  # as if Redis had restarted empty
    redis_client.post(
        "/api/v1/usage", json={"model": "gpt-4o", "input_tokens": 100_000}, headers=tenant.headers
    )
    assert Decimal(_line(redis_client, tenant, budget["id"])["spent"]) == Decimal("0.50")
    assert int(client.hget(keys[0], "s") or 0) == 500_000_000  # nano-dollars


def test_expired_holds_are_given_back(redis_client: TestClient, database_url: str) -> None:
    from datetime import UTC, datetime, timedelta

    from llmledger.alerts.worker import run_once
    from llmledger.kit.db import unit_of_work

    tenant = create_tenant(database_url)
    budget = redis_client.post(
        "/api/v1/budgets",
        json={"scope": "organization", "monthly_limit": "1.00", "action": "block"},
        headers=tenant.headers,
    ).json()
    redis_client.post("/api/v1/reservations", json=CALL, headers=tenant.headers)
    app = redis_client.app
    store = app.state.enforcer.store  # type: ignore[attr-defined]
    # Other tests' holds may share the database, so look at this budget, not at counts.
    with unit_of_work(app.state.sessions) as session:  # type: ignore[attr-defined]
        store.expire_due(session, datetime.now(UTC))
    assert Decimal(_line(redis_client, tenant, budget["id"])["reserved"]) == Decimal("0.35")
    with unit_of_work(app.state.sessions) as session:  # type: ignore[attr-defined]
        assert store.expire_due(session, datetime.now(UTC) + timedelta(hours=1)) >= 1
    assert Decimal(_line(redis_client, tenant, budget["id"])["reserved"]) == 0
    assert "reservations_expired" in run_once(app.state.sessions, store, app.state.settings)  # type: ignore[attr-defined]


def test_unreachable_redis_fails_closed_with_a_clear_503(database_url: str) -> None:
    tenant = create_tenant(database_url)
    with _client(database_url, budget_backend="redis", redis_url="redis://127.0.0.1:1/0") as client:
        client.post(
            "/api/v1/budgets",
            json={"scope": "organization", "monthly_limit": "1"},
            headers=tenant.headers,
        )
        r = client.post("/api/v1/reservations", json=CALL, headers=tenant.headers)
        assert r.status_code == 503
        assert r.json()["error"] == "budget_backend_unavailable"
        assert "LLMLEDGER_REDIS_UNAVAILABLE" in r.json()["message"]


def test_unreachable_redis_can_fall_back_to_the_database(database_url: str) -> None:
    tenant = create_tenant(database_url)
    settings = {
        "budget_backend": "redis",
        "redis_url": "redis://127.0.0.1:1/0",
        "redis_unavailable": "database",
    }
    with _client(database_url, **settings) as client:
        budget = client.post(
            "/api/v1/budgets",
            json={"scope": "organization", "monthly_limit": "1.00", "action": "block"},
            headers=tenant.headers,
        ).json()
        held = [
            client.post("/api/v1/reservations", json=CALL, headers=tenant.headers).json()
            for _ in range(3)
        ]
        assert [h["verdict"] for h in held] == ["allow", "allow", "block"]
        r = client.post(
            f"/api/v1/reservations/{held[0]['reservation_id']}/settle",
            json={"model": "gpt-4o", "input_tokens": 100_000, "output_tokens": 2_000},
            headers=tenant.headers,
        )
        assert r.status_code == 200
        line = _line(client, tenant, budget["id"])
        assert Decimal(line["spent"]) == Decimal("0.27") and Decimal(line["reserved"]) == Decimal(
            "0.35"
        )


def test_concurrent_holds_in_one_process_never_overspend(
    database_url: str, redis_url: str, redis_prefix: str
) -> None:
    """Threads of one process share script calls (group commit); the limit still holds."""
    import threading
    from datetime import UTC, datetime, timedelta

    from llmledger.budgets.backend import make_store
    from llmledger.budgets.enforcement import Call, Enforcer
    from llmledger.budgets.lines import Attribution
    from llmledger.budgets.rules import load_rules
    from llmledger.kit.db import make_engine, make_sessionmaker, unit_of_work

    tenant = create_tenant(database_url)
    with _client(
        database_url, budget_backend="redis", redis_url=redis_url, redis_prefix=redis_prefix
    ) as c:
        c.post(
            "/api/v1/budgets",
            json={"scope": "organization", "monthly_limit": "1.00", "action": "block"},
            headers=tenant.headers,
        )
    settings = Settings(
        database_url=database_url,
        budget_backend="redis",
        redis_url=redis_url,
        redis_prefix=redis_prefix,
    )
    enforcer = Enforcer(make_store(settings), timedelta(minutes=15))
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    with unit_of_work(sessions) as session:
        rules = load_rules(session, tenant.org_id)
    amount = 30_000_000  # $0.03: 33 of them fit in $1.00
    allowed: list[int] = []
    start = threading.Barrier(16)

    def worker() -> None:
        start.wait()
        for _ in range(5):
            with unit_of_work(sessions) as session:
                call = Call(
                    rules, Attribution(tenant.org_id), "UTC", amount, None, datetime.now(UTC)
                )
                if enforcer.reserve(session, call).held is not None:
                    allowed.append(1)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.dispose()
    assert len(allowed) == 33  # 80 tried; exactly as many as fit


@pytest.mark.parametrize("backend", ["sql", "redis"])
def test_settling_many_holds_at_once_charges_each_exactly(
    backend: str, database_url: str, redis_url: str, redis_prefix: str
) -> None:
    """The gateway's recorder settles in batches: one round trip, one update per line."""
    from datetime import UTC, datetime, timedelta

    from llmledger.budgets.backend import make_store
    from llmledger.budgets.enforcement import Call, Enforcer
    from llmledger.budgets.lines import Attribution
    from llmledger.budgets.rules import load_rules
    from llmledger.kit.db import make_engine, make_sessionmaker, unit_of_work

    tenant = create_tenant(database_url)
    settings = Settings(
        database_url=database_url,
        budget_backend=backend,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
    )
    with _client(
        database_url, **settings.model_dump(include={"budget_backend", "redis_url", "redis_prefix"})
    ) as c:
        budget = c.post(
            "/api/v1/budgets",
            json={"scope": "organization", "monthly_limit": "10", "action": "block"},
            headers=tenant.headers,
        ).json()
        engine = make_engine(database_url)
        sessions = make_sessionmaker(engine)
        enforcer = Enforcer(make_store(settings), timedelta(minutes=15))
        with unit_of_work(sessions) as session:
            rules = load_rules(session, tenant.org_id)
        holds = []
        for _ in range(20):
            with unit_of_work(sessions) as session:
                call = Call(
                    rules, Attribution(tenant.org_id), "UTC", 50_000_000, None, datetime.now(UTC)
                )
                decision = enforcer.reserve(session, call)
                assert decision.held is not None
                holds.append(decision.held)
        with unit_of_work(sessions) as session:
            enforcer.settle_many(session, [(h, 30_000_000) for h in holds])
        engine.dispose()
        line = _line(c, tenant, budget["id"])
        assert Decimal(line["spent"]) == Decimal("0.60")  # 20 x $0.03
        assert Decimal(line["reserved"]) == 0
