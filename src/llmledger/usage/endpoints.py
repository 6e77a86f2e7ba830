"""REST endpoints of the usage ledger."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response
from pydantic import AwareDatetime, TypeAdapter, ValidationError

from llmledger.kit.deps import EnforcerDep, PriceBookDep, PrincipalDep, SessionDep
from llmledger.kit.errors import ApiError, field_errors
from llmledger.pricing.service import pricer_for
from llmledger.usage import repository, service
from llmledger.usage.schemas import (
    MAX_BATCH,
    RecordedBatch,
    UsageBatchIn,
    UsageEventOut,
    UsageIn,
    UsagePage,
)

router = APIRouter(prefix="/usage", tags=["usage"])

_one = TypeAdapter(UsageIn)
_batch = TypeAdapter(UsageBatchIn)


def _parse(body: Any) -> list[UsageIn]:
    """One event, or {"events": [...]} of up to 1,000; any bad event rejects the whole body."""
    if isinstance(body, dict) and "events" in body:
        events = body["events"]
        if isinstance(events, list) and len(events) > MAX_BATCH:
            raise ApiError(
                422,
                "invalid_request",
                f"events: at most {MAX_BATCH} events per batch, got {len(events)}",
                [{"field": "events", "message": f"at most {MAX_BATCH} events per batch"}],
            )
        try:
            return _batch.validate_python(body).events
        except ValidationError as exc:
            raise _invalid(exc) from None
    try:
        return [_one.validate_python(body)]
    except ValidationError as exc:
        raise _invalid(exc) from None


def _invalid(exc: ValidationError) -> ApiError:
    errors = field_errors(list(exc.errors()))
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return ApiError(422, "invalid_request", summary, errors)


@router.post("", response_model=RecordedBatch, status_code=201)
def record_usage(
    session: SessionDep,
    principal: PrincipalDep,
    book: PriceBookDep,
    enforcer: EnforcerDep,
    body: Annotated[Any, Body(description="one usage event, or {'events': [...]}")],
) -> Response:
    """Record one usage event or a batch of up to 1,000, idempotent on client_request_id."""
    events = _parse(body)
    pricer = pricer_for(session, book, principal.organization_id)
    recorded = service.record_usage(session, pricer, principal, events, enforcer)
    # Serialised here, once: the service built the response from already-checked values.
    return Response(recorded.model_dump_json(), status_code=201, media_type="application/json")


@router.get("", response_model=UsagePage)
def list_usage(
    session: SessionDep,
    principal: PrincipalDep,
    start: AwareDatetime | None = None,
    end: AwareDatetime | None = None,
    model: str | None = None,
    user: str | None = None,
    team: str | None = None,
    prompt_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> UsagePage:
    """List usage events, newest first, filtered; pass next_cursor back for the next page."""
    rows, next_cursor = repository.list_usage(
        session,
        principal.organization_id,
        repository.UsageFilter(start, end, model, user, team, prompt_id),
        limit,
        cursor,
    )
    return UsagePage(
        events=[
            UsageEventOut(
                id=e.id,
                occurred_at=e.occurred_at,
                provider=e.provider,
                model=e.model,
                input_tokens=e.input_tokens,
                cached_input_tokens=e.cached_input_tokens,
                cache_write_tokens=e.cache_write_tokens,
                output_tokens=e.output_tokens,
                reasoning_tokens=e.reasoning_tokens,
                pricing_status=e.pricing_status,
                cost=service.cost_out(e),
                price_version=e.price_version,
                user=user_email,
                team=team_name,
                department=department_name,
                prompt_id=e.prompt_id,
                prompt_version=e.prompt_version,
                latency_ms=e.latency_ms,
                status=e.status,
                source=e.source,
                tags=e.tags,
                client_request_id=e.client_request_id,
            )
            for e, user_email, team_name, department_name in rows
        ],
        next_cursor=next_cursor,
    )
