"""Choosing the counter store, and what happens when Redis cannot be reached."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

import redis
import redis.asyncio
from sqlalchemy.orm import Session

from llmledger.budgets.counters import CounterStore, Held, ReserveResult, SpendChange, States
from llmledger.budgets.lines import Line
from llmledger.budgets.redis_counters import RedisCounterStore
from llmledger.budgets.sql_counters import SqlCounterStore
from llmledger.kit.errors import ApiError
from llmledger.kit.settings import Settings

T = TypeVar("T")


class BudgetBackendUnavailable(ApiError):
    def __init__(self) -> None:
        super().__init__(
            503,
            "budget_backend_unavailable",
            "budget counters (Redis) are unreachable, so calls are refused until they are "
            "back; set LLMLEDGER_REDIS_UNAVAILABLE=database to fall back to the database",
        )


class RedisWithFallback:
    """Redis counters; on a Redis error either refuse (fail closed) or use the database.

    Spend is always written to the database's counters too, so falling back loses no spend;
    holds taken in Redis before the outage are not seen by the database meanwhile. Redis
    counters this process added spend to while Redis was down are dropped when it returns,
    so they are rebuilt from the database.
    """

    name = "redis"

    def __init__(self, primary: RedisCounterStore, sql: SqlCounterStore, fail_closed: bool) -> None:
        self.primary = primary
        self.sql = sql
        self.fail_closed = fail_closed
        self._stale: set[str] = set()
        self._lock = threading.Lock()

    def _run(
        self, on_redis: Callable[[], T], on_sql: Callable[[], T], touched: Sequence[Line] = ()
    ) -> T:
        try:
            self._forget_stale()
            return on_redis()
        except redis.RedisError:
            if self.fail_closed:
                raise BudgetBackendUnavailable() from None
            with self._lock:
                self._stale.update(self.primary.counter_key(line) for line in touched)
            return on_sql()

    def _forget_stale(self) -> None:
        if self._stale:
            with self._lock:
                stale, self._stale = self._stale, set()
            self.primary.client.delete(*stale)

    def reserve(
        self,
        session: Session,
        org_id: int,
        lines: Sequence[Line],
        amount: int,
        expires_at: datetime,
    ) -> ReserveResult:
        return self._run(
            lambda: self.primary.reserve(session, org_id, lines, amount, expires_at),
            lambda: self.sql.reserve(session, org_id, lines, amount, expires_at),
        )

    async def reserve_async(
        self, org_id: int, lines: Sequence[Line], amount: int, expires_at: datetime
    ) -> ReserveResult | None:
        """The event-loop hold; None (use the thread path) if Redis fails or lacks a counter,
        so failing closed or falling back stays in one place."""
        if self._stale:
            return None
        try:
            return await self.primary.reserve_async(org_id, lines, amount, expires_at)
        except redis.RedisError:
            return None

    def settle(self, session: Session, held: Held, actual: int) -> list[SpendChange]:
        if held.backend == "sql":
            return self.sql.settle(session, held, actual)
        return self._run(
            lambda: self.primary.settle(session, held, actual),
            lambda: self.sql.add_spend(
                session, held.organization_id, [(ln, actual) for ln in held.lines]
            ),
            held.lines,
        )

    def settle_many(
        self, session: Session, settlements: Sequence[tuple[Held, int]]
    ) -> list[SpendChange]:
        in_sql = [(h, a) for h, a in settlements if h.backend == "sql"]
        in_redis = [(h, a) for h, a in settlements if h.backend != "sql"]
        changes = self.sql.settle_many(session, in_sql) if in_sql else []
        if in_redis:
            changes += self._run(
                lambda: self.primary.settle_many(session, in_redis),
                lambda: self.sql.add_spend(
                    session,
                    in_redis[0][0].organization_id,
                    [(ln, a) for h, a in in_redis for ln in h.lines],
                ),
                [ln for h, _ in in_redis for ln in h.lines],
            )
        return changes

    def release(self, session: Session, held: Held) -> bool:
        if held.backend == "sql":
            return self.sql.release(session, held)
        return self._run(lambda: self.primary.release(session, held), lambda: False)

    def restart(self, session: Session, org_id: int, lines: Sequence[Line]) -> None:
        self._run(
            lambda: self.primary.restart(session, org_id, lines),
            lambda: self.sql.restart(session, org_id, lines),
            lines,
        )

    def add_spend(
        self, session: Session, org_id: int, amounts: Sequence[tuple[Line, int]]
    ) -> list[SpendChange]:
        return self._run(
            lambda: self.primary.add_spend(session, org_id, amounts),
            lambda: self.sql.add_spend(session, org_id, amounts),
            [line for line, _ in amounts],
        )

    def read(self, session: Session, lines: Sequence[Line]) -> States:
        return self._run(
            lambda: self.primary.read(session, lines), lambda: self.sql.read(session, lines)
        )

    def expire_due(self, session: Session, now: datetime) -> int:
        return self._run(
            lambda: self.primary.expire_due(session, now), lambda: self.sql.expire_due(session, now)
        )

    def held(self, session: Session, hold_id: str) -> Held | None:
        found = self.sql.held(session, hold_id)
        if found is not None:
            return found
        return self._run(lambda: self.primary.held(hold_id), lambda: None)


def make_store(settings: Settings) -> CounterStore:
    sql = SqlCounterStore()
    if settings.budget_backend == "sql":
        return sql
    client = redis.Redis.from_url(
        settings.redis_url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30
    )
    aclient = redis.asyncio.Redis.from_url(
        settings.redis_url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30
    )
    primary = RedisCounterStore(client, settings.redis_prefix, sql, aclient)
    return RedisWithFallback(primary, sql, settings.redis_unavailable == "fail_closed")
