"""Translation of token-endpoint answers into typed errors (narrow: Response objects built in memory)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from keaplink.connection.oauth import OAuthClient, authorize_url
from keaplink.errors import (
    CodeExchangeFailed,
    KeapClientConfigError,
    KeapRateLimited,
    KeapRequestRejected,
    KeapUnavailable,
    RefreshTokenDead,
    RefreshTokenDoubtful,
)


def response(status: int, body: object, headers: dict[str, str] | None = None) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = json.dumps(body).encode() if not isinstance(body, bytes) else body
    r.headers.update(headers or {})
    return r


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, {"error": "invalid_grant", "error_description": "Invalid refresh token"}, RefreshTokenDead),
        (400, {"error": "invalid_request", "error_description": "Invalid Refresh Token"}, RefreshTokenDoubtful),
        (401, {"error": "invalid_client"}, KeapClientConfigError),
        (400, {"error": "invalid_client"}, KeapClientConfigError),
        (429, {"fault": {"faultstring": "Rate limit quota violation"}}, KeapRateLimited),
        (503, b"<html>down</html>", KeapUnavailable),
        (400, {"error": "unsupported_grant_type"}, KeapRequestRejected),
    ],
)
def test_refresh_errors_are_typed(status: int, body: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        OAuthClient._token(response(status, body), 0.0, "token refresh", dead=RefreshTokenDead)


def test_dead_code_is_a_failed_exchange_not_a_dead_refresh_token() -> None:
    with pytest.raises(CodeExchangeFailed):
        OAuthClient._token(response(400, {"error": "invalid_grant"}), 0.0, "token refresh", dead=CodeExchangeFailed)


def test_retry_after_is_kept() -> None:
    with pytest.raises(KeapRateLimited) as info:
        OAuthClient._token(response(429, {}, {"Retry-After": "7"}), 0.0, "token refresh", dead=RefreshTokenDead)
    assert info.value.retry_after == 7.0


def test_authorize_url_has_every_parameter() -> None:
    url = authorize_url("https://accounts.example/app/oauth/authorize", "cid", "https://x/prod/callback", "st")
    query = parse_qs(urlsplit(url).query)
    assert query == {"client_id": ["cid"], "redirect_uri": ["https://x/prod/callback"], "response_type": ["code"],
                     "scope": ["full"], "state": ["st"]}


def test_invalid_request_to_a_code_exchange_is_a_failed_exchange() -> None:
    with pytest.raises(CodeExchangeFailed) as info:
        OAuthClient._token(response(400, {"error": "invalid_request"}), 0.0, "code exchange", dead=CodeExchangeFailed)
    assert not isinstance(info.value, RefreshTokenDead)
