"""Deciding whether a call may run, holding its worst case, and turning holds into spend.

The verdict for a call is the strictest over every line that applies to it:
- block: a hard (action "block") line would go over its limit, or the prompt is larger
  than a hard budget's max-tokens-per-prompt;
- warn: a soft line is or would go over its limit (the product's default: tell the user,
  who may raise the budget or wait), or the prompt exceeds a soft max-tokens limit;
- allow: otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy.orm import Session

from llmledger.alerts.service import alerts_for_spend
from llmledger.budgets.counters import (
    CounterStore,
    Held,
    LineState,
    ReserveResult,
    SpendChange,
    States,
)
from llmledger.budgets.lines import Attribution, BudgetRules, Line
from llmledger.budgets.sql_counters import ensure_counters
from llmledger.core.budget_math import Forecast, forecast, percent_used
from llmledger.core.money import from_nanos

Verdict = Literal["allow", "warn", "block"]
_RANK = {"allow": 0, "warn": 1, "block": 2}


@dataclass(frozen=True)
class Call:
    """A call about to run, as the budgets see it."""

    rules: BudgetRules
    who: Attribution
    time_zone: str
    amount: int  # worst-case cost in nano-dollars
    tokens: int | None  # input plus maximum output, for max-tokens-per-prompt limits
    at: datetime


@dataclass(frozen=True)
class LineReport:
    line: Line
    spent: int
    reserved: int
    percent_used: float
    forecast: Forecast
    over_after: bool  # would this call take the line past its limit

    @property
    def remaining(self) -> int:
        return max(self.line.limit_nanos - self.spent - self.reserved, 0)


@dataclass
class Decision:
    verdict: Verdict = "allow"
    reasons: list[str] = field(default_factory=list)
    lines: list[LineReport] = field(default_factory=list)
    held: Held | None = None

    @property
    def blocked(self) -> bool:
        return self.verdict == "block"

    def escalate(self, verdict: Verdict, reason: str) -> None:
        if _RANK[verdict] > _RANK[self.verdict]:
            self.verdict = verdict
        self.reasons.append(reason)


def _resets(line: Line) -> str:
    return line.period.end.isoformat().replace("+00:00", "Z")


def report(line: Line, state: LineState, amount: int, now: datetime, held: bool) -> LineReport:
    pending = 0 if held else amount  # a hold already counts in `reserved`
    committed = state.spent + state.reserved + pending
    return LineReport(
        line,
        state.spent,
        state.reserved,
        percent_used(state.spent, line.limit_nanos),
        forecast(state.spent, line.limit_nanos, line.period, now),
        committed > line.limit_nanos,
    )


class Enforcer:
    def __init__(self, store: CounterStore, reservation_ttl: timedelta) -> None:
        self.store = store
        self.ttl = reservation_ttl

    def _token_limits(
        self, decision: Decision, rules: BudgetRules, who: Attribution, tokens: int | None
    ) -> None:
        if tokens is None:
            return
        for budget in rules.applicable(who):
            limit = budget.max_tokens_per_prompt
            if limit is not None and tokens > limit:
                name = rules.scope_names.get((budget.scope_type, budget.scope_id), "")
                decision.escalate(
                    "block" if budget.action == "block" else "warn",
                    f"{tokens} tokens exceed the {budget.scope_type} {name!r} limit of "
                    f"{limit} tokens per prompt",
                )

    def _judge(self, decision: Decision, reports: Sequence[LineReport]) -> None:
        decision.lines = list(reports)
        for r in reports:
            if r.over_after:
                usd = from_nanos(r.line.limit_nanos)
                decision.escalate(
                    "block" if r.line.hard else "warn",
                    f"{r.line.label} of ${usd} would be exceeded; it resets at {_resets(r.line)}",
                )

    def _begin(self, call: Call) -> tuple[Decision, list[Line]]:
        decision = Decision()
        self._token_limits(decision, call.rules, call.who, call.tokens)
        return decision, call.rules.lines(call.who, call.at, call.time_zone)

    def check(self, session: Session, call: Call) -> Decision:
        """The verdict the call would get now; holds nothing."""
        decision, lines = self._begin(call)
        states = self.store.read(session, lines)
        reports = [report(ln, states[ln.key], call.amount, call.at, False) for ln in lines]
        self._judge(decision, reports)
        return decision

    def reserve(self, session: Session, call: Call) -> Decision:
        """Hold the call's worst case on every line at once, unless the verdict is block."""
        decision, lines = self._begin(call)
        if decision.blocked:
            return decision
        org_id = call.who.organization_id
        result = self.store.reserve(session, org_id, lines, call.amount, call.at + self.ttl)
        return self._after_hold(decision, lines, result, call)

    async def reserve_fast(self, call: Call) -> Decision | None:
        """`reserve` on the event loop, for stores that can hold without the database
        (Redis); None when this store cannot, and the caller takes the thread path."""
        hold = getattr(self.store, "reserve_async", None)
        if hold is None:
            return None
        decision, lines = self._begin(call)
        if decision.blocked:
            return decision
        org_id = call.who.organization_id
        result = await hold(org_id, lines, call.amount, call.at + self.ttl)
        if result is None:
            return None
        return self._after_hold(decision, lines, result, call)

    def _after_hold(
        self, decision: Decision, lines: list[Line], result: ReserveResult, call: Call
    ) -> Decision:
        states: States = result.states
        held = result.held is not None
        reports = [
            report(ln, states[ln.key], call.amount, call.at, held)
            for ln in lines
            if ln.key in states
        ]
        self._judge(decision, reports)
        if result.blocked_by is not None and not decision.blocked:
            # The line filled up between the hold's refusal and our reading of it.
            decision.escalate("block", f"{result.blocked_by.label} would be exceeded")
        decision.held = result.held
        return decision

    def settle(self, session: Session, held: Held, actual: int) -> list[SpendChange]:
        changes = self.store.settle(session, held, actual)
        alerts_for_spend(session, held.organization_id, changes, datetime.now(UTC))
        return changes

    def settle_many(
        self, session: Session, settlements: Sequence[tuple[Held, int]]
    ) -> list[SpendChange]:
        """Settle many holds; the store sees one organization's at a time."""
        by_org: dict[int, list[tuple[Held, int]]] = {}
        for held, actual in settlements:
            by_org.setdefault(held.organization_id, []).append((held, actual))
        changes: list[SpendChange] = []
        for org_id, mine in by_org.items():
            found = self.store.settle_many(session, mine)
            alerts_for_spend(session, org_id, found, datetime.now(UTC))
            changes += found
        return changes

    def release(self, session: Session, held: Held) -> bool:
        return self.store.release(session, held)

    def prepare(self, session: Session, org_id: int, lines: Sequence[Line]) -> None:
        """Make sure the lines' counters exist. Call before inserting the usage events whose
        spend will be added, since a new counter starts from the ledger's sum."""
        ensure_counters(session, org_id, lines)

    def add_spend(
        self, session: Session, org_id: int, amounts: Sequence[tuple[Line, int]]
    ) -> list[SpendChange]:
        changes = self.store.add_spend(session, org_id, amounts)
        alerts_for_spend(session, org_id, changes, datetime.now(UTC))
        return changes
