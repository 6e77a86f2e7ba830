"""Pre-run checks and reservations for callers outside the gateway (REST)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from llmledger.accounts.service import Principal
from llmledger.budgets.enforcement import Call, Decision, Enforcer
from llmledger.budgets.rules import find_attribution, load_rules
from llmledger.budgets.schemas import CheckIn, DecisionOut
from llmledger.budgets.service import line_out
from llmledger.core.money import to_nanos
from llmledger.core.pricing import TokenUsage, compute_cost
from llmledger.estimates.calibration import calibrate, load_calibrations
from llmledger.estimates.service import Prompt
from llmledger.kit.schemas import CostOut
from llmledger.kit.settings import Settings
from llmledger.pricing.service import Pricer


def run_check(
    session: Session,
    enforcer: Enforcer,
    pricer: Pricer,
    settings: Settings,
    principal: Principal,
    body: CheckIn,
    *,
    hold: bool,
) -> DecisionOut:
    """The verdict for a call's worst case (input plus max output), holding it if asked."""
    now = datetime.now(UTC)
    quote = pricer.quote(body.model, body.provider, now)
    if body.input_tokens is not None:
        tokens = body.input_tokens
    else:
        counted = Prompt(body.text, body.messages, body.tools).count(
            quote.model if quote else body.model
        )
        if quote is not None:  # corrected as previews are, by what the model's calls showed
            calibrations = load_calibrations(session, principal.organization_id)
            calibration = calibrations.get((quote.provider, quote.model))
            counted = calibrate(counted, calibration)
        tokens = counted.tokens
    who = find_attribution(
        session,
        principal.organization_id,
        principal.api_key_id,
        body.user,
        body.team,
        body.department,
    )
    rules = load_rules(session, principal.organization_id)
    total_tokens = tokens + body.max_output_tokens
    if quote is None:
        unpriced = Call(rules, who, principal.time_zone, 0, total_tokens, now)
        decision = enforcer.check(session, unpriced)
        if settings.unpriced_models == "block":
            decision.escalate(
                "block", f"model {body.model!r} has no price and unpriced models are blocked"
            )
        else:
            decision.reasons.append(f"model {body.model!r} has no price; it is not counted")
        return _out(decision, tokens, body.max_output_tokens, None)
    cost = compute_cost(TokenUsage(tokens, body.max_output_tokens), quote.sheet)
    amount = to_nanos(cost.total, round_up=True)
    call = Call(rules, who, principal.time_zone, amount, total_tokens, now)
    decision = enforcer.reserve(session, call) if hold else enforcer.check(session, call)
    return _out(decision, tokens, body.max_output_tokens, CostOut.of(cost))


def _out(decision: Decision, tokens: int, max_output: int, cost: CostOut | None) -> DecisionOut:
    return DecisionOut(
        verdict=decision.verdict,
        reasons=decision.reasons,
        input_tokens=tokens,
        max_output_tokens=max_output,
        worst_case_cost=cost,
        pricing_status="priced" if cost is not None else "unpriced",
        budgets=[line_out(r) for r in decision.lines],
        reservation_id=decision.held.id if decision.held else None,
        reservation_expires_at=decision.held.expires_at if decision.held else None,
    )
