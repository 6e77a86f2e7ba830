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
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from llmledger.budgets.enforcement import Enforcer
from llmledger.core.money import to_nanos
from llmledger.kit.db import unit_of_work
from llmledger.pricing.book import PriceBook
from llmledger.pricing.repository import load_org_prices
from llmledger.pricing.service import Pricer
from llmledger.usage.schemas import UsageIn
from llmledger.usage.service import record_usage

if TYPE_CHECKING:
    from llmledger.accounts.service import Principal
    from llmledger.gateway.flow import Admitted

log = logging.getLogger("llmledger.gateway")


@dataclass(frozen=True)
class Finished:
    admitted: Admitted
    event: UsageIn


class Recorder:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        book: PriceBook,
        enforcer: Enforcer,
        max_batch: int = 500,
        linger_seconds: float = 0.05,
    ) -> None:
        self._sessions = sessions
        self._book = book
        self._enforcer = enforcer
        self._max_batch = max_batch
        self._linger = linger_seconds
        self._queue: queue.Queue[Finished | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="llmledger-recorder", daemon=True)
        self._thread.start()

    def submit(self, finished: Finished) -> None:
        self._queue.put(finished)

    def flush(self) -> None:
        """Wait until everything submitted so far is written."""
        self._queue.join()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self._queue.task_done()
                return
            batch = [first]
            # Linger briefly so calls finishing together share one transaction: fewer,
            # larger batches cost less interpreter time, which requests are waiting for.
            deadline = time.monotonic() + self._linger
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get(timeout=max(deadline - time.monotonic(), 0))
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this batch
                    self._queue.task_done()
                    break
                batch.append(item)
            try:
                self._write(batch)
            except Exception:  # one bad item must not lose the others: write them one by one
                log.exception("writing %d gateway calls failed; retrying one by one", len(batch))
                for item in batch:
                    try:
                        self._write([item])
                    except Exception:
                        log.exception("a gateway call could not be recorded")
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _write(self, batch: Sequence[Finished]) -> None:
        by_key: dict[Principal, list[Finished]] = defaultdict(list)
        for item in batch:
            by_key[item.admitted.principal].append(item)
        with unit_of_work(self._sessions) as session:
            for principal, items in by_key.items():
                pricer = Pricer(self._book, load_org_prices(session, principal.organization_id))
                loose = [i.event for i in items if i.admitted.held is None]
                if loose:  # calls without a hold are charged as recorded usage
                    record_usage(session, pricer, principal, loose, self._enforcer)
                held = [i for i in items if i.admitted.held is not None]
                if held:
                    recorded = record_usage(session, pricer, principal, [i.event for i in held])
                    self._enforcer.settle_many(
                        session,
                        [
                            (item.admitted.held, to_nanos(event.cost.total) if event.cost else 0)
                            for item, event in zip(held, recorded.events, strict=True)
                            if item.admitted.held is not None
                        ],
                    )
