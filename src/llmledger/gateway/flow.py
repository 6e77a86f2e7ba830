"""The parts of a gateway call that touch the database, run in a worker thread: before
(authenticate, count, price, hold) and after (record usage, settle or release)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.orm import Session, sessionmaker

from llmledger.accounts.service import Principal, authenticate
from llmledger.budgets.counters import Held
from llmledger.budgets.enforcement import Call, Decision, Enforcer
from llmledger.budgets.rules import find_attribution, load_rules
from llmledger.core.money import from_nanos, to_nanos
from llmledger.core.pricing import TokenUsage, compute_cost
from llmledger.gateway.credentials import Upstream, upstream_for
from llmledger.kit.db import unit_of_work
from llmledger.kit.settings import Settings
from llmledger.pricing.book import PriceBook
from llmledger.pricing.repository import load_org_prices
from llmledger.pricing.service import Pricer
from llmledger.usage.schemas import UsageIn
from llmledger.usage.service import record_usage


@dataclass(frozen=True)
class Attribution:
    """Who the call is for, from the optional x-llmledger-* headers."""

    user: str | None = None
    team: str | None = None
    department: str | None = None
    prompt_id: str | None = None
    prompt_version: str | None = None
    tags: dict[str, str] | None = None


@dataclass
class Admitted:
    """A call allowed through: its hold, and what is needed to record it afterwards."""

    principal: Principal
    provider: str
    model: str
    input_tokens: int  # our count, used if the provider reports none
    upstream: Upstream
    decision: Decision
    who: Attribution
    held: Held | None = None
    warnings: list[str] = field(default_factory=list)


class Refused(Exception):
    """The call may not run: a budget blocks it (or the caller is not known)."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def admit(
    sessions: sessionmaker[Session],
    book: PriceBook,
    enforcer: Enforcer,
    settings: Settings,
    secret: str,
    provider: str,
    model: str,
    input_tokens: int,
    max_output_tokens: int,
    who: Attribution,
) -> Admitted:
    """Authenticate, price the worst case, check every budget and hold it; commit the hold."""
    with unit_of_work(sessions) as session:
        principal = authenticate(session, secret)
        if principal is None:
            raise Refused(401, "unknown or revoked llmledger API key", "invalid_api_key")
        upstream = upstream_for(session, settings, principal.organization_id, provider)
        now = datetime.now(UTC)
        pricer = Pricer(book, load_org_prices(session, principal.organization_id))
        quote = pricer.quote(model, provider, now)
        attribution = find_attribution(
            session,
            principal.organization_id,
            principal.api_key_id,
            who.user,
            who.team,
            who.department,
        )
        rules = load_rules(session, principal.organization_id)
        total = input_tokens + max_output_tokens
        amount = 0
        if quote is not None:
            cost = compute_cost(TokenUsage(input_tokens, max_output_tokens), quote.sheet)
            amount = to_nanos(cost.total, round_up=True)
        elif settings.unpriced_models == "block":
            raise Refused(
                403,
                f"model {model!r} has no price and unpriced models are blocked",
                "unpriced_model",
            )
        call = Call(rules, attribution, principal.time_zone, amount, total, now)
        decision = (
            enforcer.reserve(session, call) if quote is not None else enforcer.check(session, call)
        )
        if decision.blocked:
            raise Refused(429, "; ".join(decision.reasons) or "budget exceeded", "budget_exceeded")
        return Admitted(
            principal, provider, model, input_tokens, upstream, decision, who, decision.held
        )


def finish(
    sessions: sessionmaker[Session],
    book: PriceBook,
    enforcer: Enforcer,
    admitted: Admitted,
    usage: TokenUsage,
    latency_ms: int,
    status: str = "success",
) -> Decimal | None:
    """Record the call's usage and settle its hold at the actual cost; returns the cost."""
    with unit_of_work(sessions) as session:
        pricer = Pricer(book, load_org_prices(session, admitted.principal.organization_id))
        who = admitted.who
        event = UsageIn(
            model=admitted.model,
            provider=admitted.provider,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            user=who.user,
            team=who.team,
            department=who.department,
            prompt_id=who.prompt_id,
            prompt_version=who.prompt_version,
            tags=who.tags,
            latency_ms=latency_ms,
            status=status,
            source="gateway",
        )
        # Without a hold the spend is charged like any recorded usage.
        charge = enforcer if admitted.held is None else None
        recorded = record_usage(session, pricer, admitted.principal, [event], charge)
        cost = recorded.events[0].cost
        if admitted.held is not None:
            enforcer.settle(session, admitted.held, to_nanos(cost.total) if cost else 0)
        return cost.total if cost else None


def release(sessions: sessionmaker[Session], enforcer: Enforcer, admitted: Admitted) -> None:
    if admitted.held is None:
        return
    with unit_of_work(sessions) as session:
        enforcer.release(session, admitted.held)


def remaining_after(admitted: Admitted, cost: Decimal | None) -> Decimal | None:
    """The smallest remaining amount over the call's budget lines, after this call."""
    if not admitted.decision.lines:
        return None
    hold = admitted.held.amount if admitted.held else 0
    actual = cost or Decimal(0)
    return min(
        from_nanos(r.line.limit_nanos - r.spent - r.reserved + hold) - actual
        for r in admitted.decision.lines
    )
