"""What the admin routes do: the status view, starting a connection, completing the OAuth callback."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from keaplink.admin.request import state_cookie
from keaplink.connection.decision import next_refresh_at
from keaplink.connection.oauth import authorize_url
from keaplink.connection.states import STATE_LIFETIME_S
from keaplink.errors import CodeExchangeFailed, OAuthDenied, OAuthStateInvalid
from keaplink.observability import TimelinePort, logger

if TYPE_CHECKING:
    from keaplink.connection.oauth import OAuthClient
    from keaplink.connection.states import StateStore
    from keaplink.connection.store import TokenStore
    from keaplink.connection.timeline import TimelineEvent
    from keaplink.connection.token import Connection


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def queue_view(queue: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The actions queue's hold and Keap's daily quota (plain values from the root), times as ISO strings."""
    if queue is None:
        return None
    view: dict[str, Any] = {"held": bool(queue.get("held"))}
    if view["held"]:
        view.update({
            "reason": queue.get("reason"),
            "detail": queue.get("detail"),
            "since": iso(queue.get("since")),
            "until": iso(queue.get("until")),  # null: unknown (an outage), or until the admin reconnects
            "next_probe_at": iso(queue.get("next_probe_at")),
            "last_probe_at": iso(queue.get("last_probe_at")),
            "last_probe_result": queue.get("last_probe_result"),
            "waiting": queue.get("waiting"),
            "waiting_at": iso(queue.get("waiting_at")),
            "lifting_at": iso(queue.get("lifting_at")),  # Keap serves: waiting for the event source to be on
        })
    mapping = queue.get("mapping")  # the event source mapping as the minute check last saw it
    view["mapping"] = None if not mapping else {"state": mapping.get("state"), "seen_at": iso(mapping.get("seen_at"))}
    quota = queue.get("quota")
    view["quota"] = None if not quota else {
        "window": quota.get("window"),
        "available": quota.get("available"),
        "limit": quota.get("limit"),
        "resets_at": iso(quota.get("resets_at")),
        "read_at": iso(quota.get("read_at")),
        "paced_rps": quota.get("paced_rps"),
        "pace": quota.get("pace"),
    }
    return view


def status_view(conn: Connection, auth_mode: str, callback_url: str,
                queue: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The connection's status for humans and scripts. Never contains a token."""
    token = conn.token
    oauth = auth_mode == "oauth"
    return {
        "status": conn.status.value if oauth else "connected",
        "auth_mode": auth_mode,
        "tenant": token.tenant if token else None,
        "expires_at": iso(token.expires_at) if token and oauth else None,
        "refreshed_at": iso(conn.refreshed_at),
        "next_refresh_at": iso(next_refresh_at(conn)) if oauth else None,
        "connected_at": iso(conn.connected_at),
        "refresh_count": conn.refresh_count,
        "refresh_failures": conn.refresh_failures,
        "last_error": conn.last_error,
        "last_error_at": iso(conn.last_error_at),
        "callback_url": callback_url,
        "queue": queue_view(queue),
    }


class TimelineReader(Protocol):
    def recent(self, limit: int = 10) -> list[TimelineEvent]: ...


@dataclass(frozen=True)
class StatusSources:
    """What the status page reads: the connection, its timeline, and a glance at the DLQ (a function, so that
    the admin package needs nothing of the actions package)."""

    store: TokenStore
    timeline: TimelineReader
    dead_letters: Callable[[], dict[str, Any]]
    queue: Callable[[], Mapping[str, Any]] | None = None  # the hold and Keap's quota (actions' state)


def queue_state(sources: StatusSources) -> Mapping[str, Any] | None:
    """The queue's hold and quota, or None when they cannot be read now (logged; the rest still shows)."""
    if sources.queue is None:
        return None
    try:
        return sources.queue()
    except Exception as exc:  # noqa: BLE001 - a view; the connection's status matters more
        logger.warning("queue state unavailable", extra={"error_type": type(exc).__name__})
        return None


def at_a_glance(sources: StatusSources, events: int = 10) -> dict[str, Any]:
    """The night at a glance: the newest timeline events and the dead letters. Either may be unavailable
    (``None``, logged); the status page shows the rest all the same."""
    out: dict[str, Any] = {"timeline": None, "dead_letters": None}
    try:
        out["timeline"] = [{"at": iso(e.at), "kind": e.kind, "label": e.label, "detail": e.detail}
                           for e in sources.timeline.recent(events)]
    except Exception as exc:  # noqa: BLE001 - a view; the connection's status matters more
        logger.warning("timeline unavailable", extra={"error_type": type(exc).__name__})
    try:
        glance = sources.dead_letters()
        out["dead_letters"] = {
            "count": int(glance["count"]),
            "newest": [{"message_id": x["message_id"], "reason": x["reason"], "sent_at": iso(x["sent_at"])}
                       for x in glance["newest"]],
        }
    except Exception as exc:  # noqa: BLE001 - e.g. no DLQ_URL, or SQS refused
        logger.warning("dead letters unavailable", extra={"error_type": type(exc).__name__})
    return out


@dataclass(frozen=True)
class ConnectStart:
    location: str
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
    return ConnectStart(location=authorize_url(keap_authorize_url, client_id, callback_url, state),
                        cookie=state_cookie(state, secure_cookie, STATE_LIFETIME_S))


def complete_connect(
    params: Mapping[str, str],
    admin: str,
    browser_state: str | None,
    states: StateStore,
    store: TokenStore,
    oauth: OAuthClient,
    callback_url: str,
    clock: Callable[[], float] = time.time,
    resume_queue: Callable[[], None] | None = None,
    timeline: TimelinePort | None = None,
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
    token = oauth.exchange_code(code, callback_url, clock())
    conn = store.store_authorized(token, clock())
    logger.info("Keap connected", extra={"tenant": token.tenant, "version": conn.version})
    if timeline is not None:
        timeline.record("connected", f"Keap app {token.tenant or 'unknown'}")
    if resume_queue is not None:
        resume_queue()  # events held while disconnected flow again
    return conn
