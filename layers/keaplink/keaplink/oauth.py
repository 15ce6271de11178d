"""Keap's OAuth2 authorization-code grant: the authorize URL, the code exchange and the refresh."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from keaplink.errors import (
    CodeExchangeFailed,
    KeapClientConfigError,
    KeapRateLimited,
    KeapRequestRejected,
    KeapUnavailable,
    RefreshTokenDead,
)
from keaplink.keap_http import describe, parse_body, retry_after_seconds, send
from keaplink.keap_token import Token

if TYPE_CHECKING:
    import requests

# Keap answers a dead refresh token with invalid_grant; one forum case got invalid_request. Both mean
# "only a new authorization helps"; invalid_client is a wrong client id/secret, a configuration error.
DEAD_GRANT_ERRORS = frozenset({"invalid_grant", "invalid_request"})


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    client_secret: str = ""
    api_key: str = ""

    def __repr__(self) -> str:  # never print the secret
        return f"ClientCredentials(client_id={self.client_id!r})"


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
    def __init__(self, token_url: str, credentials: ClientCredentials, timeout: float = 10.0) -> None:
        self.token_url = token_url
        self.credentials = credentials
        self.timeout = timeout

    def exchange_code(self, code: str, redirect_uri: str, now: float) -> Token:
        """Code → token. Client credentials go in the form body, as Keap's SDKs do."""
        form = {
            "client_id": self.credentials.client_id,
            "client_secret": self.credentials.client_secret,
            "code": code,
            "grant_type": "authorization_code",
            "redirect_uri": redirect_uri,
        }
        response = send("POST", self.token_url, "code exchange", self.timeout, data=form)
        return self._token(response, now, dead=CodeExchangeFailed)

    def refresh(self, refresh_token: str, now: float) -> Token:
        """Refresh token → new token pair. Client credentials as HTTP Basic, as the PHP SDK does."""
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        auth = (self.credentials.client_id, self.credentials.client_secret)
        response = send("POST", self.token_url, "token refresh", self.timeout, data=form, auth=auth)
        return self._token(response, now, dead=RefreshTokenDead)

    @staticmethod
    def _token(
        response: requests.Response, now: float, dead: type[CodeExchangeFailed] | type[RefreshTokenDead]
    ) -> Token:
        status = response.status_code
        body = parse_body(response)
        if status == 200:
            return Token.from_keap(body, now)
        error = body.get("error") if isinstance(body, dict) else None
        detail = f"HTTP {status} {describe(body)}".strip()
        if error == "invalid_client":
            raise KeapClientConfigError(f"Keap refused the client id/secret: {detail}", status)
        if status == 429:
            raise KeapRateLimited(detail, retry_after_seconds(response.headers))
        if status >= 500:
            raise KeapUnavailable(detail, status)
        if error in DEAD_GRANT_ERRORS:
            raise dead(detail, status)
        if status == 401:
            raise KeapClientConfigError(f"Keap refused the client id/secret: {detail}", status)
        raise KeapRequestRejected(detail, status)
