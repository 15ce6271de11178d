"""The sandbox clock: wall-clock time plus an adjustable offset.

Everything that Keap measures in minutes or days (token and code lifetimes, refresh-token age,
per-minute and per-day throttle windows, contact timestamps) runs on this clock, so tests can jump a
day or 45 days ahead without waiting. Only the per-second spike window uses the real monotonic clock.
"""

from __future__ import annotations

import threading
import time


class SandboxClock:
    """Thread-safe clock: ``time.time()`` shifted by an offset that tests can move."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0

    def now(self) -> float:
        """Current sandbox time as epoch seconds."""
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock forward (or back, if negative) and return the new time."""
        with self._lock:
            self._offset += float(seconds)
            return time.time() + self._offset

    def set(self, epoch: float) -> float:
        """Set the clock to ``epoch`` (it keeps ticking from there) and return it."""
        with self._lock:
            self._offset = float(epoch) - time.time()
            return time.time() + self._offset

    def reset(self) -> None:
        """Back to real time."""
        with self._lock:
            self._offset = 0.0

    @property
    def offset(self) -> float:
        with self._lock:
            return self._offset
