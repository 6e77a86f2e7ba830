"""Creating organizations and keys, resolving who a call is attributed to."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmledger.kit.errors import ApiError, FieldError
from llmledger.kit.upsert import insert_ignoring_conflicts
from llmledger.models import ApiKey, Department, Organization, Team, User

PLANS = ("free", "teams", "enterprise")
KEY_PREFIX = "llk_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_time_zone(time_zone: str) -> str:
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise FieldError("time_zone", f"unknown time zone {time_zone!r}") from None
    return time_zone


def create_organization(
    session: Session, name: str, time_zone: str = "UTC", plan: str = "free"
) -> Organization:
    name = name.strip()
    if not name:
        raise FieldError("name", "must not be empty")
    if plan not in PLANS:
        raise FieldError("plan", f"must be one of {', '.join(PLANS)}")
    check_time_zone(time_zone)
    if session.scalar(select(Organization.id).where(Organization.name == name)) is not None:
        raise ApiError(409, "conflict", f"organization {name!r} already exists")
    org = Organization(name=name, time_zone=time_zone, plan=plan)
    session.add(org)
    session.flush()
    return org


def organization_named(session: Session, name: str) -> Organization:
    org = session.scalar(select(Organization).where(Organization.name == name))
    if org is None:
        raise FieldError("org", f"no organization named {name!r}")
    return org


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    secret: str  # shown once, never stored


def create_api_key(session: Session, org: Organization, name: str = "default") -> IssuedKey:
    public = secrets.token_hex(4)
    secret = f"{KEY_PREFIX}{public}_{secrets.token_urlsafe(24)}"
    key = ApiKey(
        organization_id=org.id, name=name, prefix=f"{KEY_PREFIX}{public}", key_hash=hash_key(secret)
    )
    session.add(key)
    session.flush()
    return IssuedKey(key, secret)


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key of one organization. Every query is scoped to it."""

    organization_id: int
    api_key_id: int
    time_zone: str
    plan: str


def authenticate(session: Session, secret: str) -> Principal | None:
    row = session.execute(
        select(ApiKey.id, ApiKey.organization_id, Organization.time_zone, Organization.plan)
        .join(Organization, Organization.id == ApiKey.organization_id)
        .where(ApiKey.key_hash == hash_key(secret), ApiKey.revoked_at.is_(None))
    ).first()
    if row is None:
        return None
    return Principal(row.organization_id, row.id, row.time_zone, row.plan)


def _ids_by_name(
    session: Session, model: type[Team] | type[Department], org_id: int, names: set[str]
) -> dict[str, int]:
    if not names:
        return {}
    session.execute(
        insert_ignoring_conflicts(session, model),
        [{"organization_id": org_id, "name": n} for n in sorted(names)],
    )
    rows = session.execute(
        select(model.name, model.id).where(model.organization_id == org_id, model.name.in_(names))
    )
    return {name: id_ for name, id_ in rows}


def team_ids(session: Session, org_id: int, names: Iterable[str | None]) -> dict[str, int]:
    """Ids of the named teams, creating the ones seen for the first time."""
    return _ids_by_name(session, Team, org_id, {n for n in names if n})


def department_ids(session: Session, org_id: int, names: Iterable[str | None]) -> dict[str, int]:
    """Ids of the named departments, creating the ones seen for the first time."""
    return _ids_by_name(session, Department, org_id, {n for n in names if n})


def user_ids(session: Session, org_id: int, emails: Iterable[str | None]) -> dict[str, int]:
    """Ids of the users named by email (or external id), creating first-seen users."""
    wanted = {e for e in emails if e}
    if not wanted:
        return {}
    session.execute(
        insert_ignoring_conflicts(session, User),
        [{"organization_id": org_id, "email": e} for e in sorted(wanted)],
    )
    rows = session.execute(
        select(User.email, User.id).where(User.organization_id == org_id, User.email.in_(wanted))
    )
    return {email: id_ for email, id_ in rows}
