"""INSERT … ON CONFLICT on both SQLite and PostgreSQL (the one dialect switch)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignoring_conflicts(session: Session, table: Any) -> Insert:
    """A Core INSERT (of a table or mapped class) that skips rows violating a unique constraint."""
    target = getattr(table, "__table__", table)
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(target).on_conflict_do_nothing()
    return sqlite.insert(target).on_conflict_do_nothing()


def insert_or_add(session: Session, table: Any, key: Sequence[str], added: Sequence[str]) -> Insert:
    """A Core INSERT whose rows, when their `key` exists, add their `added` columns to the
    existing row's instead (running sums); `updated_at` takes the new row's value."""
    target = getattr(table, "__table__", table)
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(target)
    sums = {name: target.c[name] + statement.excluded[name] for name in added}
    upsert: Insert = statement.on_conflict_do_update(
        index_elements=list(key), set_={**sums, "updated_at": statement.excluded.updated_at}
    )
    return upsert
