"""The Keap token and the connection it belongs to, as immutable values with absolute times."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from keaplink.errors import KeapUnavailable


class Status(str, Enum):
    NOT_CONNECTED = "not_connected"
    CONNECTED = "connected"
    NEEDS_REAUTH = "needs_reauth"


@dataclass(frozen=True)
class Token:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    expires_at: float  # absolute epoch seconds: durations lose meaning once stored
    issued_at: float
    scope: str = ""
    token_type: str = "bearer"

    @property
    def tenant(self) -> str | None:
        """The Keap app the token is for: the part of ``scope`` after ``|`` (e.g. ab123.infusionsoft.com)."""
        _, sep, tenant = self.scope.partition("|")
        return tenant or None if sep else None

    @classmethod
    def from_keap(cls, body: Any, now: float) -> Token:
        """Build a token from a token-endpoint answer; a body without the fields is Keap's fault."""
        try:
            expires_in = int(body["expires_in"])
            access, refresh = str(body["access_token"]), str(body["refresh_token"])
        except (KeyError, TypeError, ValueError) as exc:
            raise KeapUnavailable(f"token endpoint answered without {exc}", 200) from exc
        if not access or not refresh or expires_in <= 0:
            raise KeapUnavailable("token endpoint answered with an empty token", 200)
        return cls(
            access_token=access,
            refresh_token=refresh,
            expires_in=expires_in,
            expires_at=now + expires_in,
            issued_at=now,
            scope=str(body.get("scope", "")),
            token_type=str(body.get("token_type", "bearer")),
        )


@dataclass(frozen=True)
class Connection:
    """The one stored connection of this application to its Keap account."""

    connection_id: str
    status: Status = Status.NOT_CONNECTED
    token: Token | None = None
    version: int = 0
    connected_at: float | None = None
    refreshed_at: float | None = None
    refresh_count: int = 0
    refresh_failures: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    lease_owner: str | None = None
    lease_until: float | None = None
