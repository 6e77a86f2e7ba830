"""Budget administration: create, change, delete budgets and allocations; report status."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmledger.accounts.service import department_ids, team_ids, user_ids
from llmledger.budgets.counters import CounterStore
from llmledger.budgets.enforcement import LineReport, report
from llmledger.budgets.lines import SCOPES, BudgetSpec
from llmledger.budgets.rules import load_rules, lock_for_change, rules_changed, scope_names
from llmledger.budgets.schemas import AllocationOut, BudgetIn, BudgetOut, BudgetPatch, LineOut
from llmledger.budgets.sql_counters import ensure_counters
from llmledger.core.budget_math import DEFAULT_THRESHOLDS
from llmledger.core.money import from_nanos
from llmledger.kit.errors import ApiError, FieldError, NotFound
from llmledger.models import ApiKey, Budget, BudgetAllocation, User


def resolve_scope(session: Session, org_id: int, scope: str) -> tuple[str, int]:
    """("team", 7) for "team:research"; teams, departments and users are created on first
    mention, as usage attribution does; keys must exist."""
    kind, _, name = scope.partition(":")
    kind = {"org": "organization"}.get(kind, kind)
    if kind not in SCOPES:
        raise FieldError("scope", f"unknown scope {scope!r}; use one of {', '.join(SCOPES)}")
    if kind == "organization":
        return kind, org_id
    if not name:
        raise FieldError("scope", f"name the {kind}, e.g. {kind}:NAME")
    if kind == "team":
        return kind, team_ids(session, org_id, [name])[name]
    if kind == "department":
        return kind, department_ids(session, org_id, [name])[name]
    if kind == "user":
        return kind, user_ids(session, org_id, [name])[name]
    key = session.scalar(
        select(ApiKey).where(
            ApiKey.organization_id == org_id,
            (ApiKey.prefix == name) | (ApiKey.id == (int(name) if name.isdigit() else -1)),
        )
    )
    if key is None:
        raise FieldError("scope", f"no API key {name!r} in this organization")
    return kind, key.id


def _owned(session: Session, org_id: int, budget_id: int) -> Budget:
    budget = session.get(Budget, budget_id)
    if budget is None or budget.organization_id != org_id:
        raise NotFound(f"no budget {budget_id} in this organization")
    return budget


def create_budget(session: Session, org_id: int, body: BudgetIn) -> Budget:
    time_zone = lock_for_change(session, org_id)
    scope_type, scope_id = resolve_scope(session, org_id, body.scope)
    exists = session.scalar(
        select(Budget.id).where(
            Budget.organization_id == org_id,
            Budget.scope_type == scope_type,
            Budget.scope_id == scope_id,
        )
    )
    if exists is not None:
        raise ApiError(409, "conflict", f"{body.scope} already has budget {exists}; update it")
    budget = Budget(
        organization_id=org_id,
        scope_type=scope_type,
        scope_id=scope_id,
        daily_limit=body.daily_limit,
        monthly_limit=body.monthly_limit,
        thresholds=body.thresholds or list(DEFAULT_THRESHOLDS),
        action=body.action or "warn",
        max_tokens_per_prompt=body.max_tokens_per_prompt,
        notify_emails=body.notify_emails or [],
    )
    session.add(budget)
    session.flush()
    _start_counters(session, org_id, budget.id, time_zone)
    rules_changed(org_id)
    return budget


def _start_counters(
    session: Session,
    org_id: int,
    budget_id: int,
    time_zone: str,
    store: CounterStore | None = None,
    turned_on: frozenset[tuple[int, str]] = frozenset(),
) -> None:
    """Counters of a budget's current periods, from the ledger's sum, made while usage that
    does not know the budget cannot be in flight (the caller holds `lock_for_change`). Lines
    whose limit was just turned back on (allocation id, period kind) start again: their
    counters missed what was spent while they were off."""
    rules = load_rules(session, org_id)
    [spec] = [b for b in rules.budgets if b.id == budget_id]
    lines = rules.budget_lines(spec, datetime.now(UTC), time_zone)
    ensure_counters(session, org_id, lines)
    again = [ln for ln in lines if (ln.allocation_id, ln.period.kind) in turned_on]
    if again and store is not None:
        store.restart(session, org_id, again)


def _limits_on(limits: object) -> set[str]:
    """The period kinds a budget or allocation has a limit for."""
    return {
        kind
        for kind, name in (("daily", "daily_limit"), ("monthly", "monthly_limit"))
        if getattr(limits, name) is not None
    }


def update_budget(
    session: Session,
    org_id: int,
    budget_id: int,
    body: BudgetPatch,
    store: CounterStore | None = None,
) -> Budget:
    time_zone = lock_for_change(session, org_id)
    budget = _owned(session, org_id, budget_id)
    before = _limits_on(budget)
    for name in body.model_fields_set:
        value = getattr(body, name)
        if name in ("thresholds", "action", "notify_emails") and value is None:
            raise FieldError(name, "cannot be null")
        setattr(budget, name, value)
    limits = (budget.daily_limit, budget.monthly_limit, budget.max_tokens_per_prompt)
    if all(limit is None for limit in limits):
        raise FieldError("monthly_limit", "a budget needs a limit")
    _check_allocations_fit(session, budget)
    session.flush()
    turned_on = frozenset((0, kind) for kind in _limits_on(budget) - before)
    _start_counters(session, org_id, budget.id, time_zone, store, turned_on)
    rules_changed(org_id)
    return budget


def delete_budget(session: Session, org_id: int, budget_id: int) -> None:
    session.delete(_owned(session, org_id, budget_id))
    session.flush()
    rules_changed(org_id)


def _check_allocations_fit(session: Session, budget: Budget) -> None:
    allocations = session.scalars(
        select(BudgetAllocation).where(BudgetAllocation.budget_id == budget.id)
    ).all()
    for field, limit in (
        ("monthly_limit", budget.monthly_limit),
        ("daily_limit", budget.daily_limit),
    ):
        shares = [getattr(a, field) for a in allocations if getattr(a, field) is not None]
        if shares and limit is None:
            raise FieldError(field, f"allocations split the {field}; the budget needs one")
        if shares and limit is not None and sum(shares, Decimal(0)) > limit:
            raise FieldError(
                field, f"allocations add up to ${sum(shares, Decimal(0))}, more than ${limit}"
            )


def set_allocation(
    session: Session,
    org_id: int,
    budget_id: int,
    user: str,
    monthly_limit: Decimal | None,
    daily_limit: Decimal | None,
    store: CounterStore | None = None,
) -> BudgetAllocation:
    """Give a member a share of a team budget (replacing any share they had)."""
    time_zone = lock_for_change(session, org_id)
    budget = _owned(session, org_id, budget_id)
    if budget.scope_type != "team":
        raise FieldError("budget_id", "allocations split a team budget between its members")
    user_id = user_ids(session, org_id, [user])[user]
    allocation = session.scalar(
        select(BudgetAllocation).where(
            BudgetAllocation.budget_id == budget.id, BudgetAllocation.user_id == user_id
        )
    )
    before: set[str] = set()
    if allocation is None:
        allocation = BudgetAllocation(budget_id=budget.id, user_id=user_id)
        session.add(allocation)
    else:
        before = _limits_on(allocation)
    allocation.monthly_limit = monthly_limit
    allocation.daily_limit = daily_limit
    session.flush()
    _check_allocations_fit(session, budget)
    turned_on = frozenset((allocation.id, kind) for kind in _limits_on(allocation) - before)
    _start_counters(session, org_id, budget.id, time_zone, store, turned_on)
    rules_changed(org_id)
    return allocation


def delete_allocation(session: Session, org_id: int, budget_id: int, allocation_id: int) -> None:
    _owned(session, org_id, budget_id)
    allocation = session.get(BudgetAllocation, allocation_id)
    if allocation is None or allocation.budget_id != budget_id:
        raise NotFound(f"no allocation {allocation_id} in budget {budget_id}")
    session.delete(allocation)
    session.flush()
    rules_changed(org_id)


def line_out(r: LineReport) -> LineOut:
    return LineOut(
        label=r.line.label,
        period=r.line.period.kind,
        allocation_id=r.line.allocation_id or None,
        period_start=r.line.period.start,
        period_end=r.line.period.end,
        limit=from_nanos(r.line.limit_nanos),
        spent=from_nanos(r.spent),
        reserved=from_nanos(r.reserved),
        remaining=from_nanos(r.remaining),
        percent_used=round(r.percent_used, 2),
        forecast_spend=from_nanos(r.forecast.projected),
        forecast_limit_reached_at=r.forecast.limit_reached_at,
    )


def budget_status(
    session: Session, store: CounterStore, org_id: int, time_zone: str, budgets: list[Budget]
) -> list[BudgetOut]:
    """Each budget with its allocations and, per line, spent, reserved, remaining, percent
    used, the period's end and the forecast."""
    rules = load_rules(session, org_id)
    now = datetime.now(UTC)
    emails = dict(
        session.execute(select(User.id, User.email).where(User.organization_id == org_id)).all()
    )
    names = scope_names(session, budgets)
    out = []
    for budget in budgets:
        lines = rules.budget_lines(BudgetSpec.of(budget), now, time_zone)
        ensure_counters(session, org_id, lines)
        states = store.read(session, lines)
        allocations = [a for a in rules.allocations if a.budget_id == budget.id]
        out.append(
            BudgetOut(
                id=budget.id,
                scope=_scope_text(budget, names),
                daily_limit=budget.daily_limit,
                monthly_limit=budget.monthly_limit,
                thresholds=list(budget.thresholds),
                action=budget.action,
                max_tokens_per_prompt=budget.max_tokens_per_prompt,
                notify_emails=list(budget.notify_emails or []),
                allocations=[
                    AllocationOut(
                        id=a.id,
                        budget_id=a.budget_id,
                        user=emails.get(a.user_id, str(a.user_id)),
                        monthly_limit=a.monthly_limit,
                        daily_limit=a.daily_limit,
                    )
                    for a in allocations
                ],
                status=[line_out(report(ln, states[ln.key], 0, now, True)) for ln in lines],
            )
        )
    return out


def _scope_text(budget: Budget, names: dict[tuple[str, int], str]) -> str:
    if budget.scope_type == "organization":
        return "organization"
    return f"{budget.scope_type}:{names.get((budget.scope_type, budget.scope_id), budget.scope_id)}"


def list_budgets(session: Session, org_id: int) -> list[Budget]:
    return list(
        session.scalars(select(Budget).where(Budget.organization_id == org_id).order_by(Budget.id))
    )


def get_budget(session: Session, org_id: int, budget_id: int) -> Budget:
    return _owned(session, org_id, budget_id)
