"""Pure decisions about when to refresh. No I/O here: everything is unit-tested alone."""

from __future__ import annotations

from enum import Enum

from keaplink.connection.token import Connection, Status

# Keap's tutorial: refresh a 24 h token 3 h before it expires. Kept as a fraction of ``expires_in`` so a
# token with another lifetime (an older example returned 28800 s) is refreshed at the same relative point.
REFRESH_FRACTION = 3 / 24


class RefreshReason(str, Enum):
    FRESH = "fresh"
    DUE = "due"
    EXPIRED = "expired"
    NEEDS_REAUTH = "needs_reauth"
    NOT_CONNECTED = "not_connected"


def refresh_margin(expires_in: int) -> float:
    """Seconds before expiry at which a token becomes due (3 h for Keap's 24 h tokens)."""
    return expires_in * REFRESH_FRACTION


def next_refresh_at(connection: Connection) -> float | None:
    token = connection.token
    if token is None or connection.status is not Status.CONNECTED:
        return None
    return token.expires_at - refresh_margin(token.expires_in)


def should_refresh(connection: Connection, now: float) -> RefreshReason:
    """Why (or why not) the connection's token must be refreshed at ``now``."""
    if connection.status is Status.NEEDS_REAUTH:
        return RefreshReason.NEEDS_REAUTH
    token = connection.token
    if token is None or connection.status is Status.NOT_CONNECTED:
        return RefreshReason.NOT_CONNECTED
    if now >= token.expires_at:
        return RefreshReason.EXPIRED
    if token.expires_at - now < refresh_margin(token.expires_in):
        return RefreshReason.DUE
    return RefreshReason.FRESH
