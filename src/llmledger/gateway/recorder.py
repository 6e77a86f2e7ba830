"""Writing gateway calls behind the response: usage events and settlements go to the
database in batches from one background thread, so a call does not wait for a commit.

Safe for budgets: a call's hold stays in place until its settlement lands, so the counters
only ever overstate what is committed, never understate it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from llmledger.budgets.enforcement import Enforcer
from llmledger.core.money import to_nanos
from llmledger.estimates.calibration import Observation, record_observations
from llmledger.gateway.spool import Finished, Spool
from llmledger.kit.db import unit_of_work
from llmledger.pricing.book import PriceBook
from llmledger.pricing.repository import load_org_prices
from llmledger.pricing.service import Pricer
from llmledger.usage.service import record_usage

if TYPE_CHECKING:
    from llmledger.accounts.service import Principal
    from llmledger.budgets.counters import Held

log = logging.getLogger("llmledger.gateway")

# A spooled call the database refuses this many times in a row while it is up is set aside.
REFUSALS_BEFORE_SET_ASIDE = 5


class Recorder:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        book: PriceBook,
        enforcer: Enforcer,
        spool_dir: Path,
        max_batch: int = 500,
        linger_seconds: float = 0.05,
        retry_seconds: float = 2.0,
    ) -> None:
        self._sessions = sessions
        self._book = book
        self._enforcer = enforcer
        self._max_batch = max_batch
        self._linger = linger_seconds
        self._retry_first = retry_seconds
        self._retry = retry_seconds
        self._next_replay = 0.0
        self._database_away = False
        self._refusals: dict[str, int] = {}  # spooled calls refused alone, while the database is up
        self.spool = Spool(spool_dir)
        self._queue: queue.Queue[Finished | _Wake | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="llmledger-recorder", daemon=True)
        self._thread.start()

    def submit(self, finished: Finished) -> None:
        self._queue.put(finished)

    def flush(self) -> None:
        """Wait until everything submitted so far is written (or spooled)."""
        self._queue.join()

    def replay_now(self) -> None:
        """Replay the spool at the next chance instead of after the backoff."""
        self._next_replay = 0.0
        self._queue.put(_WAKE)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            self.spool.adopt_orphans()  # calls a process that died left behind
        except Exception:
            log.exception("spooled gateway calls could not be taken over")
        while True:
            batch, taken, stop = self._next_batch()
            try:
                self._record(batch)
                if self.spool.pending and time.monotonic() >= self._next_replay:
                    self._replay()
            except Exception:  # the recorder must outlive any one failure
                log.exception("the gateway recorder hit an unexpected error; it goes on")
            finally:
                for _ in range(taken):
                    self._queue.task_done()
            if stop:
                break
        self.spool.close()

    def _next_batch(self) -> tuple[list[Finished], int, bool]:
        """Wait for a call (or until the next replay is due), then linger briefly so calls
        finishing together share one transaction: fewer, larger batches cost less
        interpreter time, which requests are waiting for. Returns the calls, how many queue
        items were taken, and whether to stop."""
        wait = max(self._next_replay - time.monotonic(), 0.01) if self.spool.pending else None
        try:
            first = self._queue.get(timeout=wait)
        except queue.Empty:
            return [], 0, False
        if first is None:
            return [], 1, True
        batch = [] if isinstance(first, _Wake) else [first]
        taken = 1
        deadline = time.monotonic() + self._linger
        while batch and len(batch) < self._max_batch:
            try:
                item = self._queue.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                break
            taken += 1
            if item is None:
                return batch, taken, True
            if not isinstance(item, _Wake):
                batch.append(item)
        return batch, taken, False

    def _record(self, batch: list[Finished]) -> None:
        if not batch:
            return
        if self._database_away:  # spooled at once, until a replay finds the database back
            self.spool.add(batch)
            return
        try:
            self._write(batch)
        except Exception:
            log.exception("writing %d gateway calls failed; they are spooled", len(batch))
            self.spool.add(batch)
            self._database_away = not self._reachable()
            self._next_replay = time.monotonic() + self._retry

    def _replay(self) -> None:
        """Write the spooled calls in batches; a batch that fails goes one by one, so a call
        the database rejects does not hold back the others. A call refused alone several
        times while the database is up is set aside for an operator. What is left waits,
        with a growing pause."""
        written: list[Finished] = []
        self._database_away = not self._reachable()
        waiting = [] if self._database_away else list(self.spool.pending)
        for start in range(0, len(waiting), self._max_batch):
            chunk = waiting[start : start + self._max_batch]
            try:
                self._write(chunk)
                written += chunk
                continue
            except Exception:
                log.warning("a batch of spooled gateway calls failed; trying them one by one")
            alone = [call for call in chunk if self._write_alone(call)]
            written += alone
            if not alone and not self._reachable():
                self._database_away = True
                break  # gone again: the rest waits for the next round
            self._set_aside_refused(chunk, alone)
        if written:
            self.spool.recorded(written)
            log.info("%d spooled gateway calls recorded", len(written))
        if self.spool.pending:
            self._retry = min(self._retry * 2, 60.0)
        else:
            self._retry = self._retry_first
        self._next_replay = time.monotonic() + self._retry

    def _set_aside_refused(self, chunk: list[Finished], written: list[Finished]) -> None:
        done = {id(call) for call in written}
        refused = []
        for call in chunk:
            if id(call) in done:
                continue
            rid = str(call.event.client_request_id)
            self._refusals[rid] = self._refusals.get(rid, 0) + 1
            if self._refusals[rid] >= REFUSALS_BEFORE_SET_ASIDE:
                refused.append(call)
                del self._refusals[rid]
        self.spool.reject(refused)

    def _reachable(self) -> bool:
        try:
            with unit_of_work(self._sessions) as session:
                session.execute(text("SELECT 1"))
        except Exception as exc:
            log.warning("the database is still away (%s); spooled calls wait", exc)
            return False
        return True

    def _write_alone(self, call: Finished) -> bool:
        try:
            self._write([call])
        except Exception:
            log.exception(
                "spooled gateway call %s cannot be recorded", call.event.client_request_id
            )
            return False
        return True

    def _write(self, batch: Sequence[Finished]) -> None:
        by_key: dict[Principal, list[Finished]] = defaultdict(list)
        # A call twice in one batch (spool files that overlap after a crash) counts once.
        for item in {i.event.client_request_id: i for i in reversed(batch)}.values():
            by_key[item.principal].append(item)
        # Organizations in one order in every process, so recorders never deadlock over
        # counter rows.
        groups = sorted(by_key.items(), key=lambda pair: pair[0].organization_id)
        observations: list[Observation] = []
        with unit_of_work(self._sessions) as session:
            settlements = []
            for principal, items in groups:
                settlements += self._insert(session, principal, items, observations)
            # Settled only once every event is in: a refused insert must come before Redis
            # counters change, which a rollback cannot undo.
            self._enforcer.settle_many(session, settlements)
        if not observations:
            return
        try:  # statistics, in a transaction of their own: losing some costs nothing
            with unit_of_work(self._sessions) as session:
                record_observations(session, observations)
        except Exception:
            log.exception("estimate calibration could not be updated")

    def _insert(
        self,
        session: Session,
        principal: Principal,
        items: list[Finished],
        observations: list[Observation],
    ) -> list[tuple[Held, int]]:
        """Record one organization's calls; returns the holds to settle, with their costs,
        and adds to `observations` our estimates beside the provider's counts."""
        pricer = Pricer(self._book, load_org_prices(session, principal.organization_id))
        # Budgets are read afresh: one created after a call was admitted (its hold does not
        # know it) is charged for the call too.
        held = {
            str(i.event.client_request_id): frozenset(ln.identity for ln in i.held.lines)
            for i in items
            if i.held is not None
        }
        recorded = record_usage(
            session, pricer, principal, [i.event for i in items], self._enforcer, held
        )
        events = {e.client_request_id: e for e in recorded.events}
        settlements = []
        for item in items:
            event = events[str(item.event.client_request_id)]
            if event.duplicate:  # a replay of a call already in the ledger, settled with it
                continue
            if item.held is not None:
                cost = to_nanos(event.cost.total) if event.cost else 0
                settlements.append((item.held, cost))
            if item.estimated_input_tokens is not None:
                observations.append(
                    Observation(
                        principal.organization_id,
                        event.provider,
                        event.model,
                        item.estimated_input_tokens,
                        item.event.input_tokens,
                    )
                )
        return settlements


class _Wake:
    """Put on the queue to wake the recorder for a replay."""


_WAKE = _Wake()
