"""A thread-safe token bucket that keeps one container's Keap calls under a rate, and can be paused
for a while when Keap answers 429."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self,
        rate_per_s: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate_per_s
        self.capacity = burst if burst is not None else max(1.0, rate_per_s)
        self._tokens = self.capacity
        self._clock, self._sleep = clock, sleep
        self._last = clock()
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        if now > self._last:  # _last lies in the future during a pause: nothing accrues until it ends
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now

    def reserve(self) -> float:
        """Take one token; returns how long the caller must wait before using it."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            self._tokens -= 1.0
            debt = -self._tokens / self.rate if self._tokens < 0 else 0.0
            return max(0.0, self._last - now) + debt

    def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)

    def pause(self, seconds: float) -> None:
        """Keap said 429: nobody in this container calls Keap for ``seconds``, and afterwards the callers
        that queued up meanwhile go one by one at the rate, not all at once."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            until = now + seconds
            if until > self._last:
                self._last = until
                self._tokens = min(self._tokens, 0.0)
