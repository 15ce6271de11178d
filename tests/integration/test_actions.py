"""Contact and tag actions: the SQS-triggered handler against moto's SQS/DynamoDB and the Keap sandbox."""

from __future__ import annotations

import json
from typing import Any

import pytest

from keaplink import root
from keaplink_dev.local import flows
from keaplink_dev.local.handlers import load_handler
from keaplink_dev.local.lambda_events import FakeContext
from keaplink_dev.local.lambda_local import mapping_state, register_actions_function
from keaplink_dev.local.sqs_poller import dlq_messages, drain, poll_once, queue_depth, send
from tests.support.outage import SCHEDULED_EVENT


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result: dict[str, Any] = load_handler("actions").lambda_handler(event, context)
    return result


def signup(user: str, email: str, **names: str) -> str:
    return json.dumps({"type": "user.signed_up", "user_id": user, "email": email, **names})


def press(user: str, **extra: str) -> str:
    return json.dumps({"type": "button.pressed", "user_id": user, **extra})


def keap_api_calls(sandbox) -> list[dict]:  # type: ignore[no-untyped-def]
    return sandbox.requests_log("/crm/rest")


@pytest.fixture
def connected(aws, sandbox):  # type: ignore[no-untyped-def]
    flows.connect()
    sandbox.control("DELETE", "requests")
    return aws


def contacts(sandbox) -> list[dict]:  # type: ignore[no-untyped-def]
    return sandbox.control("GET", "state")["contacts"]


def test_signup_creates_one_contact_and_stores_its_id(connected, sandbox) -> None:
    send(connected, signup("u1", "ada@example.com", given_name="Ada", family_name="Lovelace"))
    drain(connected, handler)
    [contact] = contacts(sandbox)
    assert contact["given_name"] == "Ada" and contact["family_name"] == "Lovelace"
    assert [e["email"] for e in contact["email_addresses"]] == ["ada@example.com"]
    assert root.user_store().get("u1").contact_id == contact["id"]
    # looked up by e-mail first (an existing contact would be kept as it is), then created
    assert [(r["method"], r["path"]) for r in keap_api_calls(sandbox)] == [
        ("GET", "/crm/rest/v2/contacts"), ("POST", "/crm/rest/v2/contacts")]


def test_second_signup_with_same_email_fills_only_blank_names(connected, sandbox) -> None:
    send(connected, signup("u1", "ada@example.com", given_name="Ada"))
    drain(connected, handler)
    send(connected, signup("u1", "ADA@example.com", given_name="Augusta", family_name="King"))
    drain(connected, handler)
    [contact] = contacts(sandbox)
    assert (contact["given_name"], contact["family_name"]) == ("Ada", "King")


def test_first_press_tags_once_second_press_makes_no_keap_call(connected, sandbox) -> None:
    send(connected, signup("u1", "ada@example.com"))
    drain(connected, handler)
    sandbox.control("DELETE", "requests")
    send(connected, press("u1"))
    drain(connected, handler)
    first = keap_api_calls(sandbox)
    assert [r["path"] for r in first][-1].endswith(":applyTags")
    [contact] = contacts(sandbox)
    [tag] = sandbox.control("GET", "state")["tags"]
    assert tag["name"] == "buttonpushed" and contact["tag_ids"] == [tag["id"]]
    sandbox.control("DELETE", "requests")
    send(connected, press("u1"))
    drain(connected, handler)
    assert keap_api_calls(sandbox) == []


def test_steady_state_first_press_is_one_keap_call(connected, sandbox) -> None:
    send(connected, signup("u1", "a@example.com"), signup("u2", "b@example.com"))
    drain(connected, handler)
    send(connected, press("u1"))
    drain(connected, handler)  # looks the tag up (or creates it) once
    sandbox.control("DELETE", "requests")
    send(connected, press("u2"))
    drain(connected, handler)
    assert [r["path"] for r in keap_api_calls(sandbox)] == ["/crm/rest/v2/tags/1/contacts:applyTags"]


def test_same_message_three_times_one_contact_one_tag(connected, sandbox) -> None:
    send(connected, signup("u1", "ada@example.com"))
    poll_once(connected, handler, duplicate=3)
    send(connected, press("u1"))
    poll_once(connected, handler, duplicate=3)
    drain(connected, handler)
    [contact] = contacts(sandbox)
    assert len(contact["tag_ids"]) == 1
    assert root.user_store().get("u1").tags == frozenset({"buttonpushed"})


def test_press_before_signup_waits_for_the_signup(connected, sandbox) -> None:
    send(connected, press("u1"))
    delivered, failed = poll_once(connected, handler)
    assert delivered == 1 and len(failed) == 1  # returned for later, not dead-lettered
    assert dlq_messages(connected) == [] and contacts(sandbox) == []
    send(connected, signup("u1", "ada@example.com"))
    drain(connected, handler)
    [contact] = contacts(sandbox)
    assert len(contact["tag_ids"]) == 1


def test_press_before_signup_with_email_upserts_the_contact(connected, sandbox) -> None:
    send(connected, press("u9", email="zoe@example.com"))
    drain(connected, handler)
    [contact] = contacts(sandbox)
    assert len(contact["tag_ids"]) == 1 and root.user_store().get("u9").contact_id == contact["id"]


def test_contact_tag_applies_any_named_tag(connected, sandbox) -> None:
    send(connected, signup("u1", "ada@example.com"))
    send(connected, json.dumps({"type": "contact.tag", "user_id": "u1", "tag": "vip customer"}))
    drain(connected, handler)
    names = {t["name"] for t in sandbox.control("GET", "state")["tags"]}
    assert names == {"vip customer"}


MALFORMED = {
    "not json": ("{nope", "not valid JSON"),
    "not an object": ("[1, 2]", "not a JSON object"),
    "unknown type": (json.dumps({"type": "user.deleted", "user_id": "u1"}), "unknown message type"),
    "invalid email": (signup("u1", "not-an-email"), "email"),
    "oversized name": (signup("u1", "a@example.com", given_name="x" * 41), "given_name"),
    "missing user": (json.dumps({"type": "button.pressed"}), "user_id"),
    "extra field": (json.dumps({"type": "button.pressed", "user_id": "u1", "admin": True}), "admin"),
    "huge body": (json.dumps({"type": "button.pressed", "user_id": "u1", "pad": "x" * 20000}), "limit"),
    "deeply nested": ("[" * 5000 + "]" * 5000, "nested deeper"),
    "huge number": ('{"type": "button.pressed", "user_id": "u1", "n": ' + "9" * 5000 + "}", "not valid JSON"),
    "escaped lone surrogate": ('{"type": "button.pressed", "user_id": "u1", "email": "\\ud800@x.io"}', "UTF-8"),
    "over the limit in bytes": (json.dumps({"type": "button.pressed", "user_id": "u1", "x": "é" * 9000},
                                           ensure_ascii=False), "bytes"),
    "type is a list": ('{"type": ["user.signed_up"]}', "unknown message type"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_messages_go_to_the_dlq_with_a_reason(connected, sandbox, case: str) -> None:
    body, reason = MALFORMED[case]
    [message_id] = send(connected, body)
    delivered, failed = poll_once(connected, handler)
    assert (delivered, failed) == (1, [])  # not retried: deleted from the main queue
    assert queue_depth(connected, connected.queue_url) == 0
    [dead] = dlq_messages(connected)
    assert dead["Body"] == body
    attrs = dead["MessageAttributes"]
    assert reason in attrs["keaplink-reason"]["StringValue"]
    assert attrs["keaplink-source-message-id"]["StringValue"] == message_id
    assert keap_api_calls(sandbox) == []


def test_messages_wait_while_disconnected_and_flow_after_reconnect(aws, sandbox, monkeypatch) -> None:
    name = register_actions_function(aws)
    monkeypatch.setenv("ACTIONS_FUNCTION", name)
    root.reset()  # settings are read once per container
    send(aws, signup("u1", "ada@example.com"), signup("u2", "bob@example.com"))
    delivered, failed = poll_once(aws, handler)
    assert delivered == 2 and len(failed) == 2
    assert mapping_state(aws, name) == "Disabled"  # the queue is held: no more deliveries
    assert keap_api_calls(sandbox) == [] and dlq_messages(aws) == []
    flows.connect()  # the admin connects: the callback makes the hold's probe due now …
    assert mapping_state(aws, name) == "Disabled"
    assert handler(dict(SCHEDULED_EVENT), FakeContext())["outcome"] == "resumed"  # … the minute check lifts it
    assert mapping_state(aws, name) == "Enabled"
    drain(aws, handler)
    assert len(contacts(sandbox)) == 2 and dlq_messages(aws) == []


def test_dead_refresh_token_holds_messages(connected, sandbox, monkeypatch) -> None:
    name = register_actions_function(connected)
    monkeypatch.setenv("ACTIONS_FUNCTION", name)
    root.reset()  # settings are read once per container
    sandbox.control("POST", "revoke")  # Keap revoked the grant: access and refresh tokens die
    send(connected, signup("u1", "ada@example.com"))
    _, failed = poll_once(connected, handler)
    assert len(failed) == 1 and mapping_state(connected, name) == "Disabled"
    assert flows.status_json()["status"] == "needs_reauth"
    flows.connect()
    handler({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}, FakeContext())  # the minute check
    drain(connected, handler)
    assert len(contacts(sandbox)) == 1 and dlq_messages(connected) == []


def test_expired_access_token_is_refreshed_once_on_401(connected, sandbox) -> None:
    sandbox.advance(86400 + 60)  # Keap's clock says the access token expired; keaplink's does not know
    send(connected, signup("u1", "ada@example.com"))
    drain(connected, handler)
    assert len(contacts(sandbox)) == 1
    refreshes = [r for r in sandbox.requests_log("/token") if r.get("grant_type") == "refresh_token"]
    assert len(refreshes) == 1


def test_keap_5xx_and_429_bursts_lose_nothing(connected, sandbox) -> None:
    sandbox.fault(path_prefix="/crm/rest", failure_rate=0.3, status=503, seed=7)
    sandbox.fault(path_prefix="/crm/rest", status=429, count=5)
    bodies = [signup(f"u{i}", f"user{i}@example.com") for i in range(20)] + [press(f"u{i}") for i in range(0, 20, 2)]
    send(connected, *bodies[:20])
    drain(connected, handler, timeout_s=60)
    send(connected, *bodies[20:])
    drain(connected, handler, timeout_s=60)
    sandbox.control("DELETE", "faults")
    assert len(contacts(sandbox)) == 20
    tagged = [c for c in contacts(sandbox) if c["tag_ids"]]
    assert len(tagged) == 10 and dlq_messages(connected) == []


def test_slows_down_when_keaps_headers_say_the_window_is_nearly_spent(connected, sandbox, capsys) -> None:
    # A 40/minute budget (as if another client of the same client id had used the rest): 20 calls leave
    # less than two seconds of our traffic in the window.
    sandbox.configure(throttle=True, limits={"oauth_per_minute": 40})
    send(connected, *[signup(f"u{i}", f"user{i}@example.com") for i in range(20)])
    drain(connected, handler, timeout_s=60)
    assert len(contacts(sandbox)) == 20 and dlq_messages(connected) == []
    assert [r for r in keap_api_calls(sandbox) if r["status"] == 429] == []
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    values = [m["KeapSlowedDown"] for m in emf if "KeapSlowedDown" in m]  # a number, or a list of them
    assert sum(sum(v) if isinstance(v, list) else v for v in values) >= 1


@pytest.mark.slow  # waits 16 s of real time for moto's SQS
def test_a_press_that_overtook_its_signup_comes_back_in_seconds(aws, sandbox) -> None:
    """With the queue's real visibility timeout (here 360 s, as the template sets), the press is visible again
    after 15 s instead of six minutes."""
    flows.connect()
    sqs = aws.client("sqs")
    sqs.set_queue_attributes(QueueUrl=aws.queue_url, Attributes={"VisibilityTimeout": "360"})
    send(aws, press("u1"))
    _, failed = poll_once(aws, handler)
    assert len(failed) == 1
    send(aws, signup("u1", "ada@example.com"))
    poll_once(aws, handler)  # the signup (the press is still invisible)
    assert queue_depth(aws, aws.queue_url) == 1
    import time

    time.sleep(16)  # moto's SQS keeps real time
    delivered, failed = poll_once(aws, handler)
    assert (delivered, failed) == (1, []) and contacts(sandbox)[0]["tag_ids"]
