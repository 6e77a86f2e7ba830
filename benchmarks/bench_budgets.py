"""Budget checks per second and a no-overspend run.

1. Checks: one check is a reserve (check-and-hold on every budget line) and its release,
   through `Enforcer` in-process, as the REST endpoints and the gateway make them. Measured
   for the SQL backend on PostgreSQL and for the Redis backend, in one process and in several
   at once; beside it, as the anchor of the same run, the same number of bare Redis round
   trips (EVALSHA of a script that returns 1) as a check makes, so the ratio is our overhead.
2. No overspend: several real server processes take CALLS concurrent reserve→settle requests
   against one hard organization budget that admits only part of them; the spend must stay
   within the limit and use nearly all of it. Exits 1 if it does not.

`python benchmarks/bench_budgets.py --profile` also prints where a Redis check's time goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import io
import multiprocessing
import os
import pstats
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.servers

from tests.servers import server_processes

from server import database

REDIS_URL = os.environ.get("LLMLEDGER_BENCH_REDIS", "redis://127.0.0.1:6379/0")
SECONDS = 3.0  # per measurement
PROCESSES = 4
THREADS = 16  # request threads per process, for the group-commit measurement
AMOUNT = 450_000  # nano-dollars held per check ($0.00045, a small gpt-4o-mini call)
TARGET = 20_000  # Redis checks/s wanted from several processes on a 2-core machine

# The no-overspend run.
SERVERS = 4
CALLS = 256
IN_FLIGHT = 32
LIMIT = Decimal("0.06")  # about 140 of the 256 calls fit
RESERVE = {"model": "gpt-4o-mini", "input_tokens": 1000, "max_output_tokens": 500}


# --- setup ------------------------------------------------------------------------------


def prepare(database_url: str, limit: Decimal | None) -> tuple[int, str]:
    """Migrate, seed prices, create an organization with an API key and, if `limit` is
    given, a hard monthly organization budget. Returns the organization id and the key."""
    from llmledger.accounts.service import create_api_key, create_organization
    from llmledger.budgets.schemas import BudgetIn
    from llmledger.budgets.service import create_budget
    from llmledger.kit.db import make_engine, make_sessionmaker, unit_of_work
    from llmledger.kit.migrate import upgrade_database
    from llmledger.pricing.repository import sync_catalog

    upgrade_database(database_url)
    engine = make_engine(database_url)
    try:
        with unit_of_work(make_sessionmaker(engine)) as session:
            sync_catalog(session)
            org = create_organization(session, f"bench-{uuid.uuid4().hex[:8]}")
            key = create_api_key(session, org).secret
            if limit is not None:
                create_budget(
                    session,
                    org.id,
                    BudgetIn(scope="organization", monthly_limit=limit, action="block"),
                )
            return org.id, key
    finally:
        engine.dispose()


def redis_env(prefix: str) -> dict[str, str]:
    return {
        "LLMLEDGER_BUDGET_BACKEND": "redis",
        "LLMLEDGER_REDIS_URL": REDIS_URL,
        "LLMLEDGER_REDIS_PREFIX": prefix,
    }


@contextlib.contextmanager
def redis_prefix() -> Iterator[str]:
    """A key prefix of the run's own; its keys are deleted afterwards."""
    prefix = f"llmledger-bench-{uuid.uuid4().hex[:10]}"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        client.close()


# --- checks per second ------------------------------------------------------------------


def timed(
    step: Callable[[], object], seconds: float, ready: Any = None, warmup: int = 200
) -> float:
    """Run `step` for about `seconds`, after a warm-up (and after every process is ready,
    if given a barrier); returns runs per second."""
    for _ in range(warmup):  # caches, connections, Redis script loading, the counter row
        step()
    if ready is not None:
        ready.wait()
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(50):
            step()
        done += 50
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def check_step(
    database_url: str, org_id: int, backend: str, prefix: str, store_only: bool = False
) -> tuple[Callable[[], object], Callable[[], None]]:
    """One check (reserve and release, committing after each on the SQL backend) as a
    function, through Enforcer or the counter store alone; and a closer."""
    from llmledger.budgets.backend import make_store
    from llmledger.budgets.enforcement import Call, Enforcer
    from llmledger.budgets.lines import Attribution
    from llmledger.budgets.rules import load_rules
    from llmledger.kit.db import make_engine, make_sessionmaker
    from llmledger.kit.settings import Settings

    settings = Settings(
        database_url=database_url, budget_backend=backend, redis_url=REDIS_URL, redis_prefix=prefix
    )
    engine = make_engine(database_url)
    session = make_sessionmaker(engine)()
    store = make_store(settings)
    enforcer = Enforcer(store, timedelta(minutes=15))
    rules = load_rules(session, org_id)
    who = Attribution(org_id)
    session.commit()

    # The SQL store holds in the caller's transaction, which commits to make the hold seen;
    # the Redis store needs no database work once its counter is in Redis.
    commit = session.commit if backend == "sql" else (lambda: None)

    def enforcer_step() -> object:
        call = Call(rules, who, "UTC", AMOUNT, 1500, datetime.now(UTC))
        decision = enforcer.reserve(session, call)
        commit()
        assert decision.held is not None, decision.reasons
        enforcer.release(session, decision.held)
        commit()
        return decision

    lines = rules.lines(who, datetime.now(UTC), "UTC")

    def store_step() -> object:
        result = store.reserve(
            session, org_id, lines, AMOUNT, datetime.now(UTC) + timedelta(minutes=15)
        )
        commit()
        assert result.held is not None
        store.release(session, result.held)
        commit()
        return result

    def close() -> None:
        session.close()
        engine.dispose()

    return (store_step if store_only else enforcer_step), close


def bare_step() -> tuple[Callable[[], object], Callable[[], None]]:
    """Two bare round trips, as many as a Redis check makes (reserve script, release script);
    the client is configured as the Redis store's is."""
    client = redis.Redis.from_url(
        REDIS_URL, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30
    )
    script = client.register_script("return 1")

    def step() -> object:
        script()
        return script()

    return step, client.close


def timed_threads(step: Callable[[], object], seconds: float, threads: int, ready: Any) -> float:
    """Like `timed`, with `threads` threads of this process calling `step` at once (as a
    server's request threads do); concurrent holds then share Redis round trips."""
    import threading

    for _ in range(200):
        step()
    ready.wait()
    counts = [0] * threads
    deadline = time.perf_counter() + seconds

    def run(index: int) -> None:
        while time.perf_counter() < deadline:
            for _ in range(20):
                step()
            counts[index] += 20

    start = time.perf_counter()
    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(counts) / (time.perf_counter() - start)


def _worker(kind: str, args: tuple[Any, ...], ready: Any, results: Any) -> None:
    if kind == "threads":
        threads, *rest = args
        step, close = check_step(*rest)
        try:
            results.put(timed_threads(step, SECONDS, threads, ready))
        finally:
            close()
        return
    step, close = bare_step() if kind == "bare" else check_step(*args)
    try:
        results.put(timed(step, SECONDS, ready))
    finally:
        close()


def redis_cpu_seconds() -> float:
    client = redis.Redis.from_url(REDIS_URL)
    info = client.info("cpu")
    client.close()
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def parallel(kind: str, args: tuple[Any, ...], processes: int) -> tuple[float, float]:
    """Runs per second of `processes` processes at once, timed from a common start, and the
    Redis server's CPU microseconds per run meanwhile."""
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Barrier(processes + 1)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(kind, args, ready, results)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        ready.wait(timeout=120)
        cpu = redis_cpu_seconds()
        rate = sum(results.get(timeout=120) for _ in workers)
        return rate, (redis_cpu_seconds() - cpu) / (rate * SECONDS) * 1e6
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.terminate()


def round_trips_per_check(step: Callable[[], object], checks: int = 100) -> float:
    """Requests sent to Redis per check, counted on the client side."""
    from redis.connection import AbstractConnection

    for _ in range(200):  # past the first check, which loads the counter into Redis
        step()
    sent = 0
    original = AbstractConnection.send_packed_command

    def counting(self: AbstractConnection, *args: Any, **kwargs: Any) -> None:
        nonlocal sent
        sent += 1
        original(self, *args, **kwargs)

    AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
    try:
        for _ in range(checks):
            step()
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
    return sent / checks


def profile(step: Callable[[], object], checks: int = 3000) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(checks):
        step()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(r"llmledger|redis/client|recv|sendall", 30)
    return out.getvalue()


def single(step: Callable[[], object], close: Callable[[], None]) -> tuple[float, float]:
    """Runs per second in this process, and the Redis server's CPU microseconds per run."""
    try:
        for _ in range(200):
            step()
        cpu = redis_cpu_seconds()
        rate = timed(step, SECONDS, warmup=0)
        return rate, (redis_cpu_seconds() - cpu) / (rate * SECONDS) * 1e6
    finally:
        close()


def bench_checks(show_profile: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp, database("postgresql", tmp) as url:
        org_id, _ = prepare(url, Decimal(1_000_000))

        sql_one, _ = single(*check_step(url, org_id, "sql", "unused"))
        sql_store, _ = single(*check_step(url, org_id, "sql", "unused", store_only=True))
        sql_many, _ = parallel("check", (url, org_id, "sql", "unused"), PROCESSES)
        print(
            f"sql/postgresql: 1 process {sql_one:,.0f} checks/s (reserve+release via "
            f"Enforcer, commit after each) | store alone {sql_store:,.0f} checks/s | "
            f"{PROCESSES} processes {sql_many:,.0f} checks/s (all on one budget row)",
            flush=True,
        )

        with redis_prefix() as prefix:
            step, close = check_step(url, org_id, "redis", prefix)
            trips = round_trips_per_check(step)
            profiled = profile(step) if show_profile else ""
            one, one_cpu = single(step, close)
            store, _ = single(*check_step(url, org_id, "redis", prefix, store_only=True))
            bare, bare_cpu = single(*bare_step())
            print(
                f"redis, 1 process: {one:,.0f} checks/s (reserve+release via Enforcer, "
                f"{trips:g} round trips each, Redis CPU {one_cpu:.0f} us/check) | "
                f"store alone {store:,.0f} checks/s | bare EVALSHA x2 {bare:,.0f}/s "
                f"(Redis CPU {bare_cpu:.0f} us) | ratio {one / bare:.2f}",
                flush=True,
            )
            many, many_cpu = parallel("check", (url, org_id, "redis", prefix), PROCESSES)
            bare_many, bare_many_cpu = parallel("bare", (), PROCESSES)
            verdict = "met" if many >= TARGET else "NOT met"
            print(
                f"redis, {PROCESSES} processes: {many:,.0f} checks/s (Redis CPU "
                f"{many_cpu:.0f} us/check) | bare EVALSHA x2 {bare_many:,.0f}/s "
                f"(Redis CPU {bare_many_cpu:.0f} us) | ratio {many / bare_many:.2f} | "
                f"target {TARGET:,}/s {verdict} ({os.cpu_count()} CPUs shared with Redis)",
                flush=True,
            )
            threaded, threaded_cpu = parallel(
                "threads", (THREADS, url, org_id, "redis", prefix), PROCESSES
            )
            verdict = "met" if threaded >= TARGET else "NOT met"
            print(
                f"redis, {PROCESSES} processes x {THREADS} threads: {threaded:,.0f} checks/s "
                f"(concurrent holds and releases share script calls; Redis CPU "
                f"{threaded_cpu:.0f} us/check) | bare EVALSHA x2, {PROCESSES} processes "
                f"{bare_many:,.0f}/s | ratio {threaded / bare_many:.2f} | "
                f"target {TARGET:,}/s {verdict}",
                flush=True,
            )
            if profiled:
                print(profiled)


# --- no overspend -------------------------------------------------------------------------


@contextlib.contextmanager
def servers(tmp: str, env: dict[str, str]) -> Iterator[list[str]]:
    """SERVERS server processes on Unix sockets; yields the socket paths."""
    with server_processes(Path(tmp), SERVERS, env) as sockets:
        yield sockets


async def race(sockets: list[str], key: str) -> tuple[int, int, Decimal]:
    """CALLS reserve→settle calls, IN_FLIGHT at a time, spread over the servers; each
    settles a little below the worst case it held. Returns allowed, refused, settled cost."""
    allowed = refused = 0
    settled = Decimal(0)
    gate = asyncio.Semaphore(IN_FLIGHT)
    clients = [
        httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=sock),
            base_url="http://server",
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        for sock in sockets
    ]

    async def call(i: int) -> None:
        nonlocal allowed, refused, settled
        client = clients[i % len(clients)]
        async with gate:
            r = await client.post("/api/v1/reservations", json=RESERVE)
            r.raise_for_status()
            decision = r.json()
            if decision["verdict"] == "block":
                refused += 1
                return
            allowed += 1
            usage = {
                "model": RESERVE["model"],
                "input_tokens": RESERVE["input_tokens"],
                "output_tokens": 490 + i % 10,
                "client_request_id": f"call-{i}",
            }
            r = await client.post(
                f"/api/v1/reservations/{decision['reservation_id']}/settle", json=usage
            )
            r.raise_for_status()
            settled += Decimal(r.json()["total_cost"])

    try:
        await asyncio.gather(*(call(i) for i in range(CALLS)))
    finally:
        for client in clients:
            await client.aclose()
    return allowed, refused, settled


def ledger_total(database_url: str, org_id: int) -> Decimal:
    from sqlalchemy import select

    from llmledger.kit.db import make_engine, make_sessionmaker
    from llmledger.models import UsageEvent

    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            costs = session.scalars(
                select(UsageEvent.cost_total).where(UsageEvent.organization_id == org_id)
            )
            return sum((c for c in costs if c is not None), Decimal(0))
    finally:
        engine.dispose()


def no_overspend(label: str, env: dict[str, str]) -> bool:
    with tempfile.TemporaryDirectory() as tmp, database("postgresql", tmp) as url:
        org_id, key = prepare(url, LIMIT)
        with servers(tmp, {"LLMLEDGER_DATABASE_URL": url, **env}) as sockets:
            start = time.perf_counter()
            allowed, refused, settled = asyncio.run(race(sockets, key))
            seconds = time.perf_counter() - start
            with httpx.Client(transport=httpx.HTTPTransport(uds=sockets[0])) as client:
                r = client.get(
                    "http://server/api/v1/budgets", headers={"Authorization": f"Bearer {key}"}
                )
                (line,) = r.json()[0]["status"]
        spent, reserved = Decimal(line["spent"]), Decimal(line["reserved"])
        ledger = ledger_total(url, org_id)
    ok = spent <= LIMIT and ledger <= LIMIT and spent == ledger == settled and reserved == 0
    print(
        f"no-overspend {label}: limit ${LIMIT} | spent ${spent} ({spent / LIMIT:.1%} used, "
        f"ledger ${ledger}) | allowed {allowed}, refused {refused} | {CALLS} reserve→settle "
        f"calls over {SERVERS} server processes, {IN_FLIGHT} in flight, "
        f"{CALLS / seconds:,.0f} calls/s | {'ok' if ok else 'OVER THE LIMIT OR INCONSISTENT'}",
        flush=True,
    )
    return ok


def main() -> int:
    bench_checks(show_profile="--profile" in sys.argv)
    ok = no_overspend("sql/postgresql", {"LLMLEDGER_BUDGET_BACKEND": "sql"})
    with redis_prefix() as prefix:
        ok = no_overspend("redis", redis_env(prefix)) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
