"""Single-use OAuth ``state`` values of the connect flow, in the connection table (with a TTL)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

from keaplink.errors import OAuthStateInvalid, TokenConflict

if TYPE_CHECKING:
    from keaplink.connection.table import ConnectionItem

STATE_LIFETIME_S = 600  # an OAuth state is good for 10 minutes


class StateStore:
    """Single-use OAuth ``state`` values, bound to the admin who asked, expiring after 10 minutes."""

    def __init__(self, table: Callable[[], type[ConnectionItem]]) -> None:
        self._table = table

    def issue(self, admin: str, now: float) -> str:
        from pynamodb.exceptions import PutError

        state = secrets.token_urlsafe(32)
        m = self._table()
        item = m(
            f"STATE#{state}",
            admin=admin,
            state_expires_at=now + STATE_LIFETIME_S,
            ttl=int(now + STATE_LIFETIME_S + 3600),
        )
        try:
            item.save(condition=m.pk.does_not_exist())
        except PutError as exc:  # a 256-bit collision: not worth more than a clear error
            raise TokenConflict("state collision") from exc
        return state

    def consume(self, state: str | None, admin: str, now: float) -> None:
        """Delete the state if it is this admin's and still valid; anything else is OAuthStateInvalid."""
        if not state or len(state) > 128:
            raise OAuthStateInvalid("missing or malformed state")
        from pynamodb.exceptions import DeleteError

        from keaplink.aws import conditional_failed

        m = self._table()
        try:
            m(f"STATE#{state}").delete(
                condition=m.pk.exists() & (m.admin == admin) & (m.state_expires_at > now)
            )
        except DeleteError as exc:
            if conditional_failed(exc):
                raise OAuthStateInvalid("unknown, expired or already used state") from exc
            raise
