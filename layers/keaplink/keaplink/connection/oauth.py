"""Keap's OAuth2 authorization-code grant: the authorize URL, the code exchange and the refresh."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from keaplink.connection.credentials import ClientCredentials
from keaplink.connection.token import Token
from keaplink.errors import CodeExchangeFailed, KeapClientConfigError, RefreshTokenDead, RefreshTokenDoubtful
from keaplink.keap.http import describe, error_for, parse_body, send

if TYPE_CHECKING:
    import requests

# Keap answers a dead refresh token (or a used code) with invalid_grant: every reported case (infusionsoft-php
# issues #61, #99, #137, #228). One forum case got invalid_request, which RFC 6749 also uses for a malformed
# request: for a refresh it is "doubtful" (asked once more before the token counts as dead). invalid_client
# is a wrong client id/secret: a configuration error, never a dead token.
DEAD_GRANT_ERRORS = frozenset({"invalid_grant", "invalid_request"})


def authorize_url(base_url: str, client_id: str, redirect_uri: str, state: str) -> str:
    query = urlencode(
        {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": "full",
            "state": state,
        }
    )
    return f"{base_url}{'&' if '?' in base_url else '?'}{query}"


class OAuthClient:
    def __init__(self, token_url: str, credentials: Callable[[], ClientCredentials], timeout: float = 10.0,
                 gate: Callable[[], None] | None = None) -> None:
        self.token_url = token_url
        self._gate = gate or (lambda: None)  # waits for a slot of the deployment's Keap budget (the root's)
        self._credentials = credentials  # read on first use: a status page view never needs the secret
        self.timeout = timeout

    def exchange_code(self, code: str, redirect_uri: str, now: float) -> Token:
        """Code → token. Client credentials go in the form body, as Keap's SDKs do."""
        credentials = self._credentials()
        form = {
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret,
            "code": code,
            "grant_type": "authorization_code",
            "redirect_uri": redirect_uri,
        }
        self._gate()
        response = send("POST", self.token_url, "code exchange", self.timeout, data=form)
        return self._token(response, now, "code exchange", dead=CodeExchangeFailed)

    def refresh(self, refresh_token: str, now: float) -> Token:
        """Refresh token → new token pair. Client credentials as HTTP Basic, as the PHP SDK does."""
        credentials = self._credentials()
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        auth = (credentials.client_id, credentials.client_secret)
        self._gate()
        response = send("POST", self.token_url, "token refresh", self.timeout, data=form, auth=auth)
        return self._token(response, now, "token refresh", dead=RefreshTokenDead)

    @staticmethod
    def _token(
        response: requests.Response, now: float, what: str, dead: type[CodeExchangeFailed] | type[RefreshTokenDead]
    ) -> Token:
        status = response.status_code
        body = parse_body(response)
        if status == 200:
            return Token.from_keap(body, now)
        error = body.get("error") if isinstance(body, dict) else None
        refused_client = KeapClientConfigError(f"Keap refused the client id/secret: HTTP {status} {describe(body)}",
                                               status)
        if error == "invalid_client":
            raise refused_client
        if status == 429 or status >= 500:
            raise error_for(response, what, body)
        if error in DEAD_GRANT_ERRORS:
            kind = RefreshTokenDoubtful if dead is RefreshTokenDead and error == "invalid_request" else dead
            raise kind(f"{what}: HTTP {status} {describe(body)}", status)
        if status == 401:
            raise refused_client
        raise error_for(response, what, body)
