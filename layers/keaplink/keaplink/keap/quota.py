"""Keap's daily quotas as its response headers report them, and the pure decision of how fast to go.

Keap counts calls per OAuth client (``x-keap-product-quota-*``, 150,000 a day; 30,000 for an API key) and per
Keap app (``x-keap-tenant-throttle-*``, the ``day`` part of the pipe-separated values, 250,000 a day). A spent
daily quota answers 429 until it resets (``x-keap-product-quota-expiry-time``, epoch ms; 00:00 UTC): hours. An
import at full speed spends 150,000 calls in under two hours. :func:`pace` keeps keaplink off that wall: full
speed while the quota left is more than a steady pace needs until the reset, then that steady pace, and a
small reserve that the actions never spend (a probe and the admin's checks still get through).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass

UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}
DAY_S = 86400.0

# Never spent by the actions: 1 % of the window's limit, at least 20 calls — more than the calls already in flight
# when a reading arrives (2 containers x 8 concurrent records), so that keaplink's own traffic stops before Keap's
# wall, and a probe still gets through.
RESERVE_SHARE = 0.01
MIN_RESERVE = 20
# The steady pace per container, kept available until the reset: the slowest at which a batch of 10 still fits one
# invocation (slower, its records would go back and spend their receives). Two containers: 1 request/s, 86,400
# calls a day. What is left beyond what this pace needs until the reset is spent at full speed.
MIN_PACED_RPS = 0.5
# The same for the whole deployment when its containers share one budget (keap/budget.py): what two containers at
# 0.5/s kept before, 86,400 calls a day. With the shared budget, pace() decides the deployment's rate
# (``containers`` 1), and each container books its slots of the shared budget that far apart.
DEPLOYMENT_STEADY_RPS = 1.0


@dataclass(frozen=True)
class Window:
    """One quota window: what is left of it, its limit, and when it resets (epoch seconds)."""

    name: str  # "product" (the OAuth client or the API key) or "tenant" (the Keap app)
    available: int
    limit: int | None
    resets_at: float
    length_s: float

    @property
    def reserve(self) -> int:
        return max(MIN_RESERVE, math.ceil((self.limit or 0) * RESERVE_SHARE))


@dataclass(frozen=True)
class Quota:
    """The daily windows one Keap answer reported, read at ``read_at`` (epoch seconds)."""

    windows: tuple[Window, ...]
    read_at: float

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], now: float) -> Quota | None:
        windows = [w for w in (_product(headers, now), _tenant(headers, now)) if w is not None]
        return cls(tuple(windows), now) if windows else None

    def current(self, now: float) -> tuple[Window, ...]:
        """The windows that have not reset since the reading (a reading from before a reset says nothing)."""
        return tuple(w for w in self.windows if now < w.resets_at)

    def tightest(self, now: float) -> Window | None:
        """The window with the least left above its reserve (what the status page shows)."""
        current = self.current(now)
        return min(current, key=lambda w: w.available - w.reserve) if current else None

    def spent(self, now: float) -> Window | None:
        """A window with nothing left at all (Keap will answer 429 until it resets), if any."""
        return next((w for w in self.current(now) if w.available <= 0), None)


@dataclass(frozen=True)
class Pace:
    """How fast one container may call Keap. ``rate`` 0: the quota is down to its reserve until ``resets_at``."""

    rate: float
    reason: str  # "full_speed" | "spread" | "reserve_reached" | "no_reading"
    resets_at: float | None = None


def pace(quota: Quota | None, now: float, max_rps: float, containers: int,
         steady_rps: float = MIN_PACED_RPS) -> Pace:
    """Requests/s for one of ``containers`` containers, given the latest quota reading (pure). With the shared
    budget, ``containers`` is 1 and ``steady_rps`` :data:`DEPLOYMENT_STEADY_RPS`: the deployment's rate.

    Per window: nothing left above the reserve → 0 until the reset; more left than the steady pace
    (``steady_rps`` per container) needs until the reset → full speed; else what is left, spread over the time
    left — never slower than the steady pace: if others spend the same quota, the reserve is met before the reset,
    and the queue is held until then. The tightest window decides.
    """
    if quota is None or not quota.current(now):
        return Pace(max_rps, "no_reading")
    chosen = Pace(max_rps, "full_speed")
    for window in quota.current(now):
        budget = window.available - window.reserve
        if budget <= 0:
            return Pace(0.0, "reserve_reached", window.resets_at)
        left = max(1.0, window.resets_at - now)
        if budget > steady_rps * max(1, containers) * left:
            continue
        rate = min(max_rps, max(steady_rps, budget / left / max(1, containers)))
        if rate < chosen.rate:
            chosen = Pace(rate, "spread", window.resets_at)
    return chosen


class QuotaGauge:
    """The latest reading in this container (thread-safe), kept across batches: a new batch's first call is
    paced by what the last batch learned, until the window resets."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: Quota | None = None

    def update(self, quota: Quota) -> None:
        with self._lock:
            if self._latest is None or quota.read_at >= self._latest.read_at:
                self._latest = quota

    @property
    def latest(self) -> Quota | None:
        with self._lock:
            return self._latest


# --- parsing ---------------------------------------------------------------------------------------------
def _int(raw: str | None) -> int | None:
    try:
        return int(str(raw).strip()) if raw not in (None, "") else None
    except ValueError:
        return None


def _length(unit: str | None, interval: str | None) -> float | None:
    seconds = UNIT_SECONDS.get((unit or "").strip().lower())
    if seconds is None:
        return None
    return float(seconds * (_int(interval) or 1))


def _next_utc_midnight(now: float) -> float:
    return (math.floor(now / DAY_S) + 1) * DAY_S


def _epoch_seconds(raw: str | None) -> float | None:
    value = _int(raw)
    if value is None or value <= 0:
        return None
    return value / 1000.0 if value > 10**11 else float(value)  # Keap sends epoch ms; tolerate seconds


def _product(headers: Mapping[str, str], now: float) -> Window | None:
    available = _int(headers.get("x-keap-product-quota-available"))
    if available is None:
        return None
    length = _length(headers.get("x-keap-product-quota-time-unit"), headers.get("x-keap-product-quota-interval"))
    resets_at = _epoch_seconds(headers.get("x-keap-product-quota-expiry-time")) or _next_utc_midnight(now)
    return Window("product", available, _int(headers.get("x-keap-product-quota-limit")), resets_at, length or DAY_S)


def _tenant(headers: Mapping[str, str], now: float) -> Window | None:
    """The ``day`` part of the tenant's pipe-separated values (e.g. ``minute|day`` and ``9990|249990``)."""
    units = [u.strip().lower() for u in (headers.get("x-keap-tenant-throttle-time-unit") or "").split("|")]
    if "day" not in units:
        return None
    i = units.index("day")

    def part(name: str) -> str | None:
        values = (headers.get(name) or "").split("|")
        return values[i] if i < len(values) else None

    available = _int(part("x-keap-tenant-throttle-available"))
    if available is None:
        return None
    length = _length("day", part("x-keap-tenant-throttle-interval")) or DAY_S
    # No expiry header for the Keap app's window: Keap's daily quotas reset at 00:00 UTC.
    return Window("tenant", available, _int(part("x-keap-tenant-throttle-limit")), _next_utc_midnight(now), length)
