"""No overspend under concurrency: several real server processes race reserve→settle calls
against one hard organization budget whose limit admits only part of them.

Each server process has its own engine and counter store, as in a deployment with several
workers, so holds compete across processes (PostgreSQL row locks, SQLite's single writer,
Redis scripts). Every call holds its worst case (500 output tokens) and settles a little
below it (490-499 output tokens). Afterwards the budget's spent counter, the usage ledger
and the settled calls must agree, stay within the limit and use nearly all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from llmledger.core.money import from_nanos
from llmledger.kit.db import make_engine, make_sessionmaker, unit_of_work
from llmledger.models import BudgetCounter, UsageEvent
from tests.conftest import Tenant, create_tenant, migrated
from tests.servers import server_processes

PROCESSES = 4
CALLS = 256
IN_FLIGHT = 64  # calls under way at once, spread over the processes (< max_connections)
LIMIT = Decimal("0.06")  # about 140 of the 256 calls fit
RESERVE = {"model": "gpt-4o-mini", "input_tokens": 1000, "max_output_tokens": 500}
STARTUP_SECONDS = 60


@pytest.fixture(scope="module")
def pg_url(postgresql_url: str) -> str:
    return migrated(postgresql_url)


@pytest.fixture(scope="module")
def sqlite_db(sqlite_url: str) -> str:
    return migrated(sqlite_url)


def _transport(socket_path: str) -> httpx.HTTPTransport:
    return httpx.HTTPTransport(uds=socket_path)


@contextlib.contextmanager
def servers(tmp_path: Path, env: dict[str, str]) -> Iterator[list[str]]:
    """PROCESSES server processes on Unix sockets; yields the socket paths."""
    with server_processes(tmp_path, PROCESSES, env, STARTUP_SECONDS) as sockets:
        yield sockets


@dataclass
class Outcome:
    allowed: int = 0
    blocked: int = 0
    worst_case: set[Decimal] = field(default_factory=set)
    settled_costs: list[Decimal] = field(default_factory=list)


async def race(sockets: list[str], tenant: Tenant) -> Outcome:
    outcome = Outcome()
    gate = asyncio.Semaphore(IN_FLIGHT)
    clients = [
        httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=sock),
            base_url="http://server",
            headers=tenant.headers,
            timeout=60,
        )
        for sock in sockets
    ]

    async def call(i: int) -> None:
        client = clients[i % len(clients)]
        async with gate:
            r = await client.post("/api/v1/reservations", json=RESERVE)
            assert r.status_code == 201, r.text
            decision = r.json()
            if decision["verdict"] == "block":
                assert decision["reservation_id"] is None, decision
                outcome.blocked += 1
                return
            assert decision["verdict"] == "allow", decision
            outcome.allowed += 1
            outcome.worst_case.add(Decimal(decision["worst_case_cost"]["total"]))
            await asyncio.sleep(0)  # let other calls interleave between hold and settle
            usage = {
                "model": RESERVE["model"],
                "input_tokens": RESERVE["input_tokens"],
                "output_tokens": 490 + i % 10,  # a bit below the 500 held
                "client_request_id": f"call-{i}",
            }
            r = await client.post(
                f"/api/v1/reservations/{decision['reservation_id']}/settle", json=usage
            )
            assert r.status_code == 200, r.text
            settled = r.json()
            assert settled["recorded"] == 1, settled
            outcome.settled_costs.append(Decimal(settled["total_cost"]))

    try:
        await asyncio.gather(*(call(i) for i in range(CALLS)))
    finally:
        for client in clients:
            await client.aclose()
    return outcome


def ledger(database_url: str, org_id: int, budget_id: int) -> tuple[int, Decimal, int, int]:
    """Usage events and their summed cost, and the database counter's spent and reserved."""
    engine = make_engine(database_url)
    try:
        with unit_of_work(make_sessionmaker(engine)) as session:
            costs = list(
                session.scalars(
                    select(UsageEvent.cost_total).where(UsageEvent.organization_id == org_id)
                )
            )
            spent, reserved = session.execute(
                select(
                    func.sum(BudgetCounter.spent_nanos), func.sum(BudgetCounter.reserved_nanos)
                ).where(BudgetCounter.budget_id == budget_id)
            ).one()
    finally:
        engine.dispose()
    return len(costs), sum(costs, Decimal(0)), int(spent), int(reserved)


def check_round(database_url: str, sockets: list[str]) -> None:
    """One race against a new organization's one hard budget, and the checks after it."""
    tenant = create_tenant(database_url)
    with httpx.Client(
        transport=_transport(sockets[0]), base_url="http://server", headers=tenant.headers
    ) as admin:
        r = admin.post(
            "/api/v1/budgets",
            json={"scope": "organization", "monthly_limit": str(LIMIT), "action": "block"},
        )
        assert r.status_code == 201, r.text
        budget_id = r.json()["id"]

        outcome = asyncio.run(race(sockets, tenant))

        (budget,) = admin.get("/api/v1/budgets").json()
        (line,) = budget["status"]

    spent, reserved = Decimal(line["spent"]), Decimal(line["reserved"])
    settled = sum(outcome.settled_costs, Decimal(0))
    events, ledger_total, db_spent, db_reserved = ledger(database_url, tenant.org_id, budget_id)
    summary = (
        f"limit {LIMIT}, spent {spent}, ledger {ledger_total}, allowed {outcome.allowed}, "
        f"blocked {outcome.blocked}"
    )

    assert outcome.allowed + outcome.blocked == CALLS
    assert outcome.allowed > 0 and outcome.blocked > 0, summary  # the limit bit
    (worst,) = outcome.worst_case
    assert all(cost < worst for cost in outcome.settled_costs)  # each settles below its hold
    # Never over the limit, by any account.
    assert spent <= LIMIT, summary
    assert ledger_total <= LIMIT, summary
    assert from_nanos(db_spent) <= LIMIT, summary
    # Every account agrees with what the settled calls cost, and nothing stays held.
    assert events == outcome.allowed == len(outcome.settled_costs), summary
    assert spent == ledger_total == settled == from_nanos(db_spent), summary
    assert reserved == 0 and db_reserved == 0, summary
    # The limit was used, not refused early: at most a few holds' worth is left over.
    assert spent >= LIMIT * Decimal("0.95"), summary


def run_and_check(tmp_path: Path, database_url: str, env: dict[str, str], rounds: int = 1) -> None:
    with servers(tmp_path, {"LLMLEDGER_DATABASE_URL": database_url, **env}) as sockets:
        for _ in range(rounds):
            check_round(database_url, sockets)


def test_postgresql_sql_backend_never_overspends(tmp_path: Path, pg_url: str) -> None:
    run_and_check(tmp_path, pg_url, {"LLMLEDGER_BUDGET_BACKEND": "sql"})


def test_postgresql_redis_backend_never_overspends(
    tmp_path: Path, pg_url: str, redis_url: str, redis_prefix: str
) -> None:
    import redis

    # Two rounds: a hold slipping between a settle's two Redis steps (the race this guards
    # against) is caught in most rounds, not all.
    run_and_check(
        tmp_path,
        pg_url,
        {
            "LLMLEDGER_BUDGET_BACKEND": "redis",
            "LLMLEDGER_REDIS_URL": redis_url,
            "LLMLEDGER_REDIS_PREFIX": redis_prefix,
        },
        rounds=2,
    )
    # The counters really lived in Redis, under the test's own prefix.
    client = redis.Redis.from_url(redis_url)
    try:
        counters = list(client.scan_iter(f"{redis_prefix}:c:*"))
        assert len(counters) == 2  # one per round's budget
        assert all(int(client.hget(key, "r") or 0) == 0 for key in counters)
    finally:
        client.close()


def test_sqlite_sql_backend_never_overspends(tmp_path: Path, sqlite_db: str) -> None:
    run_and_check(tmp_path, sqlite_db, {"LLMLEDGER_BUDGET_BACKEND": "sql"})
