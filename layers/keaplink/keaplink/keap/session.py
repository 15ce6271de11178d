"""One caller's way to Keap: the credential from an :class:`AuthSource`, the container's rate limit, Keap's
throttle headers, and the retries that are cheaper here than a trip back through the queue.

A session reads its credential once (for the actions, the one token read of an SQS batch). When Keap
refuses it (401), the session asks the source for a fresh one — for OAuth, the single refresh path — once
per session, under a lock, so concurrent records that met the same 401 share one refresh.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from keaplink.errors import KeapAuthError, KeapRateLimited, KeapUnavailable
from keaplink.keap.http import error_for, send
from keaplink.keap.rate_limit import RateLimiter
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
    def current(self) -> Credential:
        """A credential to use now (an OAuth token is refreshed first if due)."""
        ...

    def after_refused(self, refused: Credential) -> Credential:
        """Keap answered 401 to ``refused``: a fresh credential, or a typed error saying why there is none."""
        ...


@dataclass(frozen=True)
class Retries:
    transient_attempts: int = 2  # a 5xx or timeout is retried once in place, then the record is returned
    rate_limited_attempts: int = 3
    max_inline_wait_s: float = 5.0  # a longer Retry-After returns the record: its visibility timeout waits


class KeapSession:
    def __init__(
        self,
        api_url: str,
        auth: AuthSource,
        timeout: float,
        limiter: RateLimiter | None = None,
        metrics: MetricsPort | None = None,
        retries: Retries | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: Callable[..., requests.Response] = send,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self._auth = auth
        self._limiter = limiter
        self._metrics = metrics or NullMetrics()
        self._retries = retries or Retries()
        self._sleep = sleep
        self._transport = transport  # keap.http.send; unit tests answer in memory
        self._lock = threading.Lock()
        self._credential = auth.current()
        self._reauthorized = False
        self.calls = 0  # requests sent, for the batch's log line and the benchmark

    @property
    def tenant(self) -> str | None:
        return self._credential.tenant

    def request(self, method: str, path: str, what: str, **kwargs: Any) -> requests.Response:
        """One REST call, retried in place on a 401 (once per session), a short 429 or one 5xx/timeout."""
        transient = throttled = 0
        while True:
            credential = self._credential
            try:
                return self._send(method, path, what, credential, **kwargs)
            except KeapAuthError:
                if not self._reauthorize(credential):
                    raise  # a fresh credential was refused too: hand the record back, do not loop
            except KeapRateLimited as exc:
                throttled += 1
                wait = exc.retry_after if exc.retry_after is not None else random.uniform(1.0, 3.0)
                if self._limiter is not None:
                    self._limiter.pause(wait)  # every caller in this container holds back, not just this one
                self._metrics.add_metric("KeapThrottled", MetricUnit.Count, 1)
                if wait > self._retries.max_inline_wait_s or throttled >= self._retries.rate_limited_attempts:
                    raise
                if self._limiter is None:
                    self._sleep(wait)
                # else the next attempt's limiter.acquire() sleeps until the pause is over
            except KeapUnavailable:
                transient += 1
                if transient >= self._retries.transient_attempts:
                    raise
                self._sleep(random.uniform(0.2, 0.6) * transient)

    def _send(self, method: str, path: str, what: str, credential: Credential, **kwargs: Any) -> requests.Response:
        if self._limiter is not None:
            self._limiter.acquire()
        with self._lock:
            self.calls += 1
        headers = {**credential.headers, "Accept": "application/json"}
        response = self._transport(method, f"{self.api_url}{path}", what, self.timeout, headers=headers, **kwargs)
        self._respect_throttle_headers(Throttle.from_headers(response.headers))
        if response.status_code >= 400:
            raise error_for(response, what)
        return response

    def _reauthorize(self, refused: Credential) -> bool:
        """Replace a refused credential once per session; True when the caller should try again."""
        with self._lock:
            if self._credential is not refused:
                return True  # another caller already replaced it: use theirs
            if self._reauthorized:
                return False
            self._credential = self._auth.after_refused(refused)
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
