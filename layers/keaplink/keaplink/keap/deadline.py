"""The time an invocation has left, and the one way keaplink waits within it.

Lambda stops a function at its timeout, mid-sleep or mid-request, whatever it was doing: a refresh whose new
token is not saved yet is lost, a container paused by a long ``Retry-After`` times out its next batches. So
every wait (a ``Retry-After``, a backoff, the rate limiter, waiting for another caller's refresh lease) asks a
:class:`Deadline` first, and every call that must be followed by more work (a token refresh and its save) is
started only when the deadline leaves time for both. What does not fit raises :class:`OutOfTime` *before*
anything starts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keaplink.errors import OutOfTime

Clock = Callable[[], float]
Sleep = Callable[[float], None]

# Kept back from the Lambda context's remaining time: answering the batch, sending records to the DLQ,
# writing the hold. What the function does after its last wait must fit in here.
DEFAULT_RESERVE_S = 3.0
# When there is no Lambda context (a script, a test calling the package directly): a sane bound, not forever.
DEFAULT_WITHOUT_CONTEXT_S = 60.0


@dataclass(frozen=True)
class Deadline:
    ends_at: float  # on ``clock``
    clock: Clock = time.monotonic
    sleep: Sleep = time.sleep

    @classmethod
    def after(cls, seconds: float, clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> Deadline:
        return cls(clock() + max(0.0, seconds), clock, sleep)

    @classmethod
    def unbounded(cls, clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> Deadline:
        """No invocation around (unit tests of a single piece): waits are bounded only by their callers."""
        return cls(math.inf, clock, sleep)

    @classmethod
    def from_context(
        cls,
        context: Any,
        reserve_s: float = DEFAULT_RESERVE_S,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> Deadline:
        """The Lambda context's remaining time (``get_remaining_time_in_millis``) minus ``reserve_s``."""
        remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
        seconds = remaining_ms() / 1000.0 if callable(remaining_ms) else DEFAULT_WITHOUT_CONTEXT_S
        return cls.after(seconds - reserve_s, clock, sleep)

    def remaining(self) -> float:
        return max(0.0, self.ends_at - self.clock())

    def allows(self, seconds: float) -> bool:
        return self.remaining() >= seconds

    def require(self, seconds: float, what: str) -> None:
        """Raise :class:`OutOfTime` unless ``seconds`` still fit."""
        if not self.allows(seconds):
            raise OutOfTime(f"{what}: needs {seconds:.1f}s, {self.remaining():.1f}s left in this invocation")

    def wait(self, seconds: float, what: str) -> None:
        """Sleep ``seconds`` if they fit, else raise :class:`OutOfTime` without sleeping at all."""
        if seconds <= 0:
            return
        self.require(seconds, what)
        self.sleep(seconds)
