"""Control API: faults, latency, request log, clock, reset, HTML overview, CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from keap_sandbox.testing import SandboxControlError, SandboxHandle, start_sandbox
from tests.sandbox.sandbox_helpers import REDIRECT_URI, Api, refresh

SANDBOX_DIR = Path(__file__).resolve().parents[2] / "sandbox"


def test_fault_status_count_and_applied_before_work(sb: SandboxHandle, tokens: dict[str, Any]) -> None:
    sb.control.add_fault("/token", status=503, count=2)
    for _ in range(2):
        r = refresh(sb, tokens["refresh_token"])
        assert r.status_code == 503
        assert r.json()["fault"]["faultstring"] == "Service Unavailable"
    # the failed attempts did not rotate: the original refresh token still works
    assert sb.control.tokens()["refreshes"] == 0
    assert refresh(sb, tokens["refresh_token"]).status_code == 200
    assert sb.control.faults() == []


def test_fault_shapes(sb: SandboxHandle, api: Api) -> None:
    sb.control.add_fault("/crm/rest", status=500)
    r = api.get("/v2/tags")
    assert r.status_code == 500 and r.json()["status"] == "INTERNAL" and r.json()["code"] == 500
    sb.control.add_fault("/crm/rest", status=429)
    r = api.get("/v2/tags")
    assert r.status_code == 429 and r.json()["fault"]["detail"]["errorcode"] == "policies.ratelimit.QuotaViolation"
    assert r.headers["Retry-After"] == "1"
    sb.control.add_fault("/crm/rest", status=401)
    assert api.get("/v2/tags").json()["fault"]["faultstring"] == "Invalid access token"
    # custom body: the forum's invalid_request variant of a dead refresh token
    body = {"error": "invalid_request", "error_description": "Invalid Refresh Token"}
    sb.control.add_fault("/token", status=400, body=body)
    r = refresh(sb, "anything")
    assert r.status_code == 400 and r.json() == body
    # method filter
    sb.control.add_fault("/crm/rest", status=502, method="POST")
    assert api.get("/v2/tags").status_code == 200
    assert api.post("/v2/tags", {"name": "x"}).status_code == 502


def test_fault_headers_are_sent_and_win(sb: SandboxHandle, api: Api) -> None:
    """A long Retry-After (Keap's, after a spent quota) is a fault with its own headers."""
    sb.control.add_fault("/crm/rest", status=429,
                         headers={"Retry-After": "21600", "x-keap-product-quota-available": "0"})
    r = api.get("/v2/tags")
    assert r.status_code == 429 and r.headers["Retry-After"] == "21600"
    assert r.headers["x-keap-product-quota-available"] == "0"
    for bad in ({"Retry-After": 5}, ["Retry-After"]):
        answer = requests.post(sb.url + "/_sandbox/faults", json={"path_prefix": "/crm", "headers": bad}, timeout=5)
        assert answer.status_code == 400


def test_failure_rate_is_seeded_and_cleared(sb: SandboxHandle, api: Api) -> None:
    def run() -> list[int]:
        sb.control.clear_faults()
        sb.control.add_fault("/crm/rest", failure_rate=0.5, status=500, seed=7)
        return [api.get("/v2/tags").status_code for _ in range(20)]

    first, second = run(), run()
    assert first == second
    assert 0 < first.count(500) < 20
    sb.control.clear_faults()
    assert all(api.get("/v2/tags").status_code == 200 for _ in range(5))


def test_timeout_fault_drops_connection(sb: SandboxHandle, tokens: dict[str, Any]) -> None:
    sb.control.add_fault("/token", action="timeout", count=1, delay_s=0.5)
    start = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(
            sb.token_url,
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            auth=(sb.client_id, sb.client_secret),
            timeout=0.2,
        )
    assert time.monotonic() - start < 0.45
    sb.control.add_fault("/token", action="timeout", count=1, delay_s=0.05)
    with pytest.raises(requests.exceptions.ConnectionError):
        refresh(sb, tokens["refresh_token"])
    time.sleep(0.5)  # let the first dropped request finish server-side
    # no work was done
    assert sb.control.tokens()["refreshes"] == 0
    assert refresh(sb, tokens["refresh_token"]).status_code == 200
    dropped = [e for e in sb.control.requests() if e["dropped"]]
    assert len(dropped) == 2 and all(e["fault"] == "timeout" for e in dropped)


def test_succeed_then_drop_rotates_but_client_sees_nothing(sb: SandboxHandle, tokens: dict[str, Any]) -> None:
    sb.control.clear_requests()
    sb.control.add_fault("/token", action="succeed_then_drop", count=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        refresh(sb, tokens["refresh_token"])
    assert sb.control.tokens()["refreshes"] == 1
    # the client retries with the token it has: it is already dead
    r = refresh(sb, tokens["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    log = sb.control.requests()
    assert log[0]["status"] == 200 and log[0]["dropped"] is True and log[0]["fault"] == "succeed_then_drop"
    assert log[1]["status"] == 400 and log[1]["dropped"] is False


def test_bad_fault_specs_rejected(sb: SandboxHandle) -> None:
    for spec in ({"path_prefix": "token"}, {"path_prefix": "/t", "action": "explode"}, {"path_prefix": "/t", "x": 1}):
        r = requests.post(sb.url + "/_sandbox/faults", json=spec, timeout=5)
        assert r.status_code == 400


def test_latency_injection(sb: SandboxHandle, api: Api) -> None:
    sb.control.configure(latency_ms=150)
    start = time.monotonic()
    assert api.get("/v2/tags").status_code == 200
    assert time.monotonic() - start >= 0.15
    start = time.monotonic()
    sb.control.state()  # control calls are never delayed
    assert time.monotonic() - start < 0.1


@pytest.mark.contract_violations_expected
def test_request_log(sb: SandboxHandle, api: Api, tokens: dict[str, Any]) -> None:
    before = sb.control.requests()
    assert [(e["method"], e["path"], e["auth"], e.get("grant_type")) for e in before] == [
        ("POST", "/app/oauth/authorize", "none", None),
        ("POST", "/token", "none", "authorization_code"),
    ]
    sb.control.clear_requests()
    api.get("/v2/contacts", params={"filter": "email==a@b.com"})
    refresh(sb, tokens["refresh_token"])
    Api(sb).get("/v2/tags")
    log = sb.control.requests()
    assert [(e["method"], e["path"], e["status"], e["auth"]) for e in log] == [
        ("GET", "/crm/rest/v2/contacts", 200, "bearer"),
        ("POST", "/token", 200, "basic"),
        ("GET", "/crm/rest/v2/tags", 401, "none"),
    ]
    assert log[0]["query"] == "filter=email%3D%3Da%40b.com"
    assert abs(log[0]["t"] - sb.control.clock()) < 5
    # the unauthenticated call broke the contract's security requirement, and the log says so
    assert "contract_violations" not in log[0] and log[2]["contract_violations"] == 1
    assert [v["path"] for v in sb.control.contract_violations()] == ["/crm/rest/v2/tags"]


def test_clock_endpoints(sb: SandboxHandle) -> None:
    now = sb.control.clock()
    assert abs(now - time.time()) < 2
    assert sb.control.advance_clock(3600) - now >= 3600
    assert abs(sb.control.set_clock(2_000_000_000) - 2_000_000_000) < 1
    assert abs(sb.control.state()["clock"] - 2_000_000_000) < 1
    with pytest.raises(SandboxControlError):
        sb.control._call("POST", "/clock", {})


def test_reset(sb: SandboxHandle, api: Api) -> None:
    api.post("/v2/contacts", {"email_addresses": [{"email": "r@example.com", "field": "EMAIL1"}]})
    api.post("/v2/tags", {"name": "t"})
    sb.control.configure(latency_ms=1)
    sb.control.add_fault("/nowhere", status=500)
    sb.control.advance_clock(1000)
    sb.control.reset()
    state = sb.control.state()
    assert state["contacts"] == [] and state["tags"] == []
    assert state["tokens"] == {"live_access": 0, "live_refresh": 0, "refreshes": 0, "code_exchanges": 0}
    assert abs(state["clock"] - time.time()) < 2
    assert sb.control.requests() == [] and sb.control.faults() == []
    assert sb.control.config()["latency_ms"] == 1  # config stays
    assert api.get("/v2/tags").status_code == 401
    # ids start again at 1
    api2 = Api(sb, token=sb.control.obtain_tokens(REDIRECT_URI)["access_token"])
    assert api2.post("/v2/tags", {"name": "t"}).json()["id"] == "1"


def test_html_overview(sb: SandboxHandle, api: Api) -> None:
    c = api.post(
        "/v2/contacts", {"email_addresses": [{"email": "h@example.com", "field": "EMAIL1"}], "given_name": "<Hedy>"}
    ).json()
    tag = api.post("/v2/tags", {"name": "buttonpushed"}).json()
    api.post(f"/v2/tags/{tag['id']}/contacts:applyTags", {"contact_ids": [c["id"]]})
    r = requests.get(sb.url + "/_sandbox/", timeout=5)
    assert r.status_code == 200 and "text/html" in r.headers["Content-Type"]
    assert "h@example.com" in r.text and "&lt;Hedy&gt;" in r.text
    assert r.text.count("buttonpushed") >= 2  # in the contact's tags and in the tag table
    assert "Keap's v2 contract: checked, <b>0</b> violation(s)" in r.text
    assert sb.control.overview_html() == r.text


def test_control_unknown_route(sb: SandboxHandle) -> None:
    assert requests.get(sb.url + "/_sandbox/nope", timeout=5).status_code == 404


def test_start_sandbox_config_and_context_manager() -> None:
    with start_sandbox(client_id="cid", client_secret="sec", tenant="zz9.infusionsoft.com", expires_in=60) as sb:
        assert sb.url.startswith("http://127.0.0.1:")
        assert sb.api_url == sb.url + "/crm/rest"
        assert sb.token_url == sb.url + "/token"
        assert sb.authorize_url == sb.url + "/app/oauth/authorize"
        tok = sb.control.obtain_tokens(REDIRECT_URI)
        assert tok["scope"] == "full|zz9.infusionsoft.com" and tok["expires_in"] == 60
        url = sb.url
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url + "/_sandbox/state", timeout=1)
    with pytest.raises(TypeError):
        start_sandbox(bogus=1)


def test_cli_starts_and_stops_on_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(SANDBOX_DIR)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "keap_sandbox", "--port", "0", "--no-throttle", "--expires-in", "120"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("keap-sandbox listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        cfg = requests.get(url + "/_sandbox/config", timeout=5).json()
        assert cfg["expires_in"] == 120 and cfg["throttle"] is False
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_mint_a_token_pair_like_the_developer_portal(sb: SandboxHandle) -> None:
    from tests.sandbox.sandbox_helpers import Api, refresh

    pair = sb.control.mint_pair()
    assert set(pair) == {"access_token", "refresh_token"}  # no expiry: the portal shows none
    assert Api(sb, token=pair["access_token"]).get("/v2/tags").status_code == 200
    rotated = refresh(sb, pair["refresh_token"])
    assert rotated.status_code == 200 and rotated.json()["scope"] == "full|sb123.infusionsoft.com"
    assert refresh(sb, pair["refresh_token"]).json()["error"] == "invalid_grant"  # single-use, like any other
