"""REST endpoints: budgets, allocations, status, checks and reservations."""

from __future__ import annotations

from fastapi import APIRouter, Response

from llmledger.budgets import service
from llmledger.budgets.checks import run_check
from llmledger.budgets.counters import Held
from llmledger.budgets.schemas import (
    AllocationIn,
    AllocationOut,
    BudgetIn,
    BudgetOut,
    BudgetPatch,
    CheckIn,
    DecisionOut,
)
from llmledger.core.money import to_nanos
from llmledger.kit.deps import (
    EnforcerDep,
    PriceBookDep,
    PrincipalDep,
    SessionDep,
    SettingsDep,
)
from llmledger.kit.errors import NotFound
from llmledger.pricing.service import pricer_for
from llmledger.usage.schemas import RecordedBatch, UsageIn
from llmledger.usage.service import record_usage

router = APIRouter(tags=["budgets"])


def _one(
    session: SessionDep, enforcer: EnforcerDep, principal: PrincipalDep, budget_id: int
) -> BudgetOut:
    budget = service.get_budget(session, principal.organization_id, budget_id)
    return service.budget_status(
        session, enforcer.store, principal.organization_id, principal.time_zone, [budget]
    )[0]


@router.post("/budgets", response_model=BudgetOut, status_code=201)
def create_budget(
    body: BudgetIn, session: SessionDep, principal: PrincipalDep, enforcer: EnforcerDep
) -> BudgetOut:
    """Create a budget for a scope: daily and/or monthly limit, thresholds, warn or block."""
    budget = service.create_budget(session, principal.organization_id, body)
    return _one(session, enforcer, principal, budget.id)


@router.get("/budgets", response_model=list[BudgetOut])
def list_budgets(
    session: SessionDep, principal: PrincipalDep, enforcer: EnforcerDep
) -> list[BudgetOut]:
    """Every budget of the organization with its current status."""
    budgets = service.list_budgets(session, principal.organization_id)
    return service.budget_status(
        session, enforcer.store, principal.organization_id, principal.time_zone, budgets
    )


@router.get("/budgets/{budget_id}", response_model=BudgetOut)
def get_budget(
    budget_id: int, session: SessionDep, principal: PrincipalDep, enforcer: EnforcerDep
) -> BudgetOut:
    """One budget: limits, allocations, spent, reserved, remaining, forecast."""
    return _one(session, enforcer, principal, budget_id)


@router.patch("/budgets/{budget_id}", response_model=BudgetOut)
def update_budget(
    budget_id: int,
    body: BudgetPatch,
    session: SessionDep,
    principal: PrincipalDep,
    enforcer: EnforcerDep,
) -> BudgetOut:
    """Change limits, thresholds, action, max tokens or alert recipients."""
    service.update_budget(session, principal.organization_id, budget_id, body, enforcer.store)
    return _one(session, enforcer, principal, budget_id)


@router.delete("/budgets/{budget_id}", status_code=204)
def delete_budget(budget_id: int, session: SessionDep, principal: PrincipalDep) -> Response:
    """Delete a budget with its allocations and counters."""
    service.delete_budget(session, principal.organization_id, budget_id)
    return Response(status_code=204)


@router.put("/budgets/{budget_id}/allocations", response_model=AllocationOut)
def set_allocation(
    budget_id: int,
    body: AllocationIn,
    session: SessionDep,
    principal: PrincipalDep,
    enforcer: EnforcerDep,
) -> AllocationOut:
    """Give a member a share of a team budget (allocations may not add up to more)."""
    allocation = service.set_allocation(
        session,
        principal.organization_id,
        budget_id,
        body.user,
        body.monthly_limit,
        body.daily_limit,
        enforcer.store,
    )
    return AllocationOut(
        id=allocation.id,
        budget_id=budget_id,
        user=body.user,
        monthly_limit=allocation.monthly_limit,
        daily_limit=allocation.daily_limit,
    )


@router.delete("/budgets/{budget_id}/allocations/{allocation_id}", status_code=204)
def delete_allocation(
    budget_id: int, allocation_id: int, session: SessionDep, principal: PrincipalDep
) -> Response:
    """Remove a member's share."""
    service.delete_allocation(session, principal.organization_id, budget_id, allocation_id)
    return Response(status_code=204)


@router.post("/budgets/check", response_model=DecisionOut)
def check(
    body: CheckIn,
    session: SessionDep,
    principal: PrincipalDep,
    enforcer: EnforcerDep,
    book: PriceBookDep,
    settings: SettingsDep,
) -> DecisionOut:
    """Would this call be allowed, warned or blocked now, and by which budgets? Holds nothing."""
    pricer = pricer_for(session, book, principal.organization_id)
    return run_check(session, enforcer, pricer, settings, principal, body, hold=False)


@router.post("/reservations", response_model=DecisionOut, status_code=201)
def reserve(
    body: CheckIn,
    session: SessionDep,
    principal: PrincipalDep,
    enforcer: EnforcerDep,
    book: PriceBookDep,
    settings: SettingsDep,
) -> DecisionOut:
    """Check and hold a call's worst-case cost against every budget that applies."""
    pricer = pricer_for(session, book, principal.organization_id)
    return run_check(session, enforcer, pricer, settings, principal, body, hold=True)


def _held(
    session: SessionDep, enforcer: EnforcerDep, principal: PrincipalDep, hold_id: str
) -> Held:
    held = enforcer.store.held(session, hold_id)
    if held is None or held.organization_id != principal.organization_id:
        raise NotFound(f"no reservation {hold_id}")
    return held


@router.post("/reservations/{reservation_id}/settle", response_model=RecordedBatch)
def settle(
    reservation_id: str,
    body: UsageIn,
    session: SessionDep,
    principal: PrincipalDep,
    enforcer: EnforcerDep,
    book: PriceBookDep,
) -> RecordedBatch:
    """Record the call's actual usage and charge it in place of the hold."""
    held = _held(session, enforcer, principal, reservation_id)
    pricer = pricer_for(session, book, principal.organization_id)
    # The reservation's id keeps a retried settle from recording the call twice.
    request_id = body.client_request_id or f"rsv_{reservation_id}"
    body = body.model_copy(update={"client_request_id": request_id})
    # Budgets created since the hold are charged here; the hold's own lines by the settle.
    covered = {request_id: frozenset(line.identity for line in held.lines)}
    recorded = record_usage(session, pricer, principal, [body], enforcer, covered)
    event = recorded.events[0]
    actual = to_nanos(event.cost.total) if event.cost is not None and not event.duplicate else 0
    enforcer.settle(session, held, actual)
    return recorded


@router.post("/reservations/{reservation_id}/release", status_code=204)
def release(
    reservation_id: str, session: SessionDep, principal: PrincipalDep, enforcer: EnforcerDep
) -> Response:
    """Give a hold back (the call failed or was not made)."""
    held = _held(session, enforcer, principal, reservation_id)
    enforcer.release(session, held)
    return Response(status_code=204)
