"""The HTTP boundary to Keap: one pooled session, and the one translation of answers into typed errors.

Decisions are made from the status code (and, for OAuth, the ``error`` field), never from message text:
Keap's API gateway answers in its own body shape for 401 and 429.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from keaplink.errors import KeapAuthError, KeapError, KeapRateLimited, KeapRequestRejected, KeapUnavailable

if TYPE_CHECKING:
    import requests

USER_AGENT = "keaplink/0.1 (+https://github.com/keaplink/keaplink)"


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


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


def api_key(key: str) -> dict[str, str]:
    """Service Account Keys and Personal Access Tokens use this header instead of a bearer token."""
    return {"X-Keap-API-Key": key}


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


def error_for(response: requests.Response, what: str, body: Any = None) -> KeapError:
    """The typed error for a non-2xx answer: 401 auth, 429 throttled, 5xx unavailable, other 4xx rejected."""
    status = response.status_code
    detail = f"{what}: HTTP {status} {describe(parse_body(response) if body is None else body)}".strip()
    if status == 401:
        return KeapAuthError(detail, status)
    if status == 429:
        return KeapRateLimited(detail, retry_after_seconds(response.headers))
    if status >= 500:
        return KeapUnavailable(detail, status)
    return KeapRequestRejected(detail, status)


def send(method: str, url: str, what: str, timeout: float, **kwargs: Any) -> requests.Response:
    """One request; network failures become KeapUnavailable (status 0)."""
    import requests

    try:
        return session().request(method, url, timeout=timeout, **kwargs)
    except requests.Timeout as exc:
        raise KeapUnavailable(f"{what}: timed out after {timeout:.0f}s", 0) from exc
    except requests.RequestException as exc:
        raise KeapUnavailable(f"{what}: {type(exc).__name__}", 0) from exc
