"""Group commit: concurrent callers' requests go to the backend together, in one round trip.

The first caller to arrive runs its request at once (no added latency when alone). Callers
arriving while a round trip is in flight queue up and go together in the next one. Under
load batches grow by themselves, so one round trip serves many requests. The caller running
round trips (the leader) returns once its own request is done, handing the queue to the
first caller still waiting, so no caller waits longer than its own turn.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Req = TypeVar("Req")
Res = TypeVar("Res")


class _Slot(Generic[Req, Res]):
    __slots__ = ("error", "finished", "lead", "request", "result", "woken")

    def __init__(self, request: Req) -> None:
        self.request = request
        self.woken = threading.Event()  # finished, or handed the lead
        self.finished = False
        self.lead = False
        self.result: Res | None = None
        self.error: BaseException | None = None


class GroupCommit(Generic[Req, Res]):
    def __init__(self, run_batch: Callable[[Sequence[Req]], Sequence[Res]], max_batch: int = 256):
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Slot[Req, Res]] = []
        self._busy = False

    def submit(self, request: Req) -> Res:
        slot: _Slot[Req, Res] = _Slot(request)
        with self._lock:
            self._queue.append(slot)
            slot.lead = not self._busy
            self._busy = True
        while not slot.finished:
            if slot.lead:
                self._drain(slot)
            else:
                slot.woken.wait()
                slot.woken.clear()
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]

    def _drain(self, mine: _Slot[Req, Res]) -> None:
        """Run batches until `mine` is done, then hand the lead to the next waiting caller."""
        while True:
            with self._lock:
                if mine.finished:
                    if self._queue:
                        successor = self._queue[0]
                        successor.lead = True
                        successor.woken.set()
                    else:
                        self._busy = False
                    return
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
            try:
                results = self._run_batch([slot.request for slot in batch])
                for slot, result in zip(batch, results, strict=True):
                    slot.result = result
            except BaseException as exc:  # every waiter of the failed batch gets the error
                for slot in batch:
                    slot.error = exc
            for slot in batch:
                slot.finished = True
                slot.woken.set()
