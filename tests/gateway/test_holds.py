"""Holds of calls admitted together share one transaction on SQL counters; when the batch
fails, each call is held alone and gets its own answer."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from llmledger.accounts.service import authenticate
from llmledger.budgets.backend import make_store
from llmledger.budgets.enforcement import Call, Decision, Enforcer
from llmledger.budgets.lines import BudgetRules
from llmledger.budgets.rules import find_attribution, load_rules
from llmledger.budgets.schemas import BudgetIn
from llmledger.budgets.service import create_budget
from llmledger.gateway.flow import Gateway
from llmledger.kit.db import make_engine, make_sessionmaker, unit_of_work
from llmledger.kit.settings import Settings
from llmledger.pricing.book import PriceBook
from llmledger.pricing.repository import load_catalog
from tests.conftest import Tenant


def test_a_call_that_fails_in_a_batch_fails_alone(
    database_url: str, tenant: Tenant, tmp_path: Path
) -> None:
    settings = Settings(database_url=database_url, env="test", spool_dir=str(tmp_path))
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    enforcer = Enforcer(make_store(settings), timedelta(minutes=15))
    with unit_of_work(sessions) as session:
        book = PriceBook(load_catalog(session))
        create_budget(session, tenant.org_id, BudgetIn(scope="organization", daily_limit=5))
        principal = authenticate(session, tenant.key)
        assert principal is not None
        rules = load_rules(session, tenant.org_id)
        owner = find_attribution(session, tenant.org_id, principal.api_key_id)
    now = datetime.now(UTC)
    good = Call(rules, owner, "UTC", 1_000_000, 100, now)
    # A budget the database does not have: holding on it breaks a foreign key.
    ghost = BudgetRules([replace(rules.budgets[0], id=10**9)], [], {})
    bad = Call(ghost, owner, "UTC", 1_000_000, 100, now)
    gateway = Gateway(sessions, book, enforcer, settings)
    try:
        first, failed, second = gateway._hold_batch([good, bad, good])
    finally:
        gateway.close()
    assert isinstance(first, Decision) and isinstance(second, Decision)
    assert isinstance(failed, Exception)
    assert first.held is not None and second.held is not None
    [line] = first.held.lines
    with unit_of_work(sessions) as session:
        assert enforcer.store.read(session, [line])[line.key].reserved == 2_000_000
    engine.dispose()
