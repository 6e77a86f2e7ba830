"""INSERT … ON CONFLICT DO NOTHING on both SQLite and PostgreSQL (the one dialect switch)."""

from __future__ import annotations

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
