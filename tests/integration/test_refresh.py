"""The single refresh path against the sandbox and moto server over HTTP."""

from __future__ import annotations

import json
import threading
import time

from keaplink import root
from keaplink.connection.refresh import Outcome, Refresher
from keaplink.connection.token import Status
from keaplink.observability import metrics
from keaplink_dev.local import flows
from keaplink_dev.local.handlers import load_handler
from keaplink_dev.local.lambda_events import FakeContext, load_event

HOUR = 3600.0


def refreshes_at_keap(sandbox) -> list[dict]:  # type: ignore[no-untyped-def]
    return [r for r in sandbox.requests_log("/token") if r.get("grant_type") == "refresh_token"]


def scheduled(offset_s: float, capsys=None) -> dict:  # type: ignore[no-untyped-def]
    """Run the scheduled function with keaplink's clock moved ``offset_s`` ahead."""
    refresher = Refresher(root.token_store(), root.oauth_client(), clock=lambda: time.time() + offset_s,
                          metrics=metrics)
    handler = load_handler("refresh").lambda_handler
    result: dict = handler(load_event("refresh.json"), FakeContext(), refresher=refresher)
    return result


def test_concurrent_refreshers_make_one_keap_call(aws, sandbox) -> None:
    flows.connect()
    barrier = threading.Barrier(8)
    results = []

    def run() -> None:
        refresher = Refresher(root.token_store(), root.oauth_client())
        barrier.wait()
        results.append(refresher.ensure_fresh(force=True, seen_version=1))

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(refreshes_at_keap(sandbox)) == 1
    assert sum(r.outcome is Outcome.REFRESHED for r in results) == 1
    tokens = {r.connection.token.access_token for r in results if r.connection.token}
    assert len(tokens) == 1
    # ...and the one token they share is valid at Keap.
    response = __import__("requests").get(f"{sandbox.url}/crm/rest/v2/tags", timeout=5,
                                          headers={"Authorization": f"Bearer {tokens.pop()}"})
    assert response.status_code == 200


def test_scheduled_check_refreshes_at_21h_not_at_20h(aws, sandbox) -> None:
    flows.connect()
    sandbox.advance(20 * HOUR)
    assert scheduled(20 * HOUR)["outcome"] == "fresh"
    assert refreshes_at_keap(sandbox) == []
    sandbox.advance(1 * HOUR + 60)
    result = scheduled(21 * HOUR + 60)
    assert result["outcome"] == "refreshed" and result["reason"] == "due"
    assert len(refreshes_at_keap(sandbox)) == 1
    assert result["seconds_until_expiry"] > 86000  # the new token's clock starts now


def test_dead_refresh_token_needs_reauth_and_alarm_metric(aws, sandbox, capsys) -> None:
    flows.connect()
    stolen = root.token_store().load().token
    assert stolen
    root.oauth_client().refresh(stolen.refresh_token, time.time())  # someone else burns the refresh token
    capsys.readouterr()
    result = scheduled(22 * HOUR, capsys)
    assert result["outcome"] == "needs_reauth"
    conn = root.token_store().load()
    assert conn.status is Status.NEEDS_REAUTH and "Invalid refresh token" in (conn.last_error or "")
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(m.get("ConnectionDead") == [1.0] or m.get("ConnectionDead") == 1.0 for m in emf), emf
    status = flows.status_json()
    assert status["status"] == "needs_reauth" and status["last_error"]
    # The admin reconnects: the connection is healthy again.
    assert flows.connect()["status"] == "connected"


def test_keap_down_keeps_the_connection_and_shows_the_error(aws, sandbox) -> None:
    flows.connect()
    sandbox.fault(path_prefix="/token", status=503, count=10)
    refresher = Refresher(root.token_store(), root.oauth_client(), sleep=lambda s: None)
    result = load_handler("refresh").lambda_handler({"force": True}, FakeContext(), refresher=refresher)
    assert result["outcome"] == "failed"
    status = flows.status_json()
    assert status["status"] == "connected" and "503" in status["last_error"]
    assert status["refresh_failures"] == 1
    sandbox.control("DELETE", "faults")
    assert scheduled(0.0)["outcome"] == "fresh"  # token still valid: nothing was lost


def test_refresh_now_button(aws, sandbox) -> None:
    before = flows.connect()
    response = flows.call("admin", "POST", "/refresh")
    assert response["statusCode"] == 303
    assert flows.header(response, "Location") == "/prod/?done=refreshed"
    after = flows.status_json()
    assert after["refresh_count"] == before["refresh_count"] + 1
    assert len(refreshes_at_keap(sandbox)) == 1


def test_refresh_now_when_disconnected(aws, sandbox) -> None:
    response = flows.call("admin", "POST", "/refresh")
    assert response["statusCode"] == 409 and "Keap is not connected" in response["body"]


def test_scheduled_check_before_connecting(aws, sandbox) -> None:
    assert scheduled(0.0)["outcome"] == "not_connected"


def test_refresh_now_refuses_a_cross_site_post(aws, sandbox) -> None:
    flows.connect()
    response = flows.call("admin", "POST", "/refresh",
                          headers={"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"})
    assert response["statusCode"] == 403
    assert refreshes_at_keap(sandbox) == []
    same = flows.call("admin", "POST", "/refresh", headers={"Sec-Fetch-Site": "same-origin"})
    assert same["statusCode"] == 303
