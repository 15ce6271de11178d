"""The one refresh path, used by the schedule, by "refresh now" and by the actions on a 401.

Keap's refresh tokens are single-use: two concurrent refreshes burn the connection, and a refresh whose
new token is not saved loses it. So: take a short lease in DynamoDB, re-read, use a token someone else
just saved if there is one, else refresh and save the new pair with a conditional write before anything
else happens.
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
    RefreshTokenDead,
    RefreshTokenDoubtful,
    TokenConflict,
)
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
    REFRESHED_BY_OTHER = "refreshed_by_other"  # someone else did while we waited: we use theirs


@dataclass(frozen=True)
class RefreshResult:
    outcome: Outcome
    reason: RefreshReason
    connection: Connection

    @property
    def refreshed(self) -> bool:
        """A new token is in use (ours or another caller's), as opposed to the one that was fresh already."""
        return self.outcome is not Outcome.FRESH


@dataclass
class RefreshTimings:
    # Longer than the longest-living holder (the refresh function's 120 s timeout): Keap attempts plus a
    # save with retries. A crashed holder blocks others for at most this long.
    lease_ttl_s: float = 130.0
    wait_for_other_s: float = 20.0
    keap_attempts: int = 3
    backoff_base_s: float = 0.5
    save_attempts: int = 5


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

    def ensure_fresh(self, force: bool = False, seen_version: int | None = None) -> RefreshResult:
        """Return a connection with a usable token, refreshing it if due (or if ``force``).

        ``seen_version``: the version whose token Keap just refused (401); if the store has moved past
        it, someone already refreshed and that token is used instead of refreshing again.
        """
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
        return self._single_flight(conn, reason)

    # --- single flight ------------------------------------------------------------------------------
    def _single_flight(self, seen: Connection, reason: RefreshReason) -> RefreshResult:
        owner = uuid.uuid4().hex
        deadline = self.clock() + self.timings.wait_for_other_s
        delay = 0.05
        while not self.store.acquire_lease(owner, self.clock(), self.timings.lease_ttl_s):
            self.sleep(delay + random.uniform(0, delay))
            delay = min(delay * 2, 1.0)
            latest = self.store.load()
            if latest.status is Status.NEEDS_REAUTH:
                raise _needs_reauth(latest)
            if _refreshed_since(seen, latest):
                return RefreshResult(Outcome.REFRESHED_BY_OTHER, reason, latest)
            if self.clock() > deadline:
                raise LeaseBusy("another refresh holds the lease and has not finished")
        self.checkpoint("lease_taken")
        try:
            return self._refresh_locked(seen, reason)
        finally:
            self.store.release_lease(owner)  # no-op after a save, which clears the lease itself

    def _refresh_locked(self, seen: Connection, reason: RefreshReason) -> RefreshResult:
        latest = self.store.load()  # re-read under the lease: someone may have finished just before us
        self.checkpoint("reread")
        if _refreshed_since(seen, latest):
            return RefreshResult(Outcome.REFRESHED_BY_OTHER, reason, latest)
        if latest.status is not Status.CONNECTED or latest.token is None:
            raise _needs_reauth(latest)
        token = self._call_keap(latest)
        self.checkpoint("keap_refreshed")
        saved = self._save(token, latest)
        self.checkpoint("saved")
        self.metrics.add_metric("RefreshSucceeded", MetricUnit.Count, 1)
        self.timeline.record("refreshed", f"{reason.value}; token version {saved.version}")
        logger.info(
            "token refreshed",
            extra={"reason": reason.value, "version": saved.version, "expires_at": token.expires_at},
        )
        return RefreshResult(Outcome.REFRESHED, reason, saved)

    def _call_keap(self, latest: Connection) -> Token:
        assert latest.token is not None
        attempt = 0
        doubted = False
        while True:
            attempt += 1
            try:
                return self.oauth.refresh(latest.token.refresh_token, self.clock())
            except RefreshTokenDoubtful as exc:
                if not doubted:  # a dead token answers the same again; a passing fault may not
                    doubted = True
                    logger.warning("token refresh answered invalid_request: asking once more",
                                   extra={"error": str(exc)})
                    self.sleep(self.timings.backoff_base_s)
                    continue
                self._dead(latest, str(exc))
                raise NeedsReauth(str(exc)) from exc
            except RefreshTokenDead as exc:
                self._dead(latest, str(exc))
                raise NeedsReauth(str(exc)) from exc
            except KeapClientConfigError as exc:
                self._failed(str(exc))
                raise
            except (KeapUnavailable, KeapRateLimited) as exc:
                if attempt >= self.timings.keap_attempts:
                    self._failed(str(exc))
                    raise
                wait = getattr(exc, "retry_after", None) or self.timings.backoff_base_s * 2 ** (attempt - 1)
                logger.warning("token refresh failed, retrying", extra={"attempt": attempt, "error": str(exc)})
                self.sleep(wait + random.uniform(0, wait / 2))

    def _save(self, token: Token, latest: Connection) -> Connection:
        """Keap has rotated the refresh token: the new one exists nowhere else. Retry hard."""
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
                self.sleep(min(0.2 * 2**attempt, 3.0))
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
