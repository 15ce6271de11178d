"""The one refresh path, used by the schedule, by "refresh now" and by the actions on a 401.

Keap's refresh tokens are single-use: two concurrent refreshes burn the connection, and a refresh whose
new token is not saved loses it. So: take a short lease in DynamoDB, re-read, use a token someone else
just saved if there is one, else refresh and save the new pair with a conditional write before anything
else happens.

And within the caller's time: Lambda stops a function at its timeout, whatever it is doing. A Keap call is
started only when the invocation's :class:`~keaplink.keap.deadline.Deadline` leaves time for the longest
answer *and* the save after it (:attr:`RefreshTimings.keap_call_s` + :attr:`RefreshTimings.save_s`); backoffs
and ``Retry-After`` waits are short and bounded by the same deadline. A refresh that meets a reconnect (Keap
refused the old grant because the admin just authorized a new one) returns the new authorization.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from keaplink.connection.decision import RefreshReason, should_refresh
from keaplink.connection.token import Connection, Status, Token
from keaplink.errors import (
    KeapClientConfigError,
    KeapRateLimited,
    KeapUnavailable,
    LeaseBusy,
    NeedsReauth,
    NotConnected,
    OutOfTime,
    RefreshTokenDead,
    RefreshTokenDoubtful,
    TokenConflict,
)
from keaplink.keap.deadline import Deadline
from keaplink.observability import MetricsPort, MetricUnit, NullMetrics, NullTimeline, TimelinePort, logger

if TYPE_CHECKING:
    from keaplink.connection.oauth import OAuthClient
    from keaplink.connection.store import TokenStore

Clock = Callable[[], float]
Sleep = Callable[[float], None]
Checkpoint = Callable[[str], None]

# Steps of the refresh path, in order; a checkpoint hook between them lets the soak test crash anywhere.
STEPS = ("loaded", "lease_taken", "reread", "keap_refreshed", "saved")


class Outcome(str, Enum):
    FRESH = "fresh"  # nothing to do
    REFRESHED = "refreshed"  # we refreshed and saved
    REFRESHED_BY_OTHER = "refreshed_by_other"  # someone else did (or the admin reconnected): we use theirs
    KEPT = "kept"  # due, the refresh failed for now, and the current token is still valid: it is used


@dataclass(frozen=True)
class RefreshResult:
    outcome: Outcome
    reason: RefreshReason
    connection: Connection

    @property
    def refreshed(self) -> bool:
        """A new token is in use (ours or another caller's), as opposed to the one we had already."""
        return self.outcome in (Outcome.REFRESHED, Outcome.REFRESHED_BY_OTHER)


# Errors of a refresh that leave the current token as it was (Keap or the lease could not help right now).
NOT_NOW = (KeapUnavailable, KeapRateLimited, KeapClientConfigError, LeaseBusy, OutOfTime)


@dataclass
class RefreshTimings:
    # Longer than the longest-living holder: every function that refreshes stops its refresh path before its own
    # timeout, so the longest timeout (the refresh function's) bounds a live holder. A crashed holder blocks others
    # for at most this long. Configured in one place: REFRESH_LEASE_S in template.yaml (config.Settings).
    lease_ttl_s: float = 130.0
    wait_for_other_s: float = 20.0
    keap_attempts: int = 3
    backoff_base_s: float = 0.5
    save_attempts: int = 5
    keap_call_s: float = 10.0  # the longest a token-endpoint call may take (the HTTP timeout, KEAP_HTTP_TIMEOUT)
    # Kept after Keap's answer for saving it: one save's AWS calls at their bounds (keaplink.aws.REFRESH_PATH)
    # fit here; retries use what the deadline has left.
    save_s: float = 5.0
    max_backoff_s: float = 5.0  # a longer Retry-After from the token endpoint is not slept on, lease in hand
    keep_valid_s: float = 60.0  # a due token this far from expiry may still be used when its refresh fails


def _reconnected_since(seen: Connection, latest: Connection) -> bool:
    """The admin authorized again after we read ``seen``: Keap revoked the grant we were refreshing."""
    return (latest.status is Status.CONNECTED and latest.token is not None
            and latest.connected_at != seen.connected_at)


def _refreshed_since(seen: Connection, latest: Connection) -> bool:
    """Another caller saved a new token after we read ``seen``: use theirs."""
    return latest.version > seen.version and latest.status is Status.CONNECTED


def _needs_reauth(conn: Connection) -> NeedsReauth:
    return NeedsReauth(conn.last_error or "the connection needs to be re-authorized")


@dataclass
class Refresher:
    store: TokenStore
    oauth: OAuthClient
    clock: Clock = time.time
    sleep: Sleep = time.sleep
    metrics: MetricsPort = field(default_factory=NullMetrics)
    checkpoint: Checkpoint = lambda step: None
    timings: RefreshTimings = field(default_factory=RefreshTimings)
    timeline: TimelinePort = field(default_factory=NullTimeline)  # what the status page lists

    def ensure_fresh(
        self,
        force: bool = False,
        seen_version: int | None = None,
        deadline: Deadline | None = None,
        keep_valid: bool = False,
    ) -> RefreshResult:
        """Return a connection with a usable token, refreshing it if due (or if ``force``).

        ``seen_version``: the version whose token Keap just refused (401); if the store has moved past
        it, someone already refreshed and that token is used instead of refreshing again.
        ``deadline``: the caller's time; nothing is started that would not finish within it.
        ``keep_valid``: when a *due* token cannot be refreshed right now (Keap down or throttled, the lease busy,
        no time left), return it as long as it is valid (the refresh is retried by the next caller or the hourly
        check), instead of failing a caller that only needs a working token.
        """
        deadline = deadline or Deadline.unbounded(self.clock, self.sleep)
        conn = self.store.load()
        self.checkpoint("loaded")
        reason = should_refresh(conn, self.clock())
        if reason is RefreshReason.NOT_CONNECTED:
            raise NotConnected("Keap is not connected yet")
        if reason is RefreshReason.NEEDS_REAUTH:
            raise _needs_reauth(conn)
        if seen_version is not None and conn.version > seen_version:
            return RefreshResult(Outcome.REFRESHED_BY_OTHER, reason, conn)
        if reason is RefreshReason.FRESH and not force:
            return RefreshResult(Outcome.FRESH, reason, conn)
        try:
            return self._single_flight(conn, reason, deadline)
        except NOT_NOW as exc:
            token = conn.token
            still_valid = token is not None and token.expires_at - self.clock() > self.timings.keep_valid_s
            if keep_valid and reason is RefreshReason.DUE and still_valid:
                logger.warning("refresh failed for now; the current token is still valid and is used",
                               extra={"error_type": type(exc).__name__})
                return RefreshResult(Outcome.KEPT, reason, conn)
            raise

    # --- single flight ------------------------------------------------------------------------------
    def _single_flight(self, seen: Connection, reason: RefreshReason, deadline: Deadline) -> RefreshResult:
        owner = uuid.uuid4().hex
        give_up_at = self.clock() + self.timings.wait_for_other_s
        delay = 0.05
        while not self.store.acquire_lease(owner, self.clock(), self.timings.lease_ttl_s):
            pause = delay + random.uniform(0, delay)
            if self.clock() + pause > give_up_at or not deadline.allows(pause):
                raise LeaseBusy("another refresh holds the lease and has not finished")
            deadline.wait(pause, "waiting for another caller's refresh")
            delay = min(delay * 2, 1.0)
            latest = self.store.load()
            if latest.status is Status.NEEDS_REAUTH:
                raise _needs_reauth(latest)
            if _refreshed_since(seen, latest):
                return RefreshResult(Outcome.REFRESHED_BY_OTHER, reason, latest)
        self.checkpoint("lease_taken")
        try:
            return self._refresh_locked(seen, reason, deadline)
        finally:
            self.store.release_lease(owner)  # no-op after a save, which clears the lease itself

    def _refresh_locked(self, seen: Connection, reason: RefreshReason, deadline: Deadline) -> RefreshResult:
        latest = self.store.load()  # re-read under the lease: someone may have finished just before us
        self.checkpoint("reread")
        if _refreshed_since(seen, latest):
            return RefreshResult(Outcome.REFRESHED_BY_OTHER, reason, latest)
        if latest.status is not Status.CONNECTED or latest.token is None:
            raise _needs_reauth(latest)
        try:
            token = self._call_keap(latest, deadline)
        except RefreshTokenDead as exc:
            current = self.store.load()
            if _reconnected_since(latest, current):
                # The admin reconnected while we refreshed: Keap revoked the grant whose refresh token we sent.
                # The connection is healthy; use the new authorization instead of reporting a dead one.
                logger.info("refresh met a reconnect: using the new authorization", extra={"version": current.version})
                return RefreshResult(Outcome.REFRESHED_BY_OTHER, reason, current)
            self._dead(latest, str(exc))
            raise NeedsReauth(str(exc)) from exc
        self.checkpoint("keap_refreshed")
        saved = self._save(token, latest, deadline)
        self.checkpoint("saved")
        self.metrics.add_metric("RefreshSucceeded", MetricUnit.Count, 1)
        self.timeline.record("refreshed", f"{reason.value}; token version {saved.version}")
        logger.info(
            "token refreshed",
            extra={"reason": reason.value, "version": saved.version, "expires_at": token.expires_at},
        )
        return RefreshResult(Outcome.REFRESHED, reason, saved)

    def _call_keap(self, latest: Connection, deadline: Deadline) -> Token:
        """Keap's answer to our refresh token. A call starts only with time left for it and the save after it."""
        assert latest.token is not None
        needed = self.timings.keap_call_s + self.timings.save_s
        attempt = 0
        doubted = False
        while True:
            attempt += 1
            deadline.require(needed, "token refresh (no time to save Keap's answer: not calling Keap)")
            try:
                return self.oauth.refresh(latest.token.refresh_token, self.clock())
            except RefreshTokenDoubtful as exc:
                # invalid_request: a dead token answers the same again; a passing fault may not. Asked once more
                # when there is time; then it counts as dead (RefreshTokenDead, handled by the caller).
                if doubted or not deadline.allows(self.timings.backoff_base_s + needed):
                    raise
                doubted = True
                logger.warning("token refresh answered invalid_request: asking once more", extra={"error": str(exc)})
                deadline.wait(self.timings.backoff_base_s, "token refresh: asking once more")
            except KeapClientConfigError as exc:
                self._failed(str(exc))
                raise
            except (KeapUnavailable, KeapRateLimited) as exc:
                wait = getattr(exc, "retry_after", None) or self.timings.backoff_base_s * 2 ** (attempt - 1)
                wait += random.uniform(0, wait / 2)
                if (attempt >= self.timings.keap_attempts or wait > self.timings.max_backoff_s
                        or not deadline.allows(wait + needed)):
                    self._failed(str(exc))
                    raise
                logger.warning("token refresh failed, retrying", extra={"attempt": attempt, "error": str(exc)})
                deadline.wait(wait, "token refresh backoff")

    def _save(self, token: Token, latest: Connection, deadline: Deadline) -> Connection:
        """Keap has rotated the refresh token: the new one exists nowhere else. Retry hard, within the time that
        was kept for this (``save_s``): pauses shrink rather than stop the retries."""
        expected = latest.version
        for attempt in range(1, self.timings.save_attempts + 1):
            try:
                return self.store.store_refreshed(token, expected, self.clock())
            except TokenConflict:
                current = self.store.load()
                if current.connected_at != latest.connected_at:
                    # The admin reconnected meanwhile: Keap revoked our grant, the new one wins.
                    logger.warning("refreshed token discarded: the connection was re-authorized meanwhile")
                    return current
                # Same authorization, yet someone wrote: e.g. our lease ran out and a second caller,
                # refused with the refresh token we had just rotated, marked the connection dead. Ours is
                # the newest token Keap issued for this grant, so it is the live one: save it over theirs.
                logger.warning("save conflict on the same authorization: saving the newest token",
                               extra={"expected": expected, "found": current.version, "status": current.status.value})
                expected = current.version
            except Exception as exc:
                if attempt == self.timings.save_attempts:
                    logger.error("could not save refreshed token", extra={"error": type(exc).__name__})
                    raise
                pause = min(0.2 * 2**attempt, 3.0, deadline.remaining() / (self.timings.save_attempts - attempt + 1))
                if pause > 0:
                    deadline.sleep(pause)
        raise TokenConflict("the connection kept changing while saving a refreshed token")

    def _dead(self, latest: Connection, reason: str) -> None:
        logger.error("refresh token refused by Keap: connection needs re-authorization", extra={"error": reason})
        self.metrics.add_metric("RefreshFailed", MetricUnit.Count, 1)
        self.metrics.add_metric("ConnectionDead", MetricUnit.Count, 1)
        try:
            self.store.mark_needs_reauth(reason, latest.version, self.clock())
            self.timeline.record("needs_reauth", reason)
        except TokenConflict:
            pass  # a reconnect won the race: leave its fresh token alone

    def _failed(self, reason: str) -> None:
        self.metrics.add_metric("RefreshFailed", MetricUnit.Count, 1)
        self.timeline.record("refresh_failed", reason)
        self.store.record_failure(reason, self.clock())
