"""Run in a separate process: raise the alerts of one spend change and commit.

Kept apart from the test modules so a spawned process imports only what it needs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from llmledger.alerts.service import alerts_for_spend
from llmledger.budgets.counters import SpendChange
from llmledger.kit.db import make_engine, make_sessionmaker, unit_of_work


def raise_alerts(
    database_url: str, org_id: int, change: SpendChange, start: Any, results: Any
) -> None:
    engine = make_engine(database_url)
    try:
        sessions = make_sessionmaker(engine)
        with engine.connect():  # connect before the race starts, not during it
            pass
        start.wait(timeout=30)
        with unit_of_work(sessions) as session:
            raised = alerts_for_spend(session, org_id, [change], datetime.now(UTC))
        results.put(len(raised))
    finally:
        engine.dispose()
