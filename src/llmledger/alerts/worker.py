"""Background work: send alert deliveries, expire stale reservations. Idempotent, so it can
run in the server process (the default) and in any number of `llmledger worker` processes."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from llmledger.alerts.delivery import deliver_due
from llmledger.budgets.counters import CounterStore
from llmledger.kit.db import unit_of_work
from llmledger.kit.settings import Settings

log = logging.getLogger("llmledger.worker")


def run_once(
    sessions: sessionmaker[Session], store: CounterStore, settings: Settings
) -> dict[str, int]:
    """One pass of every background task; returns what each did."""
    now = datetime.now(UTC)
    with unit_of_work(sessions) as session:
        expired = store.expire_due(session, now)
    with unit_of_work(sessions) as session:
        sent = deliver_due(session, settings, now)
    return {"reservations_expired": expired, "deliveries_sent": sent}


def run_forever(
    sessions: sessionmaker[Session],
    store: CounterStore,
    settings: Settings,
    stop: threading.Event,
) -> None:
    while not stop.is_set():
        try:
            run_once(sessions, store, settings)
        except Exception:  # keep the loop alive; the next pass retries
            log.exception("background pass failed")
        stop.wait(settings.worker_interval_seconds)


def start_in_thread(
    sessions: sessionmaker[Session], store: CounterStore, settings: Settings
) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(
        target=run_forever,
        args=(sessions, store, settings, stop),
        name="llmledger-worker",
        daemon=True,
    )
    thread.start()
    return thread, stop
