"""OAuth2 behaviour (KEAP.md "OAuth2"): consent page, redirects, code exchange, refresh rotation."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from keap_sandbox.testing import SandboxHandle
from tests.sandbox.sandbox_helpers import REDIRECT_URI, Api, refresh, token_request


def _authorize_params(sb: SandboxHandle, **over: str) -> dict[str, str]:
    params = {
        "client_id": sb.client_id,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": "full",
        "state": "xyz 123",
    }
    params.update(over)
    return params


def _location(resp: requests.Response) -> tuple[str, dict[str, list[str]]]:
    assert resp.status_code == 302
    loc = resp.headers["Location"]
    parts = urlsplit(loc)
    return f"{parts.scheme}://{parts.netloc}{parts.path}", parse_qs(parts.query)


def _exchange(sb: SandboxHandle, code: str, redirect_uri: str = REDIRECT_URI, **over: str) -> requests.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": sb.client_id,
        "client_secret": sb.client_secret,
    }
    data.update(over)
    return token_request(sb, data)


def test_consent_page(sb: SandboxHandle) -> None:
    r = requests.get(sb.authorize_url, params=_authorize_params(sb), timeout=5)
    assert r.status_code == 200
    assert "text/html" in r.headers["Content-Type"]
    assert "Allow keaplink to access sb123.infusionsoft.com?" in r.text
    assert '<button id="allow" name="decision" value="allow"' in r.text
    assert '<button id="deny" name="decision" value="deny"' in r.text
    assert 'method="post" action="/app/oauth/authorize"' in r.text
    assert 'name="state" value="xyz 123"' in r.text


def test_authorize_bad_requests_give_400_html(sb: SandboxHandle) -> None:
    params = _authorize_params(sb)
    del params["redirect_uri"]
    r = requests.get(sb.authorize_url, params=params, timeout=5)
    assert r.status_code == 400 and "text/html" in r.headers["Content-Type"]
    r = requests.get(sb.authorize_url, params=_authorize_params(sb, response_type="token"), timeout=5)
    assert r.status_code == 400


def test_unknown_client_redirects_with_server_error(sb: SandboxHandle) -> None:
    r = requests.get(sb.authorize_url, params=_authorize_params(sb, client_id="nope"), allow_redirects=False, timeout=5)
    base, q = _location(r)
    assert base == REDIRECT_URI
    assert q["error"] == ["server_error"]
    assert q["error_description"]
    assert q["state"] == ["xyz 123"]


def test_allow_redirects_with_code_and_state_keeping_query(sb: SandboxHandle) -> None:
    uri = REDIRECT_URI + "?tenant=a%26b"
    form = {**_authorize_params(sb, redirect_uri=uri), "decision": "allow"}
    r = requests.post(sb.authorize_url, data=form, allow_redirects=False, timeout=5)
    base, q = _location(r)
    assert base == REDIRECT_URI
    assert q["tenant"] == ["a&b"]
    assert q["state"] == ["xyz 123"]
    assert len(q["code"][0]) > 20
    tok = _exchange(sb, q["code"][0], redirect_uri=uri)
    assert tok.status_code == 200


def test_deny_redirects_with_access_denied(sb: SandboxHandle) -> None:
    form = {**_authorize_params(sb), "decision": "deny"}
    r = requests.post(sb.authorize_url, data=form, allow_redirects=False, timeout=5)
    assert (
        "state=xyz+123&error=access_denied&error_description=User+denied+access+to+resource&error_uri="
        in (r.headers["Location"])
    )
    _, q = _location(r)
    assert q["error"] == ["access_denied"]
    assert q["error_description"] == ["User denied access to resource"]
    assert "code" not in q


def test_deny_all_makes_allow_fail(sb: SandboxHandle) -> None:
    sb.control.configure(deny_all=True)
    q = sb.control.authorize(REDIRECT_URI, decision="allow")
    assert q["error"] == "access_denied"
    assert "code" not in q


def test_code_exchange_with_body_credentials(sb: SandboxHandle) -> None:
    code = sb.control.authorize(REDIRECT_URI)["code"]
    r = _exchange(sb, code)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 86400
    assert body["scope"] == "full|sb123.infusionsoft.com"
    assert body["access_token"] != body["refresh_token"]
    assert sb.control.tokens()["code_exchanges"] == 1


def test_code_exchange_with_basic_auth(sb: SandboxHandle) -> None:
    code = sb.control.authorize(REDIRECT_URI)["code"]
    r = token_request(
        sb,
        {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
        auth=(sb.client_id, sb.client_secret),
    )
    assert r.status_code == 200


def test_code_is_single_use(sb: SandboxHandle) -> None:
    code = sb.control.authorize(REDIRECT_URI)["code"]
    assert _exchange(sb, code).status_code == 200
    r = _exchange(sb, code)
    assert r.status_code == 400
    assert r.json() == {"error": "invalid_grant", "error_description": "Invalid authorization code"}


def test_code_expires_after_ten_minutes(sb: SandboxHandle) -> None:
    code = sb.control.authorize(REDIRECT_URI)["code"]
    sb.control.advance_clock(601)
    r = _exchange(sb, code)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    code = sb.control.authorize(REDIRECT_URI)["code"]
    sb.control.advance_clock(590)
    assert _exchange(sb, code).status_code == 200


def test_unknown_code(sb: SandboxHandle) -> None:
    r = _exchange(sb, "not-a-code")
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_grant"


def test_redirect_uri_mismatch(sb: SandboxHandle) -> None:
    code = sb.control.authorize(REDIRECT_URI)["code"]
    r = _exchange(sb, code, redirect_uri="https://evil.example.test/cb")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_invalid_client(sb: SandboxHandle) -> None:
    code = sb.control.authorize(REDIRECT_URI)["code"]
    r = _exchange(sb, code, client_secret="wrong")
    assert r.status_code == 401
    assert r.json() == {"error": "invalid_client", "error_description": "Invalid client credentials"}
    r = refresh_with(sb, "whatever", auth=("sandbox-client-id", "wrong"))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def refresh_with(sb: SandboxHandle, token: str, auth: tuple[str, str]) -> requests.Response:
    return token_request(sb, {"grant_type": "refresh_token", "refresh_token": token}, auth=auth)


def test_token_endpoint_requires_form_encoding(sb: SandboxHandle) -> None:
    r = requests.post(sb.token_url, json={"grant_type": "refresh_token"}, timeout=5)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_unsupported_grant_type(sb: SandboxHandle) -> None:
    r = token_request(sb, {"grant_type": "password", "client_id": sb.client_id, "client_secret": sb.client_secret})
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"


def test_refresh_with_basic_auth_rotates(sb: SandboxHandle, tokens: dict[str, Any]) -> None:
    r = refresh(sb, tokens["refresh_token"])
    assert r.status_code == 200
    new = r.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert new["access_token"] != tokens["access_token"]
    assert new["expires_in"] == 86400 and new["scope"] == "full|sb123.infusionsoft.com"
    # the used refresh token is dead at once
    again = refresh(sb, tokens["refresh_token"])
    assert again.status_code == 400
    assert again.json() == {"error": "invalid_grant", "error_description": "Invalid refresh token"}
    # the new one works, the old access token stays valid until its own expiry
    assert refresh(sb, new["refresh_token"]).status_code == 200
    assert Api(sb, token=tokens["access_token"]).get("/v2/tags").status_code == 200
    assert sb.control.tokens()["refreshes"] == 2


def test_refresh_with_body_credentials(sb: SandboxHandle, tokens: dict[str, Any]) -> None:
    r = token_request(
        sb,
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": sb.client_id,
            "client_secret": sb.client_secret,
        },
    )
    assert r.status_code == 200


def test_revoke_access_on_refresh_flag(sb: SandboxHandle, tokens: dict[str, Any]) -> None:
    sb.control.configure(revoke_access_on_refresh=True)
    assert refresh(sb, tokens["refresh_token"]).status_code == 200
    assert Api(sb, token=tokens["access_token"]).get("/v2/tags").status_code == 401


def test_refresh_token_dies_after_45_days(sb: SandboxHandle, tokens: dict[str, Any]) -> None:
    sb.control.advance_clock(44 * 86400)
    r = refresh(sb, tokens["refresh_token"])
    assert r.status_code == 200
    fresh = r.json()["refresh_token"]
    # every refresh token gets its own 45 days
    sb.control.advance_clock(45 * 86400 + 1)
    r = refresh(sb, fresh)
    assert r.status_code == 400
    assert r.json() == {"error": "invalid_grant", "error_description": "Invalid refresh token"}


def test_reauthorization_revokes_earlier_tokens(sb: SandboxHandle, tokens: dict[str, Any]) -> None:
    second = sb.control.obtain_tokens(REDIRECT_URI)
    r = refresh(sb, tokens["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert Api(sb, token=tokens["access_token"]).get("/v2/tags").status_code == 401
    assert refresh(sb, second["refresh_token"]).status_code == 200
    assert sb.control.tokens()["code_exchanges"] == 2


def test_access_token_expires(sb: SandboxHandle, tokens: dict[str, Any]) -> None:
    api = Api(sb, token=tokens["access_token"])
    assert api.get("/v2/tags").status_code == 200
    sb.control.advance_clock(86400)
    r = api.get("/v2/tags")
    assert r.status_code == 401
    assert r.json() == {
        "fault": {
            "faultstring": "Invalid access token",
            "detail": {"errorcode": "keymanagement.service.invalid_access_token"},
        }
    }
    # the refresh token still works after the access token expired
    assert refresh(sb, tokens["refresh_token"]).status_code == 200


def test_configurable_expires_in(sb: SandboxHandle) -> None:
    sb.control.configure(expires_in=28800)
    tok = sb.control.obtain_tokens(REDIRECT_URI)
    assert tok["expires_in"] == 28800
    sb.control.advance_clock(28801)
    assert Api(sb, token=tok["access_token"]).get("/v2/tags").status_code == 401


def test_concurrent_refresh_one_wins(sb: SandboxHandle, tokens: dict[str, Any]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: refresh(sb, tokens["refresh_token"]).status_code, range(8)))
    assert sorted(results) == [200] + [400] * 7


def test_control_revoke_kills_tokens(sb: SandboxHandle, tokens: dict[str, Any]) -> None:
    sb.control.revoke()
    assert Api(sb, token=tokens["access_token"]).get("/v2/tags").status_code == 401
    assert refresh(sb, tokens["refresh_token"]).status_code == 400
    assert sb.control.tokens()["live_access"] == 0
