"""The HTTP boundary to Keap: one pooled session, and translation of answers into typed errors.

Decisions are made from the status code (and the OAuth ``error`` field), never from message text:
Keap's API gateway answers in its own body shape for 401 and 429.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from keaplink.errors import (
    KeapAuthError,
    KeapError,
    KeapRateLimited,
    KeapRequestRejected,
    KeapUnavailable,
)

USER_AGENT = "keaplink/0.1 (+https://github.com/keaplink/keaplink)"


if TYPE_CHECKING:
    import requests


@lru_cache(maxsize=1)
def session() -> requests.Session:
    """One keep-alive session per container; its pool fits the actions function's concurrency.

    requests is imported on first use, to keep it off the cold-start import path.
    """
    import requests
    from requests.adapters import HTTPAdapter

    s = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
    s.mount("https://", adapter)
    s.mount("http://", adapter)
    s.headers["User-Agent"] = USER_AGENT
    return s


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare enough to fall back to our own backoff


def describe(body: Any) -> str:
    """A short, token-free description of an error body for logs and the status page."""
    if isinstance(body, dict):
        if "fault" in body and isinstance(body["fault"], dict):
            return str(body["fault"].get("faultstring", "fault"))[:200]
        for key in ("error_description", "message", "error"):
            if key in body:
                return str(body[key])[:200]
    return str(body)[:200] if body else ""


def parse_body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


def raise_for_status(response: requests.Response, what: str) -> None:
    """Map a non-2xx answer of the REST API to a typed error."""
    status = response.status_code
    if status < 400:
        return
    detail = f"{what}: HTTP {status} {describe(parse_body(response))}".strip()
    if status == 401:
        raise KeapAuthError(detail, status)
    if status == 429:
        raise KeapRateLimited(detail, retry_after_seconds(response.headers))
    if status >= 500:
        raise KeapUnavailable(detail, status)
    raise KeapRequestRejected(detail, status)


def send(method: str, url: str, what: str, timeout: float, **kwargs: Any) -> requests.Response:
    """One request; network failures become KeapUnavailable (status 0)."""
    import requests

    try:
        return session().request(method, url, timeout=timeout, **kwargs)
    except requests.Timeout as exc:
        raise KeapUnavailable(f"{what}: timed out after {timeout:.0f}s", 0) from exc
    except requests.RequestException as exc:
        raise KeapUnavailable(f"{what}: {type(exc).__name__}", 0) from exc


@dataclass(frozen=True)
class Throttle:
    """What Keap's informational headers say is left (None where a header is absent)."""

    product_available: int | None = None
    product_limit: int | None = None
    tenant_available: int | None = None
    quota_available: int | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Throttle:
        def first_int(name: str) -> int | None:
            raw = headers.get(name)
            if not raw:
                return None
            try:
                return int(raw.split("|")[0].strip())  # tenant headers are "minute|day"
            except ValueError:
                return None

        return cls(
            product_available=first_int("x-keap-product-throttle-available"),
            product_limit=first_int("x-keap-product-throttle-limit"),
            tenant_available=first_int("x-keap-tenant-throttle-available"),
            quota_available=first_int("x-keap-product-quota-available"),
        )


def throttle_pause(throttle: Throttle, per_second: float) -> float:
    """How long to hold back, given what Keap's headers say is left of the current windows (pure).

    Our own rate stays under Keap's limits, but other clients of the same client id or Keap app share
    them. When less than about two seconds of our traffic is left in a window, wait a little instead
    of running into 429s: longer the closer to zero.
    """
    left = [v for v in (throttle.product_available, throttle.tenant_available) if v is not None]
    if not left:
        return 0.0
    lowest = min(left)
    reserve = 2 * per_second
    if lowest >= reserve:
        return 0.0
    return round(5.0 * (1 - max(lowest, 0) / reserve), 2)


__all__ = ["KeapError", "Throttle", "raise_for_status", "send", "session", "throttle_pause"]
