"""Loading an organization's budgets and resolving who a call is charged to."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmledger.budgets.lines import AllocationSpec, Attribution, BudgetRules, BudgetSpec
from llmledger.models import ApiKey, Budget, BudgetAllocation, Department, Organization, Team, User

# Bumped by every budget or allocation change made in this process, so cached rules of an
# organization are dropped at once here (other processes see changes when their cache expires).
_versions: dict[int, int] = {}


def rules_changed(org_id: int) -> None:
    _versions[org_id] = _versions.get(org_id, 0) + 1


def rules_version(org_id: int) -> int:
    return _versions.get(org_id, 0)


def lock_for_charging(session: Session, org_id: int) -> None:
    """Taken by a transaction that charges usage to budgets, before it reads them; held to
    its commit. A change that adds budget lines waits for such transactions to finish (see
    `lock_for_change`), so a new line's counter, started from the ledger's sum, sees every
    event of a transaction that did not know the line. (A shared row lock on PostgreSQL;
    SQLite runs one writing transaction at a time anyway.)"""
    session.execute(
        select(Organization.id).where(Organization.id == org_id).with_for_update(read=True)
    )


def lock_for_change(session: Session, org_id: int) -> str:
    """Taken by a change to an organization's budgets; returns its time zone."""
    # FOR NO KEY UPDATE: it still waits for FOR SHARE, but not for the key-share locks that
    # foreign keys to the organization take (a hold's INSERT must not wait on it).
    time_zone = session.scalar(
        select(Organization.time_zone)
        .where(Organization.id == org_id)
        .with_for_update(key_share=True)
    )
    if time_zone is None:
        raise LookupError(f"organization {org_id} does not exist")
    return time_zone


def load_rules(session: Session, org_id: int) -> BudgetRules:
    rows = list(session.scalars(select(Budget).where(Budget.organization_id == org_id)))
    allocations: list[AllocationSpec] = []
    if rows:
        allocations = [
            AllocationSpec.of(a)
            for a in session.scalars(
                select(BudgetAllocation).where(BudgetAllocation.budget_id.in_([b.id for b in rows]))
            )
        ]
    budgets = [BudgetSpec.of(b) for b in rows]
    return BudgetRules(budgets, allocations, scope_names(session, budgets))


def scope_names(
    session: Session, budgets: Sequence[Budget] | Sequence[BudgetSpec]
) -> dict[tuple[str, int], str]:
    """Human names of budget scopes, for messages ("team 'research' monthly budget")."""
    wanted: dict[str, set[int]] = {}
    for b in budgets:
        wanted.setdefault(b.scope_type, set()).add(b.scope_id)
    names: dict[tuple[str, int], str] = {}
    sources = {
        "organization": (Organization.id, Organization.name),
        "team": (Team.id, Team.name),
        "department": (Department.id, Department.name),
        "user": (User.id, User.email),
        "key": (ApiKey.id, ApiKey.prefix),
    }
    for scope, ids in wanted.items():
        id_column, name_column = sources[scope]
        for id_, name in session.execute(select(id_column, name_column).where(id_column.in_(ids))):
            names[(scope, id_)] = name
    return names


def find_attribution(
    session: Session,
    org_id: int,
    api_key_id: int | None,
    user: str | None = None,
    team: str | None = None,
    department: str | None = None,
) -> Attribution:
    """Ids for the names a caller gave, without creating anything."""
    user_id = None
    if user:
        user_id = session.scalar(
            select(User.id).where(User.organization_id == org_id, User.email == user)
        )
    return Attribution(
        organization_id=org_id,
        user_id=user_id,
        team_id=_id_of(session, Team, org_id, team) if team else None,
        department_id=_id_of(session, Department, org_id, department) if department else None,
        api_key_id=api_key_id,
    )


def _id_of(
    session: Session, model: type[Team] | type[Department], org_id: int, name: str
) -> int | None:
    return session.scalar(
        select(model.id).where(model.organization_id == org_id, model.name == name)
    )
