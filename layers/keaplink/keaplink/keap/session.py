"""One caller's way to Keap: the credential from an :class:`AuthSource`, the container's rate limit, Keap's
throttle headers and daily quota, the retries that are cheaper here than a trip back through the queue, and
the point where retrying stops because Keap cannot serve.

A session reads its credential once (for the actions, the one token read of an SQS batch). When Keap
refuses it (401), the session asks the source for a fresh one — for OAuth, the single refresh path — once
per session, under a lock, so concurrent records that met the same 401 share one refresh.

When Keap cannot serve — several calls in a row failed after their retries, a long ``Retry-After``, a spent
daily quota, or a quota down to the reserve keaplink keeps — the session *stops*: every later call raises the
same typed error at once, without reaching Keap (:class:`~keaplink.errors.KeapDown`,
:class:`~keaplink.errors.KeapThrottledPersistently`, :class:`~keaplink.errors.KeapQuotaSpent`). The batch turns
those into a hold of the queue. Every wait is bounded by the invocation's :class:`Deadline`.
"""

from __future__ import annotations

import copy
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from keaplink.errors import (
    KeapAuthError,
    KeapDown,
    KeapError,
    KeapQuotaSpent,
    KeapRateLimited,
    KeapThrottledPersistently,
    KeapUnavailable,
)
from keaplink.keap.deadline import Deadline
from keaplink.keap.http import error_for, send
from keaplink.keap.quota import MIN_PACED_RPS, Quota, QuotaGauge, pace
from keaplink.keap.rate_limit import Limiter
from keaplink.keap.throttle import Throttle, throttle_pause
from keaplink.observability import MetricsPort, MetricUnit, NullMetrics, logger

if TYPE_CHECKING:
    import requests


@dataclass(frozen=True)
class Credential:
    """Headers that authenticate a call, which stored token they came from (None for an API key), and the
    Keap app (tenant) they act on: contact and tag ids are only valid within it."""

    headers: Mapping[str, str] = field(repr=False)
    version: int | None = None
    tenant: str | None = None


class AuthSource(Protocol):
    def current(self, deadline: Deadline | None = None) -> Credential:
        """A credential to use now (an OAuth token is refreshed first if due, within ``deadline``)."""
        ...

    def after_refused(self, refused: Credential, deadline: Deadline | None = None) -> Credential:
        """Keap answered 401 to ``refused``: a fresh credential, or a typed error saying why there is none."""
        ...


@dataclass(frozen=True)
class Retries:
    transient_attempts: int = 2  # a 5xx or timeout is retried once in place, then the record is returned
    rate_limited_attempts: int = 3
    max_inline_wait_s: float = 5.0  # a longer Retry-After returns the record: its visibility timeout waits
    hold_after_retry_after_s: float = 30.0  # a Retry-After this long stops the session: hold, do not retry
    trip_after_failed_calls: int = 5  # this many calls in a row (in the container) failed after their retries
    min_call_s: float = 1.0  # a call is started only with this much of the invocation left


class FailureStreak:
    """Keap calls that failed in a row after their retries, in this container, across batches (a quiet batch of
    one record sees one call: an outage is a streak over several batches). Any success ends it, and so does a
    quiet ``forget_after_s``."""

    def __init__(self, forget_after_s: float = 600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._last = -math.inf
        self._forget_after_s = forget_after_s
        self._clock = clock

    def failed(self) -> int:
        with self._lock:
            now = self._clock()
            if now - self._last > self._forget_after_s:
                self._count = 0
            self._count += 1
            self._last = now
            return self._count

    def succeeded(self) -> None:
        with self._lock:
            self._count = 0


@dataclass(frozen=True)
class Pacing:
    """Keap's daily quota, shared by ``containers`` containers (1 with the shared budget: the pace is the
    deployment's): the latest reading is kept in ``gauge``."""

    gauge: QuotaGauge
    containers: int
    clock: Callable[[], float] = time.time  # epoch seconds: Keap's quota windows end at absolute times
    steady_rps: float = MIN_PACED_RPS


class KeapSession:
    def __init__(
        self,
        api_url: str,
        auth: AuthSource,
        timeout: float,
        limiter: Limiter | None = None,
        metrics: MetricsPort | None = None,
        retries: Retries | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: Callable[..., requests.Response] = send,
        deadline: Deadline | None = None,
        pacing: Pacing | None = None,
        streak: FailureStreak | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self._auth = auth
        self._limiter = limiter
        self._metrics = metrics or NullMetrics()
        self._retries = retries or Retries()
        self._deadline = deadline or Deadline.unbounded(sleep=sleep)
        self._pacing = pacing
        self._transport = transport  # keap.http.send; unit tests answer in memory
        self._lock = threading.Lock()
        self._blocked: KeapError | None = None  # Keap cannot serve: every later call raises this at once
        self._streak = streak or FailureStreak()  # the container's, from the root; a session's own in unit tests
        self.calls = 0  # requests sent, for the batch's log line and the benchmark
        self.quota: Quota | None = None  # the latest daily-quota reading this session saw
        if pacing is not None:
            self._apply_pace(pacing.gauge.latest)  # what this container learned before: paced from the first call
        self._credential = auth.current(self._deadline)
        self._reauthorized = False

    @property
    def blocked(self) -> KeapError | None:
        return self._blocked

    @property
    def tenant(self) -> str | None:
        return self._credential.tenant

    def request(self, method: str, path: str, what: str, *, repeatable: bool = True,
                **kwargs: Any) -> requests.Response:
        """One REST call, retried in place on a 401 (once per session), a short 429 or one 5xx/timeout.

        ``repeatable=False`` (a goal, a note: Keap would act twice): a call that got no answer is not sent
        again here, since Keap may have acted; the caller decides what an unknown outcome means."""
        transient = throttled = 0
        while True:
            self._raise_if_blocked()
            credential = self._credential
            try:
                response = self._send(method, path, what, credential, **kwargs)
            except KeapAuthError:
                if not self._reauthorize(credential):
                    raise  # a fresh credential was refused too: hand the record back, do not loop
                continue
            except KeapQuotaSpent as exc:
                self._block(exc)
                raise
            except KeapRateLimited as exc:
                throttled += 1
                self._metrics.add_metric("KeapThrottled", MetricUnit.Count, 1)
                wait = exc.retry_after if exc.retry_after is not None else random.uniform(1.0, 3.0)
                if wait >= self._retries.hold_after_retry_after_s:
                    stop = KeapThrottledPersistently(f"{exc} (Retry-After {wait:.0f}s)", wait)
                    self._block(stop)
                    raise stop from exc
                if wait > self._retries.max_inline_wait_s or throttled >= self._retries.rate_limited_attempts:
                    self._call_failed(exc)
                    raise
                if self._limiter is not None:
                    self._limiter.pause(wait)  # every caller in this container holds back, not just this one
                else:
                    self._deadline.wait(wait, what)
                continue  # with a limiter, the next attempt's acquire() waits until the pause is over
            except KeapUnavailable as exc:
                transient += 1
                if transient >= self._retries.transient_attempts or (not repeatable and exc.status == 0):
                    self._call_failed(exc)
                    raise
                self._deadline.wait(random.uniform(0.2, 0.6) * transient, what)
                continue
            self._streak.succeeded()
            return response

    def _send(self, method: str, path: str, what: str, credential: Credential, **kwargs: Any) -> requests.Response:
        if self._limiter is not None:
            self._limiter.acquire(self._deadline)
        self._deadline.require(self._retries.min_call_s, what)
        with self._lock:
            self.calls += 1
        headers = {**credential.headers, "Accept": "application/json"}
        timeout = min(self.timeout, self._deadline.remaining())
        response = self._transport(method, f"{self.api_url}{path}", what, timeout, headers=headers, **kwargs)
        self._respect_throttle_headers(Throttle.from_headers(response.headers))
        quota = self._read_quota(response.headers)
        if response.status_code == 429 and quota is not None:
            spent = quota.spent(quota.read_at)
            if spent is not None:
                raise KeapQuotaSpent(f"{what}: Keap's daily quota ({spent.name}) is spent until it resets",
                                     resets_at=spent.resets_at)
        if response.status_code >= 400:
            raise error_for(response, what)
        return response

    # --- when to stop ----------------------------------------------------------------------------------
    def _raise_if_blocked(self) -> None:
        blocked = self._blocked
        if blocked is not None:
            raise copy.copy(blocked)  # a copy per raise: concurrent records each get their own traceback

    def _block(self, error: KeapError) -> None:
        with self._lock:
            if self._blocked is None:
                self._blocked = error
                logger.warning("Keap cannot serve: no more calls in this batch",
                               extra={"error_type": type(error).__name__, "error": str(error)[:200]})

    def _call_failed(self, error: KeapError) -> None:
        """A call failed after its retries; enough of them in a row and Keap is down, not just slow."""
        in_a_row = self._streak.failed()
        if in_a_row < self._retries.trip_after_failed_calls:
            return
        stop: KeapError
        if isinstance(error, KeapRateLimited):
            stop = KeapThrottledPersistently(f"Keap answered 429 to {in_a_row} calls in a row: {error}",
                                             error.retry_after)
        else:
            stop = KeapDown(f"{in_a_row} Keap calls in a row failed: {error}", error.status)
        self._block(stop)
        raise stop from error

    # --- Keap's quota and throttle headers ----------------------------------------------------------------
    def _read_quota(self, headers: Mapping[str, str]) -> Quota | None:
        if self._pacing is None:
            return None
        quota = Quota.from_headers(headers, self._pacing.clock())
        if quota is not None:
            self.quota = quota
            self._pacing.gauge.update(quota)
            self._apply_pace(quota)
        return quota

    def _apply_pace(self, quota: Quota | None) -> None:
        assert self._pacing is not None
        max_rps = self._limiter.max_rate if self._limiter is not None else math.inf
        decided = pace(quota, self._pacing.clock(), max_rps, self._pacing.containers, self._pacing.steady_rps)
        if decided.rate <= 0:
            self._block(KeapQuotaSpent("Keap's daily quota is down to the reserve keaplink keeps",
                                       resets_at=decided.resets_at))
        elif self._limiter is not None:
            self._limiter.set_rate(decided.rate)

    def _reauthorize(self, refused: Credential) -> bool:
        """Replace a refused credential once per session; True when the caller should try again."""
        with self._lock:
            if self._credential is not refused:
                return True  # another caller already replaced it: use theirs
            if self._reauthorized:
                return False
            self._credential = self._auth.after_refused(refused, self._deadline)
            self._reauthorized = True
            return True

    def _respect_throttle_headers(self, throttle: Throttle) -> None:
        if self._limiter is None:
            return
        pause = throttle_pause(throttle, self._limiter.rate)
        if pause > 0:
            self._limiter.pause(pause)
            self._metrics.add_metric("KeapSlowedDown", MetricUnit.Count, 1)
            logger.info("Keap's throttle headers say the window is nearly spent: slowing down",
                        extra={"pause_s": pause, "product_available": throttle.product_available,
                               "tenant_available": throttle.tenant_available})
