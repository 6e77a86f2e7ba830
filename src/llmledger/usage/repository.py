"""Reading the ledger: filtered, newest first, with keyset (cursor) pagination."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from llmledger.kit.errors import FieldError
from llmledger.models import Department, Team, UsageEvent, User


@dataclass(frozen=True)
class UsageFilter:
    start: datetime | None = None
    end: datetime | None = None
    model: str | None = None
    user: str | None = None
    team: str | None = None
    prompt_id: str | None = None


def encode_cursor(occurred_at: datetime, event_id: int) -> str:
    raw = json.dumps([occurred_at.isoformat(), event_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        when, event_id = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(when), int(event_id)
    except (ValueError, TypeError):
        raise FieldError("cursor", "not a cursor this API returned") from None


def _filtered(org_id: int, f: UsageFilter) -> Select[UsageEvent, str, str, str]:
    query = (
        select(UsageEvent, User.email, Team.name, Department.name)
        .outerjoin(User, User.id == UsageEvent.user_id)
        .outerjoin(Team, Team.id == UsageEvent.team_id)
        .outerjoin(Department, Department.id == UsageEvent.department_id)
        .where(UsageEvent.organization_id == org_id)
    )
    if f.start is not None:
        query = query.where(UsageEvent.occurred_at >= f.start)
    if f.end is not None:
        query = query.where(UsageEvent.occurred_at < f.end)
    if f.model is not None:
        query = query.where(UsageEvent.model == f.model)
    if f.user is not None:
        query = query.where(User.email == f.user)
    if f.team is not None:
        query = query.where(Team.name == f.team)
    if f.prompt_id is not None:
        query = query.where(UsageEvent.prompt_id == f.prompt_id)
    return query


def list_usage(
    session: Session, org_id: int, f: UsageFilter, limit: int, cursor: str | None
) -> tuple[list[tuple[UsageEvent, str, str, str]], str | None]:
    """A page of events with the user's email, team and department names (None if unset)."""
    query = _filtered(org_id, f)
    if cursor:
        when, event_id = decode_cursor(cursor)
        query = query.where(
            or_(
                UsageEvent.occurred_at < when,
                and_(UsageEvent.occurred_at == when, UsageEvent.id < event_id),
            )
        )
    query = query.order_by(UsageEvent.occurred_at.desc(), UsageEvent.id.desc()).limit(limit + 1)
    rows = [(e, user, team, department) for e, user, team, department in session.execute(query)]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1][0]
        next_cursor = encode_cursor(last.occurred_at, last.id)
    return rows, next_cursor
