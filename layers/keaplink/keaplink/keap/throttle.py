"""Keap's informational throttle headers, and the pure decision of how long to hold back because of them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


def _first_int(headers: Mapping[str, str], name: str) -> int | None:
    raw = headers.get(name)
    if not raw:
        return None
    try:
        return int(raw.split("|")[0].strip())  # tenant headers are "minute|day"
    except ValueError:
        return None


@dataclass(frozen=True)
class Throttle:
    """What Keap's headers say is left of the current windows (None where a header is absent)."""

    product_available: int | None = None
    tenant_available: int | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Throttle:
        return cls(
            product_available=_first_int(headers, "x-keap-product-throttle-available"),
            tenant_available=_first_int(headers, "x-keap-tenant-throttle-available"),
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
