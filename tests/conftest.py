"""Test fixtures: real SQLite and PostgreSQL databases, migrated once per test session.

Each test works inside an organization of its own (every query is scoped to one), so tests
share a database without seeing each other's data. PostgreSQL databases are created by the
suite under a unique name and dropped at the end; nothing else on the server is touched.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

import psycopg
import pytest
from fastapi.testclient import TestClient
from hypothesis import settings

from llmledger.accounts.service import create_api_key, create_organization
from llmledger.app import create_app
from llmledger.kit.db import make_engine, make_sessionmaker, unit_of_work
from llmledger.kit.migrate import upgrade_database
from llmledger.kit.settings import Settings
from llmledger.pricing.repository import sync_catalog
from tests import servers

# Property tests explore at random while developing; under CI they replay a fixed sequence
# so a landing never depends on luck (failures found locally are kept in .hypothesis/).
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI", "").lower() in ("1", "true", "yes") else "dev")

PG_ADMIN = os.environ.get("LLMLEDGER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _postgres_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def new_postgresql_database(
    prefix: str = "llmledger_test",
) -> AbstractContextManager[str]:
    """A PostgreSQL database of the caller's own, dropped afterwards."""
    return servers.new_postgresql_database(PG_ADMIN, prefix)


def migrated(url: str) -> str:
    """The database migrated and its price catalog seeded."""
    upgrade_database(url)
    engine = make_engine(url)
    with unit_of_work(make_sessionmaker(engine)) as session:
        sync_catalog(session)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    if not _postgres_available():
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI and is not reachable at {PG_ADMIN}")
        pytest.skip("PostgreSQL is not reachable")
    with new_postgresql_database() as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'llmledger.db'}"


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """A migrated database with the price catalog seeded; the suite runs once per engine."""
    return migrated(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture(scope="session")
def client(database_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=database_url, env="test"))
    with TestClient(app) as test_client:
        yield test_client


@dataclass
class Tenant:
    """An organization of the test's own and an API key for it."""

    org_id: int
    name: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def create_tenant(database_url: str, time_zone: str = "UTC", plan: str = "enterprise") -> Tenant:
    engine = make_engine(database_url)
    try:
        with unit_of_work(make_sessionmaker(engine)) as session:
            org = create_organization(session, f"org-{uuid.uuid4().hex[:10]}", time_zone, plan)
            issued = create_api_key(session, org)
            return Tenant(org.id, org.name, issued.secret)
    finally:
        engine.dispose()


@pytest.fixture
def tenant(database_url: str) -> Tenant:
    return create_tenant(database_url)


REDIS_URL = os.environ.get("LLMLEDGER_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError:
        if IN_CI:
            pytest.fail(f"Redis is required under CI and is not reachable at {REDIS_URL}")
        pytest.skip("Redis is not reachable")
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of the test's own; its keys are deleted afterwards."""
    import redis

    prefix = f"llmledger-test-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)
