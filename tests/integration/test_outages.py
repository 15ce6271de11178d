"""Nothing lost when Keap is down, throttling or out of quota, or when a function has little time left — the actions
function and the refresh path over HTTP against the moto server and the Keap sandbox, hours simulated."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from keaplink import root
from keaplink.connection.oauth import OAuthClient
from keaplink.connection.refresh import Refresher
from keaplink.connection.token import Token
from keaplink.keap.rate_limit import MAX_PAUSE_S
from keaplink_dev.local import flows
from keaplink_dev.local.handlers import load_handler
from keaplink_dev.local.sqs_poller import dlq_messages, queue_depth, send
from tests.support.outage import ActionsFunction, Context, SimTime, actions_function

HOUR = 3600.0
MAX_RECEIVE_COUNT = 20  # the test queue's redrive policy (keaplink_dev.local.moto_server), as in template.yaml


def signup(user: str) -> str:
    return json.dumps({"type": "user.signed_up", "user_id": user, "email": f"{user}@example.com"})


def contacts(sandbox) -> list[dict]:  # type: ignore[no-untyped-def]
    return sandbox.control("GET", "state")["contacts"]


def rest_calls(sandbox, status: int | None = None) -> list[dict]:  # type: ignore[no-untyped-def]
    return [r for r in sandbox.requests_log("/crm/rest") if status is None or r["status"] == status]


def queue_view() -> dict[str, Any]:
    view: dict[str, Any] = flows.status_json()["queue"]
    return view


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def run_until_flowing(fn: ActionsFunction, sandbox, expected: int, max_minutes: int = 60) -> None:  # type: ignore[no-untyped-def]
    """Simulated minutes until every expected contact exists and the queue is empty."""
    for _ in range(max_minutes):
        fn.minute(polls=10, real_pause_s=0.2)
        if len(contacts(sandbox)) >= expected and queue_depth(fn.aws, fn.aws.queue_url) == 0:
            return
    raise AssertionError(f"not done after {max_minutes} simulated minutes: {len(contacts(sandbox))} contacts, "
                         f"{queue_depth(fn.aws, fn.aws.queue_url)} messages left, queue {queue_view()}")


@pytest.fixture
def fn(aws, sandbox, monkeypatch) -> ActionsFunction:  # type: ignore[no-untyped-def]
    return actions_function(aws, sandbox, monkeypatch)


# --- Keap down for hours -------------------------------------------------------------------------------
@pytest.mark.slow  # hours of outage, real SQS pauses
def test_a_keap_outage_longer_than_the_receive_budget_dead_letters_nothing(fn, sandbox) -> None:  # type: ignore[no-untyped-def]
    flows.connect()
    sandbox.control("DELETE", "requests")
    sandbox.fault(path_prefix="/crm/rest", status=503, count=None)  # every REST call, until cleared
    bodies = [signup(f"u{i}") for i in range(25)]
    send(fn.aws, *bodies)

    # Three simulated hours: on AWS, 20 receives x 180 s would have sent every message to the DLQ after one.
    # moto's queue runs on real time (1 s visibility, 20 receives): the loop also outlasts 21 real seconds, so
    # a queue that kept receiving would have dead-lettered here too.
    started, minutes = time.monotonic(), 0
    while minutes < 180 or time.monotonic() - started < MAX_RECEIVE_COUNT + 1:
        fn.minute(real_pause_s=0.1)
        minutes += 1
    held = queue_view()
    assert held["held"] and held["reason"] == "keap_unavailable" and held["until"] is None
    assert held["waiting"] == 25 and epoch(held["since"]) < fn.time.now() - 2.9 * HOUR
    assert not fn.enabled() and dlq_messages(fn.aws) == []
    refused = len(rest_calls(sandbox, 503))
    probes = fn.batches  # one batch met the outage; after that only probes reached Keap
    assert fn.batches == 1 and refused <= 2 * 10 + 2 * 20, refused  # the first batch's calls + 2 per probe

    sandbox.control("DELETE", "faults")  # Keap is back
    run_until_flowing(fn, sandbox, expected=25, max_minutes=20)  # the next probe is at most 15 minutes away
    assert {c["email_addresses"][0]["email"] for c in contacts(sandbox)} == {f"u{i}@example.com" for i in range(25)}
    assert dlq_messages(fn.aws) == [] and not queue_view()["held"] and fn.enabled()
    assert max(fn.receive_counts.values()) <= 3 and probes == 1


# --- a spent daily quota -----------------------------------------------------------------------------------
def next_utc_midnight(now: float) -> float:
    return math.ceil(now / 86400) * 86400


@pytest.mark.slow  # a day of quota, ~1 min
def test_a_spent_daily_quota_holds_the_queue_until_the_reset(aws, sandbox, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    sim = SimTime(sandbox)
    midnight = next_utc_midnight(sim.now())
    sim.set(midnight - 2 * HOUR)
    fn = actions_function(aws, sandbox, monkeypatch, sim)
    flows.connect()
    # 60 a day: after the reset, 40 above keaplink's reserve of 20 — the 12 signups' 24 calls (lookup, create).
    sandbox.configure(throttle=True, limits={"oauth_per_day": 60})
    sandbox.control("POST", "quota", json={"limit": "oauth_per_day"})  # another client of the client id spent it
    sandbox.control("DELETE", "requests")
    send(aws, *[signup(f"u{i}") for i in range(12)])

    fn.minute()
    held = queue_view()
    assert held["held"] and held["reason"] == "quota_spent" and epoch(held["until"]) == midnight
    assert not fn.enabled()
    for _ in range(110):  # until a few minutes before midnight: held, nobody calls Keap
        fn.minute()
    assert len(rest_calls(sandbox)) == len(rest_calls(sandbox, 429)) <= 10  # the first batch's calls in flight
    refused_while_held = len(rest_calls(sandbox))

    run_until_flowing(fn, sandbox, expected=12, max_minutes=20)  # resumed at the reset
    assert len(contacts(sandbox)) == 12 and dlq_messages(aws) == []
    assert len(rest_calls(sandbox, 429)) == refused_while_held  # none after the reset
    assert fn.time.now() >= midnight and not queue_view()["held"]


@pytest.mark.slow  # a day of pacing, ~1-2 min
def test_keaplink_paces_itself_and_stops_before_the_wall(aws, sandbox, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Its own traffic never meets a 429: at keaplink's reserve the queue is held until the reset."""
    sim = SimTime(sandbox)
    midnight = next_utc_midnight(sim.now())
    sim.set(midnight - HOUR)
    fn = actions_function(aws, sandbox, monkeypatch, sim)
    flows.connect()
    sandbox.configure(throttle=True, limits={"oauth_per_day": 25})  # 5 calls above the reserve of 20
    sandbox.control("DELETE", "requests")
    send(aws, *[signup(f"u{i}") for i in range(14)])

    for _ in range(5):
        fn.minute()
    held = queue_view()
    assert held["held"] and held["reason"] == "quota_spent" and epoch(held["until"]) == midnight
    assert held["quota"]["available"] <= 20 and held["quota"]["limit"] == 25
    # The 5 calls above the reserve, plus those already in flight when the reserve was met (8 concurrent records),
    # went on; no further call did, and none met Keap's wall.
    assert 1 <= len(contacts(sandbox)) <= len(rest_calls(sandbox)) <= 5 + 8 and rest_calls(sandbox, 429) == []

    # The next day's quota fits the rest (each new contact costs a lookup and a create).
    sandbox.configure(limits={"oauth_per_day": 60})
    run_until_flowing(fn, sandbox, expected=14, max_minutes=70)  # resumed at the reset
    assert rest_calls(sandbox, 429) == [] and dlq_messages(aws) == [] and fn.time.now() >= midnight


# --- a six-hour Retry-After -----------------------------------------------------------------------------
def test_a_six_hour_retry_after_never_sleeps_past_the_invocation(fn, sandbox) -> None:  # type: ignore[no-untyped-def]
    flows.connect()
    sandbox.control("DELETE", "requests")
    sandbox.fault(path_prefix="/crm/rest", status=429, count=None, headers={"Retry-After": "21600"})
    send(fn.aws, *[signup(f"u{i}") for i in range(10)])
    slept: list[float] = []

    context = Context(remaining_ms=30_000)
    assert fn.batch(context, sleep=slept.append) == 10
    assert sum(slept) <= 27.0 and all(s <= 5.0 for s in slept)  # within the invocation, minus its reserve
    assert root.rate_limiter().paused_for() <= MAX_PAUSE_S  # the container is not frozen for six hours
    held = queue_view()
    assert held["reason"] == "throttled" and abs(epoch(held["until"]) - (fn.time.now() + 21600)) < 60
    refused = len(rest_calls(sandbox, 429))
    assert 1 <= refused <= 8  # the calls in flight when the first answer came

    # A batch still in flight when the queue was paused: straight back, no Keap call, no sleep.
    msgs = fn.receive() or []
    time.sleep(1.1)
    msgs = msgs or fn.receive()
    arn = "arn:aws:sqs:us-east-1:123456789012:q"
    from keaplink_dev.local.sqs_poller import to_record

    response = fn.invoke([to_record(m, arn) for m in msgs], context, sleep=slept.append)
    assert len(response["batchItemFailures"]) == len(msgs) > 0
    assert len(rest_calls(sandbox, 429)) == refused and sum(slept) <= 27.0

    sandbox.control("DELETE", "faults")
    fn.time.advance(6 * HOUR)
    # Up to 30 simulated minutes: each costs 0.2 s of real time, and moto's SQS hides the records handed back
    # above for a real second; 5 minutes (about 1 s) raced that and failed now and then, here and in CI.
    run_until_flowing(fn, sandbox, expected=10, max_minutes=30)
    assert dlq_messages(fn.aws) == []


def test_a_six_hour_retry_after_from_the_token_endpoint_is_not_slept_on(aws, sandbox) -> None:  # type: ignore[no-untyped-def]
    flows.connect()
    sandbox.fault(path_prefix="/token", status=429, count=None, headers={"Retry-After": "21600"})
    slept: list[float] = []
    refresher = Refresher(root.token_store(), root.oauth_client(), sleep=slept.append, timings=root.refresh_timings())
    result = load_handler("refresh").lambda_handler({"force": True}, Context(120_000), refresher=refresher)
    assert result["outcome"] == "failed" and slept == []
    assert len([r for r in sandbox.requests_log("/token") if r.get("grant_type") == "refresh_token"]) == 1
    assert flows.status_json()["status"] == "connected"


# --- poison among valid messages -------------------------------------------------------------------------
def test_a_deeply_nested_body_costs_the_valid_messages_nothing(fn, sandbox) -> None:  # type: ignore[no-untyped-def]
    flows.connect()
    poison = "[" * 5000 + "]" * 5000  # 10 KB: RecursionError in a naive json.loads
    [*_, bad_id] = send(fn.aws, *[signup(f"u{i}") for i in range(5)], poison)
    assert fn.batch() == 6
    assert len(contacts(sandbox)) == 5 and queue_depth(fn.aws, fn.aws.queue_url) == 0
    [dead] = dlq_messages(fn.aws)
    assert dead["Body"] == poison and "nested deeper" in dead["MessageAttributes"]["keaplink-reason"]["StringValue"]
    assert dead["MessageAttributes"]["keaplink-source-message-id"]["StringValue"] == bad_id


# --- the refresh path and the function's time --------------------------------------------------------------
def refreshes_at_keap(sandbox) -> list[dict]:  # type: ignore[no-untyped-def]
    return [r for r in sandbox.requests_log("/token") if r.get("grant_type") == "refresh_token"]


def test_a_refresh_with_little_time_left_makes_no_keap_call(aws, sandbox) -> None:  # type: ignore[no-untyped-def]
    before = flows.connect()
    token = root.token_store().load().token
    # 12 s left: less than the token call (KEAP_HTTP_TIMEOUT, 10 s) and its save (5 s) need, after the reserve.
    result = load_handler("refresh").lambda_handler({"force": True}, Context(12_000))
    assert result["outcome"] == "out_of_time" and refreshes_at_keap(sandbox) == []
    after = root.token_store().load()
    assert after.token == token and flows.status_json()["refresh_count"] == before["refresh_count"]
    # With the time a refresh needs, the same call refreshes.
    assert load_handler("refresh").lambda_handler({"force": True}, Context(30_000))["outcome"] == "refreshed"


class ReconnectingOAuth(OAuthClient):
    """The admin reconnects while this refresh is on its way to Keap (Keap revokes the grant it carries)."""

    def refresh(self, refresh_token: str, now: float) -> Token:
        flows.connect()
        return super().refresh(refresh_token, now)


def test_a_refresh_racing_a_reconnect_stays_connected_and_does_not_hold_the_queue(fn, sandbox) -> None:  # type: ignore[no-untyped-def]
    flows.connect()
    fn.time.advance(22 * HOUR)  # the token is due: the batch's token read refreshes it
    settings = root.settings()
    racing = ReconnectingOAuth(settings.keap_token_url, root.client_credentials, settings.http_timeout_s)
    fn.through = Refresher(root.token_store(), racing, clock=fn.time.now, timings=root.refresh_timings())
    send(fn.aws, signup("u1"))
    assert fn.batch() == 1
    assert len(contacts(sandbox)) == 1 and queue_depth(fn.aws, fn.aws.queue_url) == 0
    status = flows.status_json()
    assert status["status"] == "connected" and not status["queue"]["held"] and fn.enabled()
    assert [r["status"] for r in refreshes_at_keap(sandbox)] == [400]  # the old grant, refused: no harm done


# --- credentials refused (a revoked API key) --------------------------------------------------------------
def test_a_revoked_api_key_holds_until_a_new_key_works(fn, aws, sandbox, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def use_key(key: str) -> None:
        aws.client("secretsmanager").put_secret_value(SecretId=aws.credentials_secret,
                                                      SecretString=json.dumps({"api_key": key}))

    use_key(sandbox.control("POST", "keys", json={"kind": "sak"})["key"])
    monkeypatch.setenv("KEAP_AUTH_MODE", "api_key")
    root.reset()
    sandbox.control("POST", "revoke", json={"include_keys": True})
    send(aws, signup("u1"), signup("u2"))
    fn.minute()
    held = queue_view()
    assert held["held"] and held["reason"] == "credentials_refused" and dlq_messages(aws) == []
    use_key(sandbox.control("POST", "keys", json={"kind": "sak"})["key"])  # the operator rotates the key
    run_until_flowing(fn, sandbox, expected=2, max_minutes=20)  # the next probe reads the new key
    assert dlq_messages(aws) == [] and not queue_view()["held"]


def test_the_status_page_says_the_queue_is_held_why_and_until_when(fn, sandbox) -> None:  # type: ignore[no-untyped-def]
    send(fn.aws, signup("u1"))
    fn.minute()  # not connected yet: held until the admin connects
    page = flows.call("admin", "GET", "/")["body"]
    assert "id='queue-status'>Held<" in page and "Keap is not connected yet" in page and "a reconnect" in page
    view = queue_view()
    assert view["reason"] == "not_connected" and view["until"] is None and view["since"]
    flows.connect()  # the callback makes the hold's probe due now; the mapping is not its to change
    view = queue_view()
    assert view["held"] and epoch(view["next_probe_at"]) <= time.time() + 1 and not fn.enabled()
    fn.minute()  # the minute check probes Keap, lifts the hold and resumes
    assert not queue_view()["held"] and fn.enabled()
    assert "id='queue-status'>Flowing<" in flows.call("admin", "GET", "/")["body"]
    assert datetime.now(UTC)  # (the page renders times as ISO UTC strings)
