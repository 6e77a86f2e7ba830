"""Which budget lines a call counts against.

A line is one limit of one budget (its daily or monthly limit) or of one member's
allocation inside a team budget, in the period that contains the call.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from llmledger.core.money import to_nanos
from llmledger.core.periods import Period, PeriodKind, period_containing
from llmledger.models import Budget, BudgetAllocation

SCOPES = ("organization", "team", "department", "user", "key")
_SCOPE_COLUMNS = {
    "organization": None,
    "team": "team_id",
    "department": "department_id",
    "user": "user_id",
    "key": "api_key_id",
}


@dataclass(frozen=True)
class Attribution:
    """Who a call is charged to. Ids of rows in the caller's organization; None if unknown."""

    organization_id: int
    user_id: int | None = None
    team_id: int | None = None
    department_id: int | None = None
    api_key_id: int | None = None

    def scopes(self) -> set[tuple[str, int]]:
        found = {("organization", self.organization_id)}
        for scope, value in (
            ("user", self.user_id),
            ("team", self.team_id),
            ("department", self.department_id),
            ("key", self.api_key_id),
        ):
            if value is not None:
                found.add((scope, value))
        return found


LineIdentity = tuple[int, int, str]  # budget id, allocation id (0: none), period kind


@dataclass(frozen=True)
class Line:
    budget_id: int
    allocation_id: int  # 0: the budget itself
    period: Period
    limit_nanos: int
    hard: bool
    thresholds: tuple[int, ...]
    label: str  # e.g. "team 'research' monthly budget"
    # Usage-event columns and values that select this line's spend in the ledger.
    ledger_filter: tuple[tuple[str, int], ...] = ()

    @property
    def key(self) -> tuple[int, int, str]:
        return (self.budget_id, self.allocation_id, self.period.key)

    @property
    def identity(self) -> LineIdentity:
        """The line whatever its period: a call that ends in the next period than the one it
        was held in is still the same line's."""
        return (self.budget_id, self.allocation_id, self.period.kind)


@dataclass(frozen=True)
class BudgetSpec:
    """A budget's rules as plain values: safe to cache and share between threads (ORM rows
    are tied to their session and expire with it)."""

    id: int
    organization_id: int
    scope_type: str
    scope_id: int
    daily_limit: Decimal | None
    monthly_limit: Decimal | None
    thresholds: tuple[int, ...]
    action: str
    max_tokens_per_prompt: int | None

    @classmethod
    def of(cls, row: Budget) -> BudgetSpec:
        return cls(
            row.id,
            row.organization_id,
            row.scope_type,
            row.scope_id,
            row.daily_limit,
            row.monthly_limit,
            tuple(row.thresholds),
            row.action,
            row.max_tokens_per_prompt,
        )


@dataclass(frozen=True)
class AllocationSpec:
    id: int
    budget_id: int
    user_id: int
    daily_limit: Decimal | None
    monthly_limit: Decimal | None

    @classmethod
    def of(cls, row: BudgetAllocation) -> AllocationSpec:
        return cls(row.id, row.budget_id, row.user_id, row.daily_limit, row.monthly_limit)


@dataclass(frozen=True)
class BudgetRules:
    """An organization's budgets and allocations, loaded once per request."""

    budgets: Sequence[BudgetSpec]
    allocations: Sequence[AllocationSpec]
    scope_names: dict[tuple[str, int], str]

    def applicable(self, attribution: Attribution) -> list[BudgetSpec]:
        scopes = attribution.scopes()
        return [b for b in self.budgets if (b.scope_type, b.scope_id) in scopes]

    def lines(self, attribution: Attribution, moment: datetime, time_zone: str) -> list[Line]:
        """Every line a call by `attribution` at `moment` counts against."""
        found: list[Line] = []
        for budget in self.applicable(attribution):
            found += self.budget_lines(budget, moment, time_zone, attribution.user_id)
        return sorted(found, key=lambda line: line.key)

    def budget_lines(
        self, budget: BudgetSpec, moment: datetime, time_zone: str, user_id: int | None = -1
    ) -> list[Line]:
        """One budget's own lines plus its allocations' (only `user_id`'s, unless -1: all)."""
        name = self.scope_names.get((budget.scope_type, budget.scope_id), str(budget.scope_id))
        label = f"{budget.scope_type} {name!r}"
        hard = budget.action == "block"
        thresholds = tuple(budget.thresholds)
        scope = _SCOPE_COLUMNS[budget.scope_type]
        ledger = ((scope, budget.scope_id),) if scope else ()
        found = list(
            _limit_lines(budget.id, 0, budget, label, hard, thresholds, moment, time_zone, ledger)
        )
        for allocation in self.allocations:
            if allocation.budget_id != budget.id:
                continue
            if user_id != -1 and allocation.user_id != user_id:
                continue
            found += _limit_lines(
                budget.id,
                allocation.id,
                allocation,
                f"{label} allocation of user {allocation.user_id}",
                hard,
                thresholds,
                moment,
                time_zone,
                (*ledger, ("user_id", allocation.user_id)),
            )
        return found


def _limit_lines(
    budget_id: int,
    allocation_id: int,
    limits: BudgetSpec | AllocationSpec,
    label: str,
    hard: bool,
    thresholds: tuple[int, ...],
    moment: datetime,
    time_zone: str,
    ledger: tuple[tuple[str, int], ...],
) -> Iterable[Line]:
    kinds: tuple[tuple[PeriodKind, Decimal | None], ...] = (
        ("daily", limits.daily_limit),
        ("monthly", limits.monthly_limit),
    )
    for kind, limit in kinds:
        if limit is None:
            continue
        yield Line(
            budget_id,
            allocation_id,
            period_containing(kind, moment, time_zone),
            to_nanos(limit),
            hard,
            thresholds,
            f"{label} {kind} budget",
            ledger,
        )
