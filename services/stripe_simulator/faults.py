"""Seeded API fault injection and a token-bucket request rate limit for the REST simulator."""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ApiFaults:
    """Per-request probabilities of injected errors, and the rate limit.

    The n-th request's fate depends only on ``seed`` and n, so a test sees the same sequence
    of injected errors on every run. ``rate_limit`` is requests per second (0 disables it),
    with bursts of up to ``burst`` requests.
    """

    seed: int = 0
    error_429_rate: float = 0.0
    error_5xx_rate: float = 0.0
    rate_limit: float = 0.0
    burst: int = 10


class TokenBucket:
    """Classic token bucket: ``rate`` tokens per second, capacity ``burst``."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.capacity = float(max(1, burst))
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Consume one token if available."""
        with self._lock:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return True
            return False

    def wait_seconds(self) -> float:
        """How long until the next token (what ``Retry-After`` tells the client)."""
        with self._lock:
            missing = max(0.0, 1.0 - self.tokens)
            return missing / self.rate if self.rate > 0 else 1.0


class FaultInjector:
    """Decides, request by request, whether to answer with an injected error."""

    def __init__(self, faults: ApiFaults) -> None:
        self.faults = faults
        self.count = 0
        self.bucket = TokenBucket(faults.rate_limit, faults.burst) if faults.rate_limit else None

    def retry_after(self) -> int:
        """Whole seconds a rate-limited client should wait (HTTP ``Retry-After``: >= 1)."""
        if self.bucket is None:
            return 1
        return max(1, math.ceil(self.bucket.wait_seconds()))

    def decide(self) -> str | None:
        """``"rate_limit"`` (token bucket), ``"429"``, ``"5xx"`` or ``None`` for this request."""
        self.count += 1
        if self.bucket is not None and not self.bucket.take():
            return "rate_limit"
        roll = random.Random(f"{self.faults.seed}:{self.count}").random()
        if roll < self.faults.error_429_rate:
            return "429"
        if roll < self.faults.error_429_rate + self.faults.error_5xx_rate:
            return "5xx"
        return None
