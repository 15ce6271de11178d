"""The one central place for the connection's tokens: a DynamoDB item, read consistently, written
with conditions on a version number so that no concurrent writer can silently overwrite a newer token.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from keaplink.connection.token import Connection, Status, Token
from keaplink.errors import TokenConflict

SAVE_CALLS = 3  # AWS calls in one save of a token pair (store_refreshed): two KMS Encrypt, one UpdateItem

if TYPE_CHECKING:
    from keaplink.connection.crypto import Cipher
    from keaplink.connection.table import ConnectionItem

Table = Callable[[], "type[ConnectionItem]"]


class TokenStore:
    """``table`` gives the bound pynamodb model on first use: pynamodb (and botocore under it) stays off the
    cold-start import path."""

    def __init__(self, connection_id: str, table: Table, cipher: Cipher) -> None:
        self.connection_id = connection_id
        self._table = table
        self._cipher = cipher

    # --- reading --------------------------------------------------------------------------------
    @property
    def _key(self) -> str:
        return f"CONN#{self.connection_id}"

    def _context(self, field: str) -> dict[str, str]:
        return {"keaplink:connection": self.connection_id, "keaplink:field": field}

    def load(self) -> Connection:
        """The connection as stored now (strongly consistent read)."""
        from pynamodb.exceptions import DoesNotExist

        model = self._table()
        try:
            item = model.get(self._key, consistent_read=True)
        except DoesNotExist:
            return Connection(connection_id=self.connection_id)
        return self._to_connection(item)

    def _to_connection(self, item: ConnectionItem) -> Connection:
        token = None
        if item.access_token_enc and item.refresh_token_enc and item.expires_at is not None:
            token = Token(
                access_token=self._cipher.decrypt(item.access_token_enc, self._context("access_token")),
                refresh_token=self._cipher.decrypt(item.refresh_token_enc, self._context("refresh_token")),
                expires_in=int(item.expires_in or 0),
                expires_at=float(item.expires_at),
                issued_at=float(item.issued_at or 0),
                scope=item.scope or "",
                token_type=item.token_type or "bearer",
            )
        return Connection(
            connection_id=self.connection_id,
            status=Status(item.status or Status.NOT_CONNECTED.value),
            token=token,
            version=int(item.version or 0),
            connected_at=item.connected_at,
            refreshed_at=item.refreshed_at,
            refresh_count=int(item.refresh_count or 0),
            refresh_failures=int(item.refresh_failures or 0),
            last_error=item.last_error,
            last_error_at=item.last_error_at,
            lease_owner=item.lease_owner,
            lease_until=item.lease_until,
        )

    # --- writing --------------------------------------------------------------------------------
    def _token_actions(self, token: Token) -> list[Any]:
        """A new token pair, and the connection healthy again: no error, no lease."""
        m = self._table()
        return [
            m.access_token_enc.set(self._cipher.encrypt(token.access_token, self._context("access_token"))),
            m.refresh_token_enc.set(self._cipher.encrypt(token.refresh_token, self._context("refresh_token"))),
            m.expires_in.set(token.expires_in),
            m.expires_at.set(token.expires_at),
            m.issued_at.set(token.issued_at),
            m.scope.set(token.scope),
            m.token_type.set(token.token_type),
            m.status.set(Status.CONNECTED.value),
            m.refresh_failures.set(0),
            m.last_error.remove(),
            m.last_error_at.remove(),
            m.lease_owner.remove(),
            m.lease_until.remove(),
        ]

    def _update(self, actions: list[Any], condition: Any = None) -> Connection:
        from pynamodb.exceptions import UpdateError

        from keaplink.aws import conditional_failed

        m = self._table()
        item = m(self._key)
        try:
            item.update(actions=actions, condition=condition)
        except UpdateError as exc:
            if conditional_failed(exc):
                raise TokenConflict(f"connection {self.connection_id} changed concurrently") from exc
            raise
        return self._to_connection(item)

    def store_authorized(self, token: Token, now: float) -> Connection:
        """Save the token of a new authorization. It replaces whatever was there: Keap has just revoked
        the previous grant, so no older token may win against it."""
        m = self._table()
        return self._update(
            [*self._token_actions(token), m.version.add(1), m.connected_at.set(now), m.refreshed_at.set(now)]
        )

    def store_refreshed(self, token: Token, expected_version: int, now: float) -> Connection:
        """Save a refreshed token only if nobody wrote since ``expected_version``; releases the lease.
        ``SAVE_CALLS`` AWS calls: KMS Encrypt of each token, then one conditional UpdateItem."""
        m = self._table()
        return self._update(
            [*self._token_actions(token), m.version.set(expected_version + 1), m.refreshed_at.set(now),
             m.refresh_count.add(1)],
            condition=m.version == expected_version,
        )

    def mark_needs_reauth(self, reason: str, expected_version: int, now: float) -> Connection:
        """The refresh token is dead. Conditional, so a reconnect that just happened is not undone."""
        m = self._table()
        return self._update(
            [
                m.status.set(Status.NEEDS_REAUTH.value),
                m.version.set(expected_version + 1),
                m.last_error.set(reason),
                m.last_error_at.set(now),
                m.refresh_failures.add(1),
                m.lease_owner.remove(),
                m.lease_until.remove(),
            ],
            condition=m.version == expected_version,
        )

    def record_failure(self, reason: str, now: float) -> Connection:
        """A transient refresh failure: remember it for the status page; the token is untouched."""
        m = self._table()
        return self._update(
            [m.last_error.set(reason), m.last_error_at.set(now), m.refresh_failures.add(1)],
            condition=m.pk.exists(),
        )

    def acquire_lease(self, owner: str, now: float, ttl_s: float) -> bool:
        """Take the short refresh lease (single-flight across Lambdas). False when someone holds it."""
        m = self._table()
        try:
            self._update(
                [m.lease_owner.set(owner), m.lease_until.set(now + ttl_s)],
                condition=m.pk.exists() & (m.lease_until.does_not_exist() | (m.lease_until < now)),
            )
        except TokenConflict:
            return False
        return True

    def release_lease(self, owner: str) -> None:
        m = self._table()
        try:
            self._update([m.lease_owner.remove(), m.lease_until.remove()], condition=m.lease_owner == owner)
        except TokenConflict:
            pass  # already released by the save, or expired and taken by someone else
