"""A budget created while usage is being recorded: the usage in flight does not know the
budget, so the budget's counter must start after it, from a ledger that holds it."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from llmledger.accounts.service import authenticate
from llmledger.budgets.backend import make_store
from llmledger.budgets.enforcement import Enforcer
from llmledger.budgets.schemas import BudgetIn, BudgetPatch
from llmledger.budgets.service import budget_status, create_budget, update_budget
from llmledger.core.money import to_nanos
from llmledger.kit.db import make_engine, make_sessionmaker, unit_of_work
from llmledger.kit.settings import Settings
from llmledger.models import Budget
from llmledger.pricing.book import PriceBook
from llmledger.pricing.repository import load_catalog
from llmledger.pricing.service import pricer_for
from llmledger.usage.schemas import UsageIn
from llmledger.usage.service import record_usage
from tests.conftest import Tenant


def test_a_budget_made_while_usage_is_in_flight_counts_that_usage(
    database_url: str, tenant: Tenant
) -> None:
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    store = make_store(Settings(database_url=database_url))
    enforcer = Enforcer(store, timedelta(minutes=15))
    with unit_of_work(sessions) as session:
        book = PriceBook(load_catalog(session))
        principal = authenticate(session, tenant.key)
    assert principal is not None

    def budget_then_status() -> Decimal:
        """Another transaction creates a budget; a third reads its status (which starts its
        counters if nothing has yet)."""
        with unit_of_work(sessions) as session:
            create_budget(session, tenant.org_id, BudgetIn(scope="organization", daily_limit=5))
        with unit_of_work(sessions) as session:
            budgets = list(
                session.scalars(select(Budget).where(Budget.organization_id == tenant.org_id))
            )
            [out] = budget_status(session, store, tenant.org_id, "UTC", budgets)
            return out.status[0].spent

    in_flight = sessions()
    try:
        event = UsageIn(model="gpt-4o", input_tokens=100_000, output_tokens=5_000)
        recorded = record_usage(
            in_flight, pricer_for(in_flight, book, tenant.org_id), principal, [event], enforcer
        )
        with ThreadPoolExecutor(max_workers=1) as pool:
            status = pool.submit(budget_then_status)
            time.sleep(0.5)  # long enough for the budget and its status, had they not waited
            in_flight.commit()
            spent = status.result(timeout=30)
    finally:
        in_flight.close()
        engine.dispose()
    cost = recorded.events[0].cost
    assert cost is not None
    assert to_nanos(spent) == to_nanos(cost.total) > 0


@pytest.fixture(params=["sql", "redis"])
def store_settings(request: pytest.FixtureRequest, database_url: str) -> Settings:
    if request.param == "sql":
        return Settings(database_url=database_url)
    prefix = request.getfixturevalue("redis_prefix")
    return Settings(database_url=database_url, budget_backend="redis", redis_prefix=prefix)


def test_a_limit_turned_off_and_on_again_counts_what_was_spent_meanwhile(
    store_settings: Settings, tenant: Tenant
) -> None:
    engine = make_engine(store_settings.database_url)
    sessions = make_sessionmaker(engine)
    store = make_store(store_settings)
    enforcer = Enforcer(store, timedelta(minutes=15))
    with unit_of_work(sessions) as session:
        book = PriceBook(load_catalog(session))
        principal = authenticate(session, tenant.key)
        assert principal is not None
        budget = create_budget(
            session, tenant.org_id, BudgetIn(scope="organization", monthly_limit=50, daily_limit=5)
        )

    def spend() -> None:
        with unit_of_work(sessions) as session:
            pricer = pricer_for(session, book, tenant.org_id)
            event = UsageIn(model="gpt-4o", input_tokens=100_000, output_tokens=5_000)
            record_usage(session, pricer, principal, [event], enforcer)

    def daily_spent() -> Decimal | None:
        with unit_of_work(sessions) as session:
            budgets = list(session.scalars(select(Budget).where(Budget.id == budget.id)))
            [out] = budget_status(session, store, tenant.org_id, "UTC", budgets)
        return next((line.spent for line in out.status if line.period == "daily"), None)

    spend()
    assert daily_spent() == Decimal("0.3")
    with unit_of_work(sessions) as session:
        update_budget(session, tenant.org_id, budget.id, BudgetPatch(daily_limit=None), store)
    spend()  # while the daily limit is off, only the monthly line counts it
    assert daily_spent() is None
    with unit_of_work(sessions) as session:
        update_budget(session, tenant.org_id, budget.id, BudgetPatch(daily_limit=5), store)
    assert daily_spent() == Decimal("0.6")  # the ledger's, not the counter's stale $0.30
    engine.dispose()
