"""Connect Keap: /connect → sandbox consent → /callback → status, and every failure case."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from keaplink import root
from keaplink_dev.local import flows
from keaplink_dev.local.lambda_events import basic


def stored() -> tuple[int, str | None]:
    conn = root.token_store().load()
    return conn.version, conn.token.access_token if conn.token else None


def test_connect_happy_path(aws, sandbox) -> None:
    location, cookie = flows.start_connect()
    assert location.startswith(f"{sandbox.url}/app/oauth/authorize?")
    assert "redirect_uri=https%3A%2F%2Fabc123.execute-api.us-east-1.amazonaws.com%2Fprod%2Fcallback" in location
    params = flows.consent(location)
    response = flows.callback(params, cookie)
    # A page that moves on by itself, not a redirect: Keap's cross-site redirect brings no session cookie.
    assert response["statusCode"] == 200 and "Keap connected." in response["body"]
    assert "<meta http-equiv='refresh' content='0;url=/prod/?done=connected'>" in response["body"]
    assert flows.header(response, "Set-Cookie").startswith("keaplink_oauth_state=; Max-Age=0")
    status = flows.status_json()
    assert status["status"] == "connected" and status["auth_mode"] == "oauth"
    assert status["tenant"] == "sb123.infusionsoft.com"
    expires = datetime.fromisoformat(status["expires_at"].replace("Z", "+00:00")).timestamp()
    assert abs(expires - (time.time() + 86400)) < 60
    nxt = datetime.fromisoformat(status["next_refresh_at"].replace("Z", "+00:00")).timestamp()
    assert abs(nxt - (time.time() + 21 * 3600)) < 60
    assert "access_token" not in str(status) and "refresh_token" not in str(status)
    page = flows.call("admin", "GET", "/", {"done": "connected"})
    assert page["statusCode"] == 200 and "Connected" in page["body"] and "sb123.infusionsoft.com" in page["body"]
    assert "Reconnect" in page["body"] and "Keap connected." in page["body"]


def test_status_before_connecting(aws) -> None:
    status = flows.status_json()
    assert status["status"] == "not_connected"
    assert status["callback_url"] == "https://abc123.execute-api.us-east-1.amazonaws.com/prod/callback"
    page = flows.call("admin", "GET", "/")
    assert "Connect Keap" in page["body"] and status["callback_url"] in page["body"]


@pytest.mark.parametrize("path", ["/", "/status.json", "/connect"])
@pytest.mark.parametrize("auth", [None, basic("admin", "wrong"), basic("root", "keaplink-local-admin"), "Bearer x"])
def test_admin_routes_need_the_password(aws, path: str, auth: str | None) -> None:
    headers = {"Authorization": auth} if auth else {}
    from keaplink_dev.local.handlers import load_handler
    from keaplink_dev.local.lambda_events import FakeContext, rest_event

    response = load_handler("admin").lambda_handler(rest_event("GET", path, headers=headers), FakeContext())
    assert response["statusCode"] == 401
    assert response["body"].startswith("Unauthorized")
    assert flows.header(response, "WWW-Authenticate", ).startswith("Basic ")


def test_the_callback_needs_the_state_cookie_this_browser_was_given(aws, sandbox) -> None:
    """A signed-in admin's browser got the state cookie at /connect; a callback without it connects nothing."""
    location, cookie = flows.start_connect()
    params = flows.consent(location)
    for other in (None, "keaplink_oauth_state=someone-elses-state"):
        response = flows.anonymous("callback", "GET", "/callback", params, headers={"Cookie": other} if other else {})
        assert response["statusCode"] == 400 and "not valid" in response["body"]
    assert stored() == (0, None)  # nothing stored
    assert flows.callback(params, cookie)["statusCode"] == 200  # the state was not used up by the forgeries


@pytest.fixture
def connected(aws, sandbox):  # type: ignore[no-untyped-def]
    """Start each failure case from a working connection, to prove it is left untouched."""
    flows.connect()
    return stored()


def assert_page(response: dict, status: int, *texts: str) -> None:
    assert response["statusCode"] == status, response
    assert flows.header(response, "Content-Type").startswith("text/html")
    for text in texts:
        assert text in response["body"], response["body"]


def test_denied(connected, sandbox) -> None:
    location, cookie = flows.start_connect()
    params = flows.consent(location, "deny")
    assert params["error"] == "access_denied"
    response = flows.callback(params, cookie)
    assert_page(response, 403, "Keap access was denied", "Keap reported that access was denied.")
    assert "User denied access to resource" not in response["body"]  # Keap's free text: only in the log
    assert stored() == connected


def test_denied_even_after_allow_when_login_has_no_app(connected, sandbox) -> None:
    sandbox.configure(deny_all=True)
    location, cookie = flows.start_connect()
    assert_page(flows.callback(flows.consent(location, "allow"), cookie), 403, "no Keap app attached")
    assert stored() == connected


def test_missing_state(connected, sandbox) -> None:
    location, cookie = flows.start_connect()
    params = flows.consent(location)
    params.pop("state")
    assert_page(flows.callback(params, cookie), 400, "This connection link is not valid")
    assert stored() == connected


def test_unknown_state_is_rejected_even_with_matching_cookie(connected, sandbox) -> None:
    location, _ = flows.start_connect()
    params = {**flows.consent(location), "state": "forged-state"}
    assert_page(flows.callback(params, "keaplink_oauth_state=forged-state"), 400, "not valid")
    assert stored() == connected


def test_state_from_another_browser(connected, sandbox) -> None:
    location, _ = flows.start_connect()
    _, other_cookie = flows.start_connect()
    assert_page(flows.callback(flows.consent(location), other_cookie), 400, "another browser")
    assert stored() == connected


def test_missing_cookie(connected, sandbox) -> None:
    location, _ = flows.start_connect()
    assert_page(flows.callback(flows.consent(location), None), 400, "not valid")
    assert stored() == connected


def test_expired_state(connected, sandbox) -> None:
    state = root.state_store().issue("admin", time.time() - 601)
    sandbox.control("DELETE", "requests")
    params = {"code": "whatever", "state": state}
    assert_page(flows.callback(params, f"keaplink_oauth_state={state}"), 400, "expired")
    assert stored() == connected
    assert sandbox.requests_log("/token") == []  # rejected before any code exchange


def test_replayed_callback(aws, sandbox) -> None:
    location, cookie = flows.start_connect()
    params = flows.consent(location)
    assert flows.callback(params, cookie)["statusCode"] == 200
    before = stored()
    assert_page(flows.callback(params, cookie), 400, "already used")
    assert stored() == before


def test_missing_code(connected, sandbox) -> None:
    location, cookie = flows.start_connect()
    params = flows.consent(location)
    params.pop("code")
    assert_page(flows.callback(params, cookie), 400, "Keap did not accept the authorization")
    assert stored() == connected


def test_code_refused_by_keap(connected, sandbox) -> None:
    location, cookie = flows.start_connect()
    params = {**flows.consent(location), "code": "not-a-real-code"}
    assert_page(flows.callback(params, cookie), 400, "Keap did not accept the authorization", "Invalid")
    assert stored() == connected


def test_token_endpoint_down(connected, sandbox) -> None:
    location, cookie = flows.start_connect()
    params = flows.consent(location)
    sandbox.fault(path_prefix="/token", status=503, count=1)
    assert_page(flows.callback(params, cookie), 502, "Keap could not be reached")
    assert stored() == connected


def test_wrong_client_secret(connected, sandbox, aws) -> None:
    import json

    aws.client("secretsmanager").put_secret_value(
        SecretId=aws.credentials_secret,
        SecretString=json.dumps({"client_id": "sandbox-client-id", "client_secret": "wrong"}),
    )
    root.reset()
    location, cookie = flows.start_connect()
    assert_page(flows.callback(flows.consent(location), cookie), 500, "client id or secret")
    assert stored() == connected


def test_reconnect_replaces_the_token(connected, sandbox) -> None:
    version, access = connected
    flows.connect()
    new_version, new_access = stored()
    assert new_version == version + 1 and new_access != access


def test_error_page_links_back_under_the_configured_public_url(connected, sandbox, monkeypatch) -> None:
    monkeypatch.setenv("PUBLIC_BASE_URL", "http://127.0.0.1:4566/_aws/execute-api/abc/local")
    root.reset()
    response = flows.callback({"code": "x", "state": "forged"}, "keaplink_oauth_state=forged")
    assert_page(response, 400, "href='/_aws/execute-api/abc/local/'")
