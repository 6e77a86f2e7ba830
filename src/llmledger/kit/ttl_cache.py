"""A small thread-safe cache whose entries expire, for hot look-ups on the gateway path."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, seconds: float, max_entries: int = 10_000) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._entries: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: K, load: Callable[[], V], keep: Callable[[V], bool] = lambda _: True) -> V:
        """The cached value, or `load()`'s (kept only if `keep` says so)."""
        now = time.monotonic()
        found = self._entries.get(key)
        if found is not None and found[0] > now:
            return found[1]
        value = load()
        if keep(value):
            with self._lock:
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()  # crude, and rare: a burst of distinct keys
                self._entries[key] = (now + self.seconds, value)
        return value

    def peek(self, key: K) -> V | None:
        """The cached value if it is there and fresh, else None (nothing is loaded)."""
        found = self._entries.get(key)
        if found is not None and found[0] > time.monotonic():
            return found[1]
        return None

    def forget(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)
