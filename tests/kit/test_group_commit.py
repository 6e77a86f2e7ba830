"""Group commit batches concurrent requests and hands each caller its own result."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from llmledger.kit.group_commit import GroupCommit


def test_concurrent_requests_share_round_trips_and_get_their_own_results() -> None:
    batches: list[int] = []

    def run(requests: Sequence[int]) -> list[int]:
        batches.append(len(requests))
        time.sleep(0.002)  # a round trip
        return [r * 10 for r in requests]

    group: GroupCommit[int, int] = GroupCommit(run)
    results: dict[int, int] = {}
    start = threading.Barrier(32)

    def call(n: int) -> None:
        start.wait()
        results[n] = group.submit(n)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {n: n * 10 for n in range(32)}
    assert sum(batches) == 32
    assert len(batches) < 32  # some round trips served several callers


def test_a_lone_caller_runs_at_once() -> None:
    group: GroupCommit[int, int] = GroupCommit(lambda rs: [r + 1 for r in rs])
    assert group.submit(1) == 2
    assert group.submit(5) == 6


def test_a_failed_batch_fails_each_of_its_callers() -> None:
    def run(requests: Sequence[int]) -> list[int]:
        raise ConnectionError("backend down")

    group: GroupCommit[int, int] = GroupCommit(run)
    with pytest.raises(ConnectionError):
        group.submit(1)
    # The group recovers for later callers.
    group._run_batch = lambda rs: list(rs)  # type: ignore[method-assign]
    assert group.submit(7) == 7


def test_no_caller_waits_longer_than_its_turn() -> None:
    """The leader returns once its own request is done and hands the queue on; before, a
    leader kept running round trips for as long as others kept arriving."""
    round_trips = 0
    callers, per_batch = 32, 2

    def run(requests: Sequence[int]) -> list[int]:
        nonlocal round_trips
        round_trips += 1
        time.sleep(0.001)
        return list(requests)

    group: GroupCommit[int, int] = GroupCommit(run, max_batch=per_batch)
    waited: list[int] = []  # round trips that ran while each call was in submit
    deadline = time.monotonic() + 0.3

    def keep_calling(n: int) -> None:
        while time.monotonic() < deadline:
            before = round_trips
            assert group.submit(n) == n
            waited.append(round_trips - before)

    threads = [threading.Thread(target=keep_calling, args=(n,)) for n in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert round_trips > 50
    # At worst every other caller is queued ahead: its turn comes within about that many
    # batches (16 here, with slack for threads waking late); a stuck leader sat through
    # hundreds.
    assert max(waited) <= callers
