"""Starting from a token pair made in Keap's developer portal: check its shape, one cheap Keap call with the access
token (``getUserInfo``: the tenant), one refresh right away (it proves the refresh token, learns the expiry and
retires the pasted pair), then store it like a new authorization. A refused or unanswered refresh stores nothing
and leaves the connection as it was. Why: docs/connecting-keap.md, "Starting from a token pair".
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from keaplink.errors import (
    KeapAuthError,
    KeapRequestRejected,
    KeapUnavailable,
    RefreshTokenDead,
    TokenPairInvalid,
    TokenPairRefused,
    TokenPairUnconfirmed,
)
from keaplink.keap.http import bearer
from keaplink.keap.session import Credential
from keaplink.observability import NullTimeline, TimelinePort, logger

if TYPE_CHECKING:
    from keaplink.connection.oauth import OAuthClient
    from keaplink.connection.store import TokenStore
    from keaplink.connection.token import Connection, Token
    from keaplink.keap.deadline import Deadline

MAX_TOKEN_LENGTH = 2048
_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]+")  # RFC 6750's b64token


def pair_problem(access_token: str, refresh_token: str) -> str | None:
    """Why these two strings cannot be a token pair, or None. Pure; says nothing about the tokens' values."""
    for name, value in (("access token", access_token), ("refresh token", refresh_token)):
        if not value:
            return f"the {name} is missing"
        if len(value) > MAX_TOKEN_LENGTH:
            return f"the {name} is longer than {MAX_TOKEN_LENGTH} characters"
        if not _TOKEN.fullmatch(value):
            return f"the {name} contains characters a Keap token does not have"
    if access_token == refresh_token:
        return "the access token and the refresh token are the same"
    return None


@dataclass(frozen=True)
class Probe:
    """What Keap said to the access token: accepted (True), refused (False) or neither (None, e.g. a 403),
    and the Keap app its answer named."""

    accepted: bool | None
    tenant: str | None = None


class GivenToken:
    """An :class:`~keaplink.keap.session.AuthSource` for one access token someone handed in: no refresh."""

    def __init__(self, access_token: str) -> None:
        self._credential = Credential(bearer(access_token))

    def current(self, deadline: Deadline | None = None) -> Credential:
        return self._credential

    def after_refused(self, refused: Credential, deadline: Deadline | None = None) -> Credential:
        raise KeapAuthError("Keap refused the access token", 401)


def keap_probe(api_url: str, timeout: float) -> Callable[[str], Probe]:
    """The one cheap Keap call of an import, with the given access token."""

    def probe(access_token: str) -> Probe:
        from keaplink.keap.client import KeapClient
        from keaplink.keap.session import KeapSession

        client = KeapClient(KeapSession(api_url, GivenToken(access_token), timeout))
        try:
            return Probe(True, client.credential_tenant())
        except KeapAuthError:
            return Probe(False)
        except KeapRequestRejected:
            return Probe(None)

    return probe


def with_tenant(token: Token, probed: str | None) -> Token:
    """The refreshed token, naming its Keap app: the refresh's ``scope`` when it names one (it is about the
    very token stored), else the probe's header."""
    if token.tenant or not probed:
        return token
    return replace(token, scope=f"{token.scope.partition('|')[0] or 'full'}|{probed}")


@dataclass
class TokenImporter:
    store: TokenStore
    oauth: OAuthClient
    probe: Callable[[str], Probe]
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    timeline: TimelinePort = field(default_factory=NullTimeline)
    save_attempts: int = 5

    def import_pair(self, access_token: str, refresh_token: str) -> Connection:
        """Check, refresh once, store. Raises a typed error and changes nothing when the pair is no good."""
        access_token, refresh_token = access_token.strip(), refresh_token.strip()
        problem = pair_problem(access_token, refresh_token)
        if problem:
            raise TokenPairInvalid(problem)
        probe = self.probe(access_token)  # KeapUnavailable / KeapRateLimited: nothing spent, raised as is
        try:
            token = self.oauth.refresh(refresh_token, self.clock())
        except RefreshTokenDead as exc:
            raise TokenPairRefused(str(exc), exc.status) from exc
        except KeapUnavailable as exc:
            raise TokenPairUnconfirmed(str(exc), exc.status) from exc
        token = with_tenant(token, probe.tenant)
        if probe.tenant and token.tenant and probe.tenant != token.tenant:
            logger.warning("the pair's access and refresh tokens name different Keap apps; the refreshed one is "
                           "kept", extra={"access_tenant": probe.tenant, "refresh_tenant": token.tenant})
        conn = self._save(token)
        logger.info("token pair imported", extra={"tenant": token.tenant, "version": conn.version,
                                                   "access_token_accepted": probe.accepted})
        self.timeline.record("tokens_imported", f"Keap app {token.tenant or 'unknown'}")
        return conn

    def _save(self, token: Token) -> Connection:
        """Keap has rotated the pair: the new one exists nowhere else. Retry hard."""
        for attempt in range(1, self.save_attempts + 1):
            try:
                return self.store.store_authorized(token, self.clock())
            except Exception as exc:
                if attempt == self.save_attempts:
                    logger.error("could not save an imported token pair", extra={"error_type": type(exc).__name__})
                    raise
                self.sleep(min(0.2 * 2**attempt, 3.0))
        raise AssertionError("unreachable")
