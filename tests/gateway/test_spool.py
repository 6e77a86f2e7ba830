"""Gateway calls survive a database that is away: the recorder spools them to disk and
records them once the database is back, in the same process or the next one. Replays are
idempotent: a call is never recorded or settled twice."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from llmledger.budgets.backend import make_store
from llmledger.budgets.counters import LineState
from llmledger.budgets.enforcement import Enforcer
from llmledger.budgets.schemas import BudgetIn
from llmledger.budgets.service import create_budget
from llmledger.core.money import to_nanos
from llmledger.core.pricing import TokenUsage
from llmledger.gateway.credentials import set_provider
from llmledger.gateway.flow import Admitted, Attribution, Gateway
from llmledger.gateway.recorder import Recorder
from llmledger.gateway.spool import Finished
from llmledger.kit.db import make_engine, make_sessionmaker, unit_of_work
from llmledger.kit.settings import Settings
from llmledger.models import UsageEvent
from llmledger.pricing.book import PriceBook
from llmledger.pricing.repository import load_catalog
from tests.conftest import Tenant, create_tenant, migrated, new_postgresql_database
from tests.gateway.fake_upstream import UPSTREAM_KEY

# Nothing listens on port 1: every connection is refused at once, as in an outage.
AWAY = "postgresql+psycopg://postgres@127.0.0.1:1/llmledger?connect_timeout=2"


@pytest.fixture(params=["sql", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        request.getfixturevalue("redis_url")
    return str(request.param)


@pytest.fixture
def settings(
    database_url: str, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Settings:
    extra = {}
    if backend == "redis":
        extra = {"redis_prefix": request.getfixturevalue("redis_prefix")}
    return Settings(
        database_url=database_url,
        env="test",
        budget_backend=backend,
        spool_dir=str(tmp_path / "spool"),
        **extra,
    )


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def book(sessions: sessionmaker[Session]) -> PriceBook:
    with unit_of_work(sessions) as session:
        return PriceBook(load_catalog(session))


def _admit_calls(
    gateway: Gateway, tenant: Tenant, sessions: sessionmaker[Session], n: int
) -> list[Admitted]:
    with unit_of_work(sessions) as session:
        set_provider(session, gateway.settings, tenant.org_id, "openai", UPSTREAM_KEY)
        create_budget(
            session, tenant.org_id, BudgetIn(scope="organization", daily_limit=5, action="block")
        )
    return [
        gateway.admit(tenant.key, "openai", "gpt-4o-mini", 100, 200, Attribution(user="ana"))
        for _ in range(n)
    ]


def _finished(gateway: Gateway, admitted: Admitted) -> Finished:
    return gateway.finished(admitted, TokenUsage(100, 150), latency_ms=5)


def _calls_run(
    settings: Settings, sessions: sessionmaker[Session], book: PriceBook, n: int
) -> tuple[Tenant, Enforcer, list[Admitted], list[Finished]]:
    """A new organization with a budget, and `n` of its calls admitted and finished: what a
    gateway hands its recorder."""
    tenant = create_tenant(settings.database_url)
    enforcer = Enforcer(make_store(settings), timedelta(minutes=15))
    gateway = Gateway(sessions, book, enforcer, settings)
    try:
        admitted = _admit_calls(gateway, tenant, sessions, n)
        return tenant, enforcer, admitted, [_finished(gateway, a) for a in admitted]
    finally:
        gateway.close()


def _wait(done: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "the spool was not replayed"
        time.sleep(0.05)


def _ledger(sessions: sessionmaker[Session], tenant: Tenant) -> int:
    with unit_of_work(sessions) as session:
        return int(
            session.scalar(select(func.count()).where(UsageEvent.organization_id == tenant.org_id))
            or 0
        )


def _line(enforcer: Enforcer, sessions: sessionmaker[Session], admitted: Admitted) -> LineState:
    assert admitted.held is not None
    line = admitted.held.lines[0]
    with unit_of_work(sessions) as session:
        return enforcer.store.read(session, [line])[line.key]


def test_calls_spooled_in_an_outage_are_recorded_once_by_the_next_process(
    settings: Settings, sessions: sessionmaker[Session], book: PriceBook, database_url: str
) -> None:
    tenant, enforcer, admitted, calls = _calls_run(settings, sessions, book, 3)
    assert _line(enforcer, sessions, admitted[0]).reserved > 0  # held, not yet settled

    # The database is away: the recorder keeps the calls on disk and ends with them there.
    away = make_engine(AWAY)
    down = Recorder(make_sessionmaker(away), book, enforcer, Path(settings.spool_dir))
    for call in calls:
        down.submit(call)
    down.flush()
    assert len(down.spool.pending) == 3
    down.close()
    away.dispose()
    [left] = list(Path(settings.spool_dir).glob("recorder-*.jsonl"))
    assert _ledger(sessions, tenant) == 0
    # A copy, as if a crash came after a replay wrote the calls but before it said so.
    shutil.copy(left, left.with_name("recorder-copy.jsonl"))

    # The next process takes the file over and records every call, settling each hold.
    for file in (left, left.with_name("recorder-copy.jsonl")):
        up = Recorder(sessions, book, enforcer, Path(settings.spool_dir))
        _wait(lambda r=up, f=file: not r.spool.pending and not f.exists())  # type: ignore[misc]
        up.close()
        state = _line(enforcer, sessions, admitted[0])
        assert _ledger(sessions, tenant) == 3  # the copy's replay recorded nothing again
        with unit_of_work(sessions) as session:
            costs = session.scalars(
                select(UsageEvent.cost_total).where(UsageEvent.organization_id == tenant.org_id)
            ).all()
        assert state.reserved == 0
        assert state.spent == sum(to_nanos(c) for c in costs if c is not None) > 0
    assert list(Path(settings.spool_dir).glob("*.jsonl")) == []


def test_a_spool_file_of_a_live_recorder_is_not_taken(
    settings: Settings, sessions: sessionmaker[Session], book: PriceBook
) -> None:
    tenant, enforcer, _, [call] = _calls_run(settings, sessions, book, 1)
    away = make_engine(AWAY)
    down = Recorder(make_sessionmaker(away), book, enforcer, Path(settings.spool_dir))
    try:
        down.submit(call)
        down.flush()
        other = Recorder(sessions, book, enforcer, Path(settings.spool_dir))
        time.sleep(0.3)
        other.close()
        assert len(down.spool.pending) == 1 and down.spool.path.exists()
        assert _ledger(sessions, tenant) == 0
    finally:
        down.close()
        away.dispose()


@pytest.fixture
def own_postgresql(postgresql_url: str) -> Iterator[str]:
    """A database of this test's own, since the test takes it away for a while."""
    with new_postgresql_database("llmledger_outage") as url:
        yield migrated(url)


def _database_reachable(url: str, reachable: bool) -> None:
    import psycopg

    from tests.conftest import PG_ADMIN

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {str(reachable).lower()}')
        if not reachable:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )


def test_gateway_keeps_serving_through_a_database_outage_and_records_everything_after(
    own_postgresql: str, upstream_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    """PostgreSQL goes away under a gateway with Redis counters: warm calls still run, the
    recorder spools them, and once the database is back they are in the ledger and the
    budget's spend, each once."""
    import httpx
    import openai

    from llmledger.app import create_app
    from tests.gateway.conftest import serve

    settings = Settings(
        database_url=own_postgresql,
        env="test",
        worker_in_process=False,
        openai_base_url=f"{upstream_url}/v1",
        budget_backend="redis",
        redis_prefix=redis_prefix,
        spool_dir=str(tmp_path / "spool"),
    )
    tenant = create_tenant(own_postgresql)
    stranger_tenant = create_tenant(own_postgresql)
    engine = make_engine(own_postgresql)
    with unit_of_work(make_sessionmaker(engine)) as session:
        set_provider(session, settings, tenant.org_id, "openai", UPSTREAM_KEY)
        create_budget(
            session, tenant.org_id, BudgetIn(scope="organization", daily_limit=5, action="block")
        )
    engine.dispose()
    app = create_app(settings)
    with serve(app) as url:
        recorder = app.state.gateway.recorder
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=tenant.key, max_retries=0)
        messages = [{"role": "user", "content": "Say something about budgets."}]

        def call() -> None:
            client.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=50)

        call()
        call()  # the look-ups are cached now
        recorder.flush()
        _database_reachable(own_postgresql, False)
        try:
            for _ in range(3):
                call()
            recorder.flush()
            assert len(recorder.spool.pending) == 3
            # A key not seen before needs the database to be checked: refused, not sent.
            stranger = stranger_tenant.key
            refused = httpx.post(
                f"{url}/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": messages},
                headers={"Authorization": f"Bearer {stranger}"},
            )
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "database_unavailable"
        finally:
            _database_reachable(own_postgresql, True)
        recorder.replay_now()
        _wait(lambda: not recorder.spool.pending)
        events = httpx.get(f"{url}/api/v1/usage", headers=tenant.headers).json()["events"]
        assert len(events) == 5 and len({e["client_request_id"] for e in events}) == 5
        status = httpx.get(f"{url}/api/v1/budgets", headers=tenant.headers).json()[0]["status"][0]
        assert Decimal(status["reserved"]) == 0
        assert Decimal(status["spent"]) == sum(Decimal(e["cost"]["total"]) for e in events)


def test_a_call_the_database_rejects_does_not_hold_back_the_others(
    settings: Settings, sessions: sessionmaker[Session], book: PriceBook, database_url: str
) -> None:
    tenant, enforcer, admitted, calls = _calls_run(settings, sessions, book, 3)
    # An organization the database has never heard of: a foreign key refuses the call.
    ghost = Finished(
        replace(calls[0].principal, organization_id=10**9),
        calls[0].event.model_copy(update={"client_request_id": "gw_ghost"}),
    )
    # The database is up; the ghost shares a batch with good calls (and sorts after them).
    up = Recorder(sessions, book, enforcer, Path(settings.spool_dir), retry_seconds=0.05)
    try:
        for call in [*calls, ghost]:
            up.submit(call)
        up.flush()
        _wait(lambda: _ledger(sessions, tenant) == 3)
        state = _line(enforcer, sessions, admitted[0])
        with unit_of_work(sessions) as session:
            costs = session.scalars(
                select(UsageEvent.cost_total).where(UsageEvent.organization_id == tenant.org_id)
            ).all()
        # Settled once each, though their batch failed and was written again (Redis counters
        # change outside the transaction: a settle before the failure would count twice).
        assert state.reserved == 0
        assert state.spent == sum(to_nanos(c) for c in costs if c is not None)
        # Refused again and again while the database is up: set aside for an operator.
        _wait(lambda: not up.spool.pending)
    finally:
        up.close()
    [kept] = list(Path(settings.spool_dir).glob("rejected-*.jsonl"))
    assert "gw_ghost" in kept.read_text()
    assert list(Path(settings.spool_dir).glob("recorder-*.jsonl")) == []


def test_the_recorder_goes_on_when_the_spool_cannot_be_written(
    settings: Settings, sessions: sessionmaker[Session], book: PriceBook, tmp_path: Path
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    _, enforcer, _, [call] = _calls_run(settings, sessions, book, 1)
    away = make_engine(AWAY)
    down = Recorder(make_sessionmaker(away), book, enforcer, blocked / "spool")
    try:
        for request_id in ("a", "b"):  # the recorder takes the second after the first failed
            down.submit(
                replace(call, event=call.event.model_copy(update={"client_request_id": request_id}))
            )
            flushed = threading.Thread(target=down.flush, daemon=True)
            flushed.start()
            flushed.join(timeout=20)
            assert not flushed.is_alive(), "the recorder stopped taking calls"
        assert len(down.spool.pending) == 2  # waiting in memory
    finally:
        down.close()
        away.dispose()


def test_a_spool_file_torn_by_a_crash_gives_up_only_its_torn_line(
    settings: Settings, sessions: sessionmaker[Session], book: PriceBook, database_url: str
) -> None:
    tenant, enforcer, _, calls = _calls_run(settings, sessions, book, 3)
    spool = Path(settings.spool_dir)
    spool.mkdir(parents=True)
    lines = [json.dumps(call.to_json()) + "\n" for call in calls]
    # Killed while writing a fourth call: three whole lines, then part of one.
    (spool / "recorder-dead.jsonl").write_text("".join(lines) + lines[0][:40])
    up = Recorder(sessions, book, enforcer, spool)
    try:
        _wait(lambda: _ledger(sessions, tenant) == 3)
    finally:
        up.close()
    assert (spool / "recorder-dead.unreadable").read_text() == lines[0][:40] + "\n"
