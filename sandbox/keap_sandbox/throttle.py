"""Keap's throttles and quotas (the "Throttles and Quotas" page, summarised in KEAP.md).

Limits modelled (all configurable, keys of :data:`DEFAULT_LIMITS`):

* OAuth2 client, per client id: ``oauth_per_minute`` 1,500 and ``oauth_per_day`` 150,000.
* PAT/SAK, per key: ``key_per_second`` 10, ``key_per_minute`` 240, ``key_per_day`` 30,000.
* Keap app (tenant), all credentials together: ``tenant_per_minute`` 10,000, ``tenant_per_day`` 250,000.
* Spike arrest, per credential (client id or key): ``spike_per_second`` 25.

Minute and day windows are fixed windows on the *sandbox* clock (days reset at 00:00 UTC), so a test
can advance the clock to roll them over. Per-second windows are sliding one-second windows on the
*real* monotonic clock, so that tests using real concurrency see real spikes, stamped when a request
arrives (before the simulated latency: a gateway counts before the API works), so a request checked a
little later than one that arrived after it still counts in arrival order. Rejected requests are
not counted.

This class holds no lock of its own: :class:`keap_sandbox.state.SandboxState` calls it under its lock.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

DEFAULT_LIMITS: dict[str, int] = {
    "oauth_per_minute": 1500,
    "oauth_per_day": 150000,
    "key_per_second": 10,
    "key_per_minute": 240,
    "key_per_day": 30000,
    "tenant_per_minute": 10000,
    "tenant_per_day": 250000,
    "spike_per_second": 25,
}

MINUTE = 60
DAY = 86400


@dataclass
class ThrottleResult:
    """Outcome of one throttle check: ``allowed`` plus the headers to send either way."""

    allowed: bool
    headers: dict[str, str]
    identifier: str = ""
    retry_after: int = 0
    violated: str = ""


@dataclass
class _Fixed:
    window: int = -1
    used: int = 0

    def current(self, window: int) -> int:
        return self.used if self.window == window else 0

    def add(self, window: int) -> None:
        if self.window != window:
            self.window = window
            self.used = 0
        self.used += 1


@dataclass
class _Sliding:
    stamps: list[float] = field(default_factory=list)  # arrival times, in order

    def current(self, mono: float) -> int:
        """The most requests in a one-second window that would also hold one arriving at ``mono`` (windows
        ending at ``mono`` or at a later arrival already counted, which a request checked late must respect)."""
        del self.stamps[:bisect.bisect_right(self.stamps, mono - 2.0)]  # older than any window still checked
        ends = [mono, *self.stamps[bisect.bisect_right(self.stamps, mono):bisect.bisect_left(self.stamps, mono + 1.0)]]
        return max(bisect.bisect_right(self.stamps, end) - bisect.bisect_right(self.stamps, end - 1.0) for end in ends)

    def add(self, mono: float) -> None:
        bisect.insort(self.stamps, mono)


class Throttle:
    """Counters for every window; :meth:`check` counts a request (if allowed) and builds headers."""

    def __init__(self) -> None:
        self._fixed: dict[tuple[str, str], _Fixed] = {}
        self._sliding: dict[tuple[str, str], _Sliding] = {}

    def reset(self) -> None:
        self._fixed.clear()
        self._sliding.clear()

    def preset(self, counter: str, ident: str, now: float, used: int) -> int:
        """Set ``counter`` (e.g. ``oauth_day``, ``key_minute``, ``tenant_day``) of ``ident`` for the
        window containing ``now`` to ``used``; returns when that window ends (epoch milliseconds)."""
        size = MINUTE if counter.endswith("_minute") else DAY
        window = int(now // size)
        fixed = self._f(counter, ident)
        fixed.window, fixed.used = window, used
        return (window + 1) * size * 1000

    def _f(self, kind: str, ident: str) -> _Fixed:
        return self._fixed.setdefault((kind, ident), _Fixed())

    def _s(self, kind: str, ident: str) -> _Sliding:
        return self._sliding.setdefault((kind, ident), _Sliding())

    def check(
        self,
        *,
        auth_kind: str,
        identity: str,
        tenant: str,
        now: float,
        mono: float,
        limits: dict[str, int],
        enforce: bool,
    ) -> ThrottleResult:
        """Check and count one REST request.

        ``auth_kind`` is ``"oauth"`` (``identity`` = client id) or ``"key"`` (``identity`` = the key).
        With ``enforce`` False the request is always allowed but still counted, so the headers move.
        """
        minute = int(now // MINUTE)
        day = int(now // DAY)
        is_key = auth_kind == "key"
        prefix = "key" if is_key else "oauth"
        p_min = self._f(prefix + "_minute", identity)
        p_day = self._f(prefix + "_day", identity)
        t_min = self._f("tenant_minute", tenant)
        t_day = self._f("tenant_day", tenant)
        spike = self._s("spike", identity)
        key_sec = self._s("key_second", identity) if is_key else None

        p_min_limit = limits[prefix + "_per_minute"]
        p_day_limit = limits[prefix + "_per_day"]
        t_min_limit = limits["tenant_per_minute"]
        t_day_limit = limits["tenant_per_day"]

        retry_minute = max(1, math.ceil((minute + 1) * MINUTE - now))
        retry_day = max(1, math.ceil((day + 1) * DAY - now))
        checks: list[tuple[str, int, int, int, str]] = [
            ("spike_per_second", spike.current(mono), limits["spike_per_second"], 1, identity),
        ]
        if key_sec is not None:
            checks.append(("key_per_second", key_sec.current(mono), limits["key_per_second"], 1, identity))
        checks += [
            (prefix + "_per_minute", p_min.current(minute), p_min_limit, retry_minute, identity),
            (prefix + "_per_day", p_day.current(day), p_day_limit, retry_day, identity),
            ("tenant_per_minute", t_min.current(minute), t_min_limit, retry_minute, tenant),
            ("tenant_per_day", t_day.current(day), t_day_limit, retry_day, tenant),
        ]
        violated = ""
        retry_after = 0
        identifier = ""
        if enforce:
            for name, used, limit, retry, ident in checks:
                if used >= limit:
                    violated, retry_after, identifier = name, retry, ident
                    break
        allowed = not violated
        if allowed:
            p_min.add(minute)
            p_day.add(day)
            t_min.add(minute)
            t_day.add(day)
            spike.add(mono)
            if key_sec is not None:
                key_sec.add(mono)

        pm_used, pd_used = p_min.current(minute), p_day.current(day)
        tm_used, td_used = t_min.current(minute), t_day.current(day)
        headers = {
            "x-keap-product-throttle-limit": str(p_min_limit),
            "x-keap-product-throttle-time-unit": "minute",
            "x-keap-product-throttle-interval": "1",
            "x-keap-product-throttle-available": str(max(0, p_min_limit - pm_used)),
            "x-keap-product-throttle-used": str(pm_used),
            "x-keap-product-quota-limit": str(p_day_limit),
            "x-keap-product-quota-time-unit": "day",
            "x-keap-product-quota-interval": "1",
            "x-keap-product-quota-available": str(max(0, p_day_limit - pd_used)),
            "x-keap-product-quota-used": str(pd_used),
            "x-keap-product-quota-expiry-time": str((day + 1) * DAY * 1000),
            "x-keap-tenant-id": tenant,
            "x-keap-tenant-throttle-limit": f"{t_min_limit}|{t_day_limit}",
            "x-keap-tenant-throttle-time-unit": "minute|day",
            "x-keap-tenant-throttle-interval": "1|1",
            "x-keap-tenant-throttle-available": (f"{max(0, t_min_limit - tm_used)}|{max(0, t_day_limit - td_used)}"),
            "x-keap-tenant-throttle-used": f"{tm_used}|{td_used}",
        }
        if is_key:
            headers["x-keap-product-spike-limit"] = f"{limits['key_per_second']}ps"
        return ThrottleResult(
            allowed=allowed,
            headers=headers,
            identifier=identifier,
            retry_after=retry_after,
            violated=violated,
        )
