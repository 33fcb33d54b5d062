"""A small time-limited cache, per process, for answers that need not be fresher than a few
seconds (banners, dashboards) or that are history (the prior period's trend).

Thread-safe (gunicorn's gthread workers serve several requests at once); bounded by dropping
everything when full (the keys are few: periods x minutes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, ttl: float, size: int = 64) -> None:
        self.ttl = ttl
        self._size = size
        self._lock = threading.Lock()
        self._items: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        if self.ttl <= 0:
            return None
        with self._lock:
            item = self._items.get(key)
            if item is None or time.monotonic() - item[0] > self.ttl:
                return None
            return item[1]

    def put(self, key: K, value: V) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._items) >= self._size:
                self._items.clear()
            self._items[key] = (time.monotonic(), value)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
