"""In-memory fakes of the token store and the OAuth client, for the refresh path's unit tests."""

from __future__ import annotations

import threading
from dataclasses import replace

from keaplink.connection.token import Connection, Status, Token
from keaplink.errors import TokenConflict


class FakeTokenStore:
    """Same contract as keaplink.connection.store.TokenStore (conditional writes on version), in memory."""

    def __init__(self, connection: Connection) -> None:
        self.conn = connection
        self.lock = threading.Lock()
        self.fail_saves = 0  # the next N store_refreshed calls raise a transient error
        self.saves = 0

    def load(self) -> Connection:
        with self.lock:
            return self.conn

    def acquire_lease(self, owner: str, now: float, ttl_s: float) -> bool:
        with self.lock:
            if self.conn.lease_until is not None and self.conn.lease_until >= now:
                return False
            self.conn = replace(self.conn, lease_owner=owner, lease_until=now + ttl_s)
            return True

    def release_lease(self, owner: str) -> None:
        with self.lock:
            if self.conn.lease_owner == owner:
                self.conn = replace(self.conn, lease_owner=None, lease_until=None)

    def store_refreshed(self, token: Token, expected_version: int, now: float) -> Connection:
        with self.lock:
            if self.fail_saves:
                self.fail_saves -= 1
                raise ConnectionError("DynamoDB throttled")
            if self.conn.version != expected_version:
                raise TokenConflict("changed")
            self.saves += 1
            self.conn = replace(self.conn, token=token, version=expected_version + 1, status=Status.CONNECTED,
                                refreshed_at=now, refresh_count=self.conn.refresh_count + 1, refresh_failures=0,
                                last_error=None, lease_owner=None, lease_until=None)
            return self.conn

    def mark_needs_reauth(self, reason: str, expected_version: int, now: float) -> Connection:
        with self.lock:
            if self.conn.version != expected_version:
                raise TokenConflict("changed")
            self.conn = replace(self.conn, status=Status.NEEDS_REAUTH, version=expected_version + 1,
                                last_error=reason, lease_owner=None, lease_until=None)
            return self.conn

    def record_failure(self, reason: str, now: float) -> Connection:
        with self.lock:
            self.conn = replace(self.conn, last_error=reason, refresh_failures=self.conn.refresh_failures + 1)
            return self.conn


class FakeOAuth:
    """Rotates like Keap: each refresh token works once. ``script`` holds exceptions to raise first."""

    def __init__(self, first_refresh_token: str, script: list[Exception] | None = None) -> None:
        self.live = first_refresh_token
        self.calls = 0
        self.script = list(script or [])

    def refresh(self, refresh_token: str, now: float) -> Token:
        from keaplink.errors import RefreshTokenDead

        self.calls += 1
        if self.script:
            raise self.script.pop(0)
        if refresh_token != self.live:
            raise RefreshTokenDead("Invalid refresh token", 400)
        self.live = f"rt-{self.calls}"
        return Token(f"at-{self.calls}", self.live, 86400, now + 86400, now, "full|ab123.infusionsoft.com")


class RecordingMetrics:
    def __init__(self) -> None:
        self.names: list[str] = []

    def add_metric(self, name: str, unit: object, value: float) -> None:
        self.names.append(name)
