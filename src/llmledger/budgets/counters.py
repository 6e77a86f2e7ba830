"""The counter-store interface both backends implement, and what it returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from llmledger.budgets.lines import Line


@dataclass(frozen=True)
class LineState:
    spent: int
    reserved: int


LineKey = tuple[int, int, str]
States = dict[LineKey, LineState]


@dataclass(frozen=True)
class SpendChange:
    """A line's spend before and after an amount was added: what alerting looks at."""

    line: Line
    before: int
    after: int


@dataclass(frozen=True)
class Held:
    """A reservation as its holder keeps it: enough to settle or release it anywhere."""

    id: str
    organization_id: int
    amount: int
    lines: tuple[Line, ...]
    backend: str  # the store that holds it: "sql" or "redis"
    expires_at: datetime


@dataclass(frozen=True)
class ReserveResult:
    held: Held | None  # None when a hard line refused
    blocked_by: Line | None
    states: States = field(default_factory=dict)


class CounterStore(Protocol):
    name: str

    def reserve(
        self,
        session: Session,
        org_id: int,
        lines: Sequence[Line],
        amount: int,
        expires_at: datetime,
    ) -> ReserveResult:
        """Hold `amount` on every line at once, or on none if a hard line would go over."""

    def settle(self, session: Session, held: Held, actual: int) -> list[SpendChange]:
        """Turn a hold into spend of `actual` (within the caller's transaction)."""

    def settle_many(
        self, session: Session, settlements: Sequence[tuple[Held, int]]
    ) -> list[SpendChange]:
        """Several settlements of one organization at once (the gateway's recorder writes
        in batches)."""

    def release(self, session: Session, held: Held) -> bool:
        """Give a hold back; False if it was already settled, released or expired."""

    def restart(self, session: Session, org_id: int, lines: Sequence[Line]) -> None:
        """Start these lines' counters again from the ledger: a limit turned back on, whose
        counter missed what was spent while it was off."""

    def add_spend(
        self, session: Session, org_id: int, amounts: Sequence[tuple[Line, int]]
    ) -> list[SpendChange]:
        """Add spend recorded without a reservation (within the caller's transaction)."""

    def read(self, session: Session, lines: Sequence[Line]) -> States:
        """Current spent and reserved of each line."""

    def expire_due(self, session: Session, now: datetime) -> int:
        """Release holds past their expiry; returns how many."""

    def held(self, session: Session, hold_id: str) -> Held | None:
        """A hold by id, for settling or releasing it through the API."""
