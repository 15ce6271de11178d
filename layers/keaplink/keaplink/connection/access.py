"""Credentials for Keap calls, by auth mode: the stored OAuth token (through the one refresh path) or an
API key (Service Account Key / Personal Access Token). Both are :class:`keaplink.keap.session.AuthSource`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from keaplink.connection.refresh import Refresher, RefreshResult
from keaplink.errors import ConfigError, KeapAuthError
from keaplink.keap.http import api_key, bearer
from keaplink.keap.session import Credential

if TYPE_CHECKING:
    from keaplink.keap.deadline import Deadline


def _credential(result: RefreshResult) -> Credential:
    token = result.connection.token
    assert token is not None  # ensure_fresh raises NotConnected / NeedsReauth when there is none
    return Credential(bearer(token.access_token), result.connection.version, token.tenant)


class OAuthAccess:
    def __init__(self, refresher: Refresher) -> None:
        self._refresher = refresher

    def current(self, deadline: Deadline | None = None) -> Credential:
        # A due token that cannot be refreshed right now (Keap down, the lease busy, no time) is still used while
        # valid: the actions need a working token, and the refresh is retried by the next caller or the schedule.
        return _credential(self._refresher.ensure_fresh(deadline=deadline, keep_valid=True))

    def after_refused(self, refused: Credential, deadline: Deadline | None = None) -> Credential:
        # If the store has moved past the refused token's version, someone already refreshed and that token
        # is used; else refresh now, single-flight.
        return _credential(self._refresher.ensure_fresh(force=True, seen_version=refused.version, deadline=deadline))


class ApiKeyAccess:
    def __init__(self, key: Callable[[], str]) -> None:
        self._key = key

    def current(self, deadline: Deadline | None = None) -> Credential:
        key = self._key()
        if not key:
            raise ConfigError("api_key is not set in the Keap credentials secret (KEAP_CREDENTIALS_SECRET)")
        # A key belongs to one Keap app; a new key is treated as a new app (ids are looked up once again).
        return Credential(api_key(key), tenant="key:" + hashlib.sha256(key.encode()).hexdigest()[:16])

    def after_refused(self, refused: Credential, deadline: Deadline | None = None) -> Credential:
        raise KeapAuthError("Keap refused the API key (revoked or wrong?)", 401)
