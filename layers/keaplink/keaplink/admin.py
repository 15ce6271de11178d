"""What the admin routes do: the status view, starting a connection, completing the OAuth callback."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from keaplink.errors import CodeExchangeFailed, OAuthDenied, OAuthStateInvalid
from keaplink.keap_token import Connection
from keaplink.oauth import OAuthClient, authorize_url
from keaplink.observability import logger
from keaplink.queue_gate import QueueGate
from keaplink.refresh_policy import next_refresh_at
from keaplink.token_store import STATE_LIFETIME_S, StateStore, TokenStore

STATE_COOKIE = "keaplink_oauth_state"


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def status_view(conn: Connection, auth_mode: str, callback_url: str) -> dict[str, Any]:
    """The connection's status for humans and scripts. Never contains a token."""
    token = conn.token
    if auth_mode == "api_key":
        status = "connected"
    else:
        status = conn.status.value
    return {
        "status": status,
        "auth_mode": auth_mode,
        "tenant": token.tenant if token else None,
        "expires_at": iso(token.expires_at) if token and auth_mode == "oauth" else None,
        "refreshed_at": iso(conn.refreshed_at),
        "next_refresh_at": iso(next_refresh_at(conn)) if auth_mode == "oauth" else None,
        "connected_at": iso(conn.connected_at),
        "refresh_count": conn.refresh_count,
        "refresh_failures": conn.refresh_failures,
        "last_error": conn.last_error,
        "last_error_at": iso(conn.last_error_at),
        "callback_url": callback_url,
    }


@dataclass(frozen=True)
class ConnectStart:
    location: str
    state: str
    cookie: str


def start_connect(
    states: StateStore,
    admin: str,
    client_id: str,
    keap_authorize_url: str,
    callback_url: str,
    now: float,
    secure_cookie: bool,
) -> ConnectStart:
    state = states.issue(admin, now)
    cookie = (
        f"{STATE_COOKIE}={state}; Max-Age={STATE_LIFETIME_S}; Path=/; HttpOnly; SameSite=Lax"
        + ("; Secure" if secure_cookie else "")
    )
    location = authorize_url(keap_authorize_url, client_id, callback_url, state)
    return ConnectStart(location=location, state=state, cookie=cookie)


def cookie_value(cookies: list[str] | str | None, name: str = STATE_COOKIE) -> str | None:
    """Find one cookie in a Cookie header (or API Gateway's list of cookies)."""
    if not cookies:
        return None
    parts = cookies if isinstance(cookies, list) else [cookies]
    for part in parts:
        for pair in part.split(";"):
            key, sep, value = pair.strip().partition("=")
            if sep and key == name:
                return value
    return None


def complete_connect(
    params: Mapping[str, str],
    admin: str,
    browser_state: str | None,
    states: StateStore,
    store: TokenStore,
    oauth: Callable[[], OAuthClient],
    callback_url: str,
    clock: Callable[[], float] = time.time,
    gate: QueueGate | None = None,
) -> Connection:
    """Validate the callback and store the new token. Raises a typed error, leaving the store untouched.

    The ``state`` must be one this admin asked for, not expired, not used, and the same one this browser
    was given (cookie) — so a forged or replayed callback cannot connect someone else's Keap app.
    """
    state = params.get("state")
    if "error" in params:
        # Consume the state anyway so a denied attempt cannot be replayed; a bad one is irrelevant here.
        try:
            states.consume(state, admin, clock())
        except OAuthStateInvalid:
            pass
        raise OAuthDenied(params.get("error", ""), params.get("error_description", ""))
    if not state or not browser_state or not hmac.compare_digest(state.encode(), browser_state.encode()):
        raise OAuthStateInvalid("the state does not match the one this browser was given")
    states.consume(state, admin, clock())
    code = params.get("code")
    if not code:
        raise CodeExchangeFailed("Keap sent no authorization code", 400)
    token = oauth().exchange_code(code, callback_url, clock())
    conn = store.store_authorized(token, clock())
    logger.info("Keap connected", extra={"tenant": token.tenant, "version": conn.version})
    if gate is not None:
        gate.resume_quietly()  # events held while disconnected flow again
    return conn

