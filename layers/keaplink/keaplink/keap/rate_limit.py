"""A thread-safe token bucket that keeps one container's Keap calls under a rate, and can be paused for a
short while when Keap answers 429 or its headers say a window is nearly spent.

The limiter lives as long as the container, across invocations. So a pause is short by construction
(:data:`MAX_PAUSE_S`: anything longer is a hold of the queue, not a pause of a container), and a caller that
would have to wait longer than its invocation has left gets :class:`~keaplink.errors.OutOfTime` instead of a
sleep past the function's timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from keaplink.errors import OutOfTime

if TYPE_CHECKING:
    from keaplink.keap.deadline import Deadline

# The longest pause a container takes. Keap's longer waits (a spent quota, a long Retry-After) hold the queue.
MAX_PAUSE_S = 10.0


class Limiter(Protocol):
    """What a Keap session needs of a limiter: this container's :class:`RateLimiter`, or the deployment's shared
    budget (:class:`keaplink.keap.budget.SharedBudget`)."""

    max_rate: float
    rate: float

    def acquire(self, deadline: Deadline | None = None) -> None: ...

    def pause(self, seconds: float) -> None: ...

    def set_rate(self, rate_per_s: float) -> None: ...


class RateLimiter:
    def __init__(
        self,
        rate_per_s: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        max_pause_s: float = MAX_PAUSE_S,
    ) -> None:
        self.max_rate = rate_per_s
        self.rate = rate_per_s
        self.capacity = burst if burst is not None else max(1.0, rate_per_s)
        self.max_pause_s = max_pause_s
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

    def _give_back(self) -> None:
        with self._lock:
            self._tokens += 1.0

    def acquire(self, deadline: Deadline | None = None) -> None:
        """Wait for a token; with a ``deadline``, a wait it cannot afford raises OutOfTime (token given back)."""
        wait = self.reserve()
        if wait <= 0:
            return
        if deadline is None:
            self._sleep(wait)
            return
        try:
            deadline.wait(wait, "rate limit")
        except OutOfTime:
            self._give_back()
            raise

    def pause(self, seconds: float) -> None:
        """Nobody in this container calls Keap for ``seconds`` (at most ``max_pause_s``), and afterwards the
        callers that queued up meanwhile go one by one at the rate, not all at once."""
        seconds = min(max(0.0, seconds), self.max_pause_s)
        with self._lock:
            now = self._clock()
            self._refill(now)
            until = now + seconds
            if until > self._last:
                self._last = until
                self._tokens = min(self._tokens, 0.0)

    def paused_for(self) -> float:
        """Seconds until the current pause ends (0 when not paused)."""
        with self._lock:
            return max(0.0, self._last - self._clock())

    def set_rate(self, rate_per_s: float) -> None:
        """Pace: a lower rate than configured while Keap's quota runs low (never higher than configured)."""
        with self._lock:
            self._refill(self._clock())
            self.rate = max(0.001, min(self.max_rate, rate_per_s))
