"""Bulk INSERT … ON CONFLICT DO NOTHING … RETURNING, fast on both databases.

This is the one place with database-specific SQL for bulk writes. On PostgreSQL the rows
go as one array per column through `unnest`, so the statement text stays small and
constant: psycopg would otherwise parse a 30,000-placeholder statement on every batch,
which costs more than the insert itself. SQLite takes SQLAlchemy's multi-row VALUES.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.types import JSON

from llmledger.kit.upsert import insert_ignoring_conflicts


def insert_returning(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], returning: Sequence[str]
) -> list[tuple[Any, ...]]:
    """Insert `rows` (all with the same keys), skipping unique-constraint conflicts; return
    the `returning` columns of the rows actually inserted."""
    if not rows:
        return []
    if session.get_bind().dialect.name == "postgresql":
        return _postgresql_unnest(session, table, rows, returning)
    statement = insert_ignoring_conflicts(session, table).returning(
        *(table.c[name] for name in returning)
    )
    return [tuple(r) for r in session.execute(statement, list(rows))]


def _postgresql_unnest(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], returning: Sequence[str]
) -> list[tuple[Any, ...]]:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    names = list(rows[0])
    arrays: dict[str, list[Any]] = {}
    casts = []
    for index, name in enumerate(names):
        column = table.c[name]
        process = column.type.bind_processor(dialect)
        values = [row[name] for row in rows]
        if isinstance(column.type, JSON):
            values = [None if v is None else json.dumps(v) for v in values]
            casts.append(f"%(c{index})b::text[]::json[]")
        else:
            if process is not None:
                values = [process(v) for v in values]
            sql_type = column.type.compile(dialect=dialect)
            casts.append(f"%(c{index})b::{sql_type}[]")
        arrays[f"c{index}"] = values
    quote = dialect.identifier_preparer.quote  # e.g. "limit" is a reserved word
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
        f"SELECT * FROM unnest({', '.join(casts)}) "
        f"ON CONFLICT DO NOTHING RETURNING {', '.join(quote(n) for n in returning)}"
    )
    # Binary parameters (%b): the text format quotes every array element through a regex.
    cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, arrays)
        return [tuple(r) for r in cursor.fetchall()]
    finally:
        cursor.close()
