"""Budget counters in the SQL database.

Correct under concurrency because every check-and-hold is one conditional UPDATE per line
(`… WHERE spent + reserved + :amount <= :limit`) in a single transaction, taken in a fixed
line order: PostgreSQL's row locks and SQLite's single writer serialise competing holds, and
a refused line rolls the whole hold back.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import ColumnElement, Table, and_, case, delete, insert, select, text, update
from sqlalchemy.orm import Session

from llmledger.budgets.counters import Held, LineState, ReserveResult, SpendChange, States
from llmledger.budgets.line_codec import line_from_json, line_to_json
from llmledger.budgets.lines import Line
from llmledger.core.money import to_nanos
from llmledger.kit.upsert import insert_ignoring_conflicts
from llmledger.models import BudgetCounter, Reservation, UsageEvent

C = BudgetCounter
# Core tables: plain UPDATE/INSERT statements, without the ORM's bookkeeping on hot paths.
T: Table = BudgetCounter.__table__  # type: ignore[assignment]
R: Table = Reservation.__table__  # type: ignore[assignment]


def _where(line: Line) -> ColumnElement[bool]:
    return and_(
        T.c.budget_id == line.budget_id,
        T.c.allocation_id == line.allocation_id,
        T.c.period_key == line.period.key,
    )


def _exists(session: Session, line: Line) -> bool:
    return session.execute(select(T.c.id).where(_where(line))).first() is not None


def _relax_durability(session: Session) -> None:
    """Holds are short-lived bookkeeping: on PostgreSQL their transactions commit without
    waiting for the WAL flush. A crash may forget the last fraction of a second of holds
    (never spend or usage, whose transactions stay fully durable)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL synchronous_commit = off"))


def ledger_spend(session: Session, org_id: int, line: Line) -> int:
    """What the usage ledger says this line has spent in its period (nanos)."""
    query = select(UsageEvent.cost_total).where(
        UsageEvent.organization_id == org_id,
        UsageEvent.occurred_at >= line.period.start,
        UsageEvent.occurred_at < line.period.end,
        UsageEvent.cost_total.is_not(None),
    )
    for column, value in line.ledger_filter:
        query = query.where(getattr(UsageEvent, column) == value)
    # Summed in Python: SQLite would sum the exact decimal text as floats.
    total = sum((c for c in session.scalars(query) if c is not None), Decimal(0))
    return to_nanos(total)


def ensure_counters(session: Session, org_id: int, lines: Sequence[Line]) -> None:
    """Create missing counter rows, starting from what the ledger already holds.

    Must run before the caller inserts its own usage events, or they would count twice.
    """
    if not lines:
        return
    existing = {
        (b, a, k)
        for b, a, k in session.execute(
            select(C.budget_id, C.allocation_id, C.period_key).where(
                C.budget_id.in_({line.budget_id for line in lines}),
                C.period_key.in_({line.period.key for line in lines}),
            )
        )
    }
    missing = [line for line in lines if line.key not in existing]
    if not missing:
        return
    rows = [
        {
            "budget_id": line.budget_id,
            "allocation_id": line.allocation_id,
            "period_key": line.period.key,
            "period_end": line.period.end,
            "spent_nanos": ledger_spend(session, org_id, line),
            "reserved_nanos": 0,
        }
        for line in missing
    ]
    session.execute(insert_ignoring_conflicts(session, C), rows)


class Refused(Exception):
    def __init__(self, line: Line) -> None:
        self.line = line


class SqlCounterStore:
    """Counters in the caller's transaction. A hold is visible to others once the caller
    commits, so callers commit right after reserving (the REST endpoints and the gateway
    do), and the rows it locks are held only that long."""

    name = "sql"

    def reserve(
        self,
        session: Session,
        org_id: int,
        lines: Sequence[Line],
        amount: int,
        expires_at: datetime,
    ) -> ReserveResult:
        ordered = sorted(lines, key=lambda line: line.key)
        _relax_durability(session)
        for attempt in range(2):
            try:
                states = self._hold_all(session, ordered, amount)
            except Refused as refused:
                if attempt == 0 and not _exists(session, refused.line):
                    ensure_counters(session, org_id, ordered)  # first use of the period
                    continue
                return ReserveResult(None, refused.line, self.read(session, ordered))
            break
        hold_id = str(uuid.uuid4())
        session.execute(
            insert(R),
            {
                "id": hold_id,
                "organization_id": org_id,
                "amount_nanos": amount,
                "lines": [line_to_json(line) for line in ordered],
                "status": "held",
                "created_at": datetime.now(UTC),
                "expires_at": expires_at,
            },
        )
        held = Held(hold_id, org_id, amount, tuple(ordered), self.name, expires_at)
        return ReserveResult(held, None, states)

    def _hold_all(self, session: Session, ordered: Sequence[Line], amount: int) -> States:
        """Add `amount` to every line's reserved, or to none (Refused names the line)."""
        # A refused second line must undo the first: a savepoint, needed only then.
        savepoint = session.begin_nested() if len(ordered) > 1 else None
        states = {}
        try:
            for line in ordered:
                statement = (
                    update(T)
                    .where(_where(line))
                    .values(reserved_nanos=T.c.reserved_nanos + amount)
                    .returning(T.c.spent_nanos, T.c.reserved_nanos)
                )
                if line.hard:
                    statement = statement.where(
                        T.c.spent_nanos + T.c.reserved_nanos + amount <= line.limit_nanos
                    )
                row = session.execute(statement).first()
                if row is None:
                    raise Refused(line)
                states[line.key] = LineState(row[0], row[1])
        except Refused:
            if savepoint is not None:
                savepoint.rollback()
            raise
        if savepoint is not None:
            savepoint.commit()
        return states

    def _close(self, session: Session, hold_id: str, status: str, actual: int | None) -> bool:
        """Mark a hold closed; only the first of competing closers gets True."""
        result = session.execute(
            update(R)
            .where(R.c.id == hold_id, R.c.status == "held")
            .values(status=status, closed_at=datetime.now(UTC), actual_nanos=actual)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def _unhold(self, session: Session, line: Line, amount: int) -> None:
        reserved = T.c.reserved_nanos
        session.execute(
            update(T)
            .where(_where(line))
            .values(reserved_nanos=case((reserved > amount, reserved - amount), else_=0))
        )

    def settle(self, session: Session, held: Held, actual: int) -> list[SpendChange]:
        if self._close(session, held.id, "settled", actual):
            for line in held.lines:
                self._unhold(session, line, held.amount)
        # Expired or unknown holds were already given back: the spend still counts.
        return self.add_spend(
            session, held.organization_id, [(line, actual) for line in held.lines]
        )

    def settle_many(
        self, session: Session, settlements: Sequence[tuple[Held, int]]
    ) -> list[SpendChange]:
        changes: list[SpendChange] = []
        for held, actual in settlements:
            changes += self.settle(session, held, actual)
        return changes

    def release(self, session: Session, held: Held) -> bool:
        _relax_durability(session)
        if not self._close(session, held.id, "released", None):
            return False
        for line in held.lines:
            self._unhold(session, line, held.amount)
        return True

    def restart(self, session: Session, org_id: int, lines: Sequence[Line]) -> None:
        for line in lines:
            session.execute(delete(T).where(_where(line)))
        ensure_counters(session, org_id, lines)

    def add_spend(
        self, session: Session, org_id: int, amounts: Sequence[tuple[Line, int]]
    ) -> list[SpendChange]:
        totals: dict[tuple[int, int, str], int] = defaultdict(int)
        by_key: dict[tuple[int, int, str], Line] = {}
        for line, amount in amounts:
            totals[line.key] += amount
            by_key[line.key] = line
        changes = []
        for key in sorted(totals):
            line, amount = by_key[key], totals[key]
            after = session.execute(
                update(T)
                .where(_where(line))
                .values(spent_nanos=T.c.spent_nanos + amount)
                .returning(T.c.spent_nanos)
            ).scalar_one_or_none()
            if after is not None:
                changes.append(SpendChange(line, after - amount, after))
        return changes

    def read(self, session: Session, lines: Sequence[Line]) -> States:
        if not lines:
            return {}
        rows = session.execute(
            select(
                C.budget_id, C.allocation_id, C.period_key, C.spent_nanos, C.reserved_nanos
            ).where(
                C.budget_id.in_({line.budget_id for line in lines}),
                C.period_key.in_({line.period.key for line in lines}),
            )
        )
        found = {(b, a, k): LineState(s, r) for b, a, k, s, r in rows}
        return {line.key: found.get(line.key, LineState(0, 0)) for line in lines}

    def expire_due(self, session: Session, now: datetime) -> int:
        due = session.scalars(
            select(Reservation)
            .where(Reservation.status == "held", Reservation.expires_at < now)
            .limit(500)
        ).all()
        expired = 0
        for hold in due:
            if self._close(session, hold.id, "expired", None):
                for raw in hold.lines:
                    self._unhold(session, line_from_json(raw), hold.amount_nanos)
                expired += 1
        return expired

    def held(self, session: Session, hold_id: str) -> Held | None:
        row = session.get(Reservation, hold_id)
        if row is None:
            return None
        lines = tuple(line_from_json(raw) for raw in row.lines)
        return Held(row.id, row.organization_id, row.amount_nanos, lines, self.name, row.expires_at)
