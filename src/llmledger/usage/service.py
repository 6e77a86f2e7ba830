"""Record usage with its cost, idempotently on the client's request id; list it."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmledger.accounts.service import Principal, department_ids, team_ids, user_ids
from llmledger.budgets.enforcement import Enforcer
from llmledger.budgets.lines import Attribution, Line, LineIdentity
from llmledger.budgets.rules import load_rules, lock_for_charging
from llmledger.core.money import ZERO, to_nanos
from llmledger.core.pricing import TokenUsage
from llmledger.kit.bulk import insert_returning
from llmledger.kit.schemas import CostOut
from llmledger.models import UsageEvent
from llmledger.pricing.service import Costing, Pricer
from llmledger.usage.schemas import RecordedBatch, RecordedEvent, UsageIn

_COST_COLUMNS = {
    "cost_input": "input",
    "cost_cached_input": "cached_input",
    "cost_cache_write": "cache_write",
    "cost_output": "output",
    "cost_reasoning": "reasoning",
    "cost_request": "request",
    "cost_total": "total",
}


def _cost_columns(costing: Costing) -> dict[str, Any]:
    if costing.cost is None:
        return dict.fromkeys(_COST_COLUMNS)
    parts = costing.cost.as_dict()
    return {column: parts[part] for column, part in _COST_COLUMNS.items()}


def cost_out(row: Any) -> CostOut | None:
    """The stored cost of an event row, or None when it was unpriced."""
    if row.cost_total is None:
        return None
    return CostOut(**{part: getattr(row, column) for column, part in _COST_COLUMNS.items()})


def record_usage(
    session: Session,
    pricer: Pricer,
    principal: Principal,
    events: list[UsageIn],
    enforcer: Enforcer | None = None,
    held: Mapping[str, frozenset[LineIdentity]] | None = None,
) -> RecordedBatch:
    """Price and store a batch in one statement; replays of a request id record nothing.

    With an `enforcer`, each new event's cost is added to the budgets it falls under (in the
    period of its occurred_at), and thresholds it crosses raise alerts. `held` names, per
    request id, the budget lines a hold already covers: the caller settles those, and only
    budgets the hold did not know of (created since) are charged here.
    """
    now = datetime.now(UTC)
    org_id = principal.organization_id
    if enforcer is not None:  # first, before anything it creates (users, teams) can clash
        lock_for_charging(session, org_id)
    users = user_ids(session, org_id, (e.user for e in events))
    teams = team_ids(session, org_id, (e.team for e in events))
    departments = department_ids(session, org_id, (e.department for e in events))

    rows: list[dict[str, Any]] = []
    costings: dict[str, Costing] = {}
    for event in events:
        request_id = event.client_request_id or uuid.uuid4().hex
        if request_id in costings:  # the same request twice in one batch: the first counts
            continue
        occurred = event.occurred_at.astimezone(UTC) if event.occurred_at else now
        usage = TokenUsage(
            event.input_tokens,
            event.output_tokens,
            event.cached_input_tokens,
            event.cache_write_tokens,
            event.reasoning_tokens,
        )
        costing = pricer.cost(event.model, event.provider, usage, occurred)
        costings[request_id] = costing
        quote = costing.quote
        rows.append(
            {
                "organization_id": org_id,
                "user_id": users.get(event.user) if event.user else None,
                "team_id": teams.get(event.team) if event.team else None,
                "department_id": departments.get(event.department) if event.department else None,
                "api_key_id": principal.api_key_id,
                "prompt_id": event.prompt_id,
                "prompt_version": event.prompt_version,
                "provider": costing.provider,
                "model": costing.model,
                "input_tokens": event.input_tokens,
                "cached_input_tokens": event.cached_input_tokens,
                "cache_write_tokens": event.cache_write_tokens,
                "output_tokens": event.output_tokens,
                "reasoning_tokens": event.reasoning_tokens,
                "pricing_status": costing.status,
                **_cost_columns(costing),
                "price_version_id": quote.version_id if quote else None,
                "price_version": quote.version if quote else None,
                "latency_ms": event.latency_ms,
                "status": event.status,
                "source": event.source,
                "tags": event.tags,
                "occurred_at": occurred,
                "recorded_at": now,
                "client_request_id": request_id,
            }
        )

    charges = _budget_charges(session, enforcer, principal, rows, held or {}) if enforcer else {}
    inserted: dict[str, int] = dict(
        insert_returning(session, UsageEvent.__table__, rows, ("client_request_id", "id"))  # type: ignore[arg-type]
    )
    if enforcer is not None and charges:
        amounts = [pair for rid, pairs in charges.items() if rid in inserted for pair in pairs]
        enforcer.add_spend(session, org_id, amounts)
    replayed = [rid for rid in costings if rid not in inserted]
    existing: dict[str, Any] = {}
    if replayed:
        existing = {
            str(row.client_request_id): row
            for row in session.execute(
                select(UsageEvent).where(
                    UsageEvent.organization_id == org_id,
                    UsageEvent.client_request_id.in_(replayed),
                )
            ).scalars()
        }

    out: list[RecordedEvent] = []
    total = ZERO
    for request_id, costing in costings.items():
        if request_id in inserted:
            cost = CostOut.of(costing.cost) if costing.cost else None
            total += costing.cost.total if costing.cost else ZERO
            out.append(
                RecordedEvent.model_construct(
                    id=inserted[request_id],
                    client_request_id=request_id,
                    duplicate=False,
                    provider=costing.provider,
                    model=costing.model,
                    pricing_status="priced" if costing.priced else "unpriced",
                    cost=cost,
                    price_version=costing.quote.version if costing.quote else None,
                )
            )
        else:
            row = existing[request_id]
            out.append(
                RecordedEvent.model_construct(
                    id=row.id,
                    client_request_id=request_id,
                    duplicate=True,
                    provider=row.provider,
                    model=row.model,
                    pricing_status=row.pricing_status,
                    cost=cost_out(row),
                    price_version=row.price_version,
                )
            )
    return RecordedBatch.model_construct(
        recorded=len(inserted),
        duplicates=len(out) - len(inserted),
        total_cost=Decimal(total),
        events=out,
    )


def _budget_charges(
    session: Session,
    enforcer: Enforcer,
    principal: Principal,
    rows: list[dict[str, Any]],
    held: Mapping[str, frozenset[LineIdentity]],
) -> dict[str, list[tuple[Line, int]]]:
    """For each priced row, the budget lines its cost goes to; counters are made ready
    before the rows are inserted (a new counter starts from the ledger's sum)."""
    rules = load_rules(session, principal.organization_id)
    if not rules.budgets:
        return {}
    charges: dict[str, list[tuple[Line, int]]] = {}
    every: dict[tuple[int, int, str], Line] = {}
    for row in rows:
        if row["cost_total"] is None:
            continue
        who = Attribution(
            principal.organization_id,
            row["user_id"],
            row["team_id"],
            row["department_id"],
            row["api_key_id"],
        )
        covered = held.get(row["client_request_id"], frozenset())
        lines = [
            line
            for line in rules.lines(who, row["occurred_at"], principal.time_zone)
            if line.identity not in covered
        ]
        if not lines:
            continue
        nanos = to_nanos(row["cost_total"])
        charges[row["client_request_id"]] = [(line, nanos) for line in lines]
        every.update((line.key, line) for line in lines)
    enforcer.prepare(session, principal.organization_id, list(every.values()))
    return charges
