"""Every sample event in events/ runs against its handler with the outcome its name promises."""

from __future__ import annotations

import json

import pytest

from keaplink_dev.local import flows
from keaplink_dev.local.handlers import load_handler
from keaplink_dev.local.lambda_events import FakeContext, load_event
from keaplink_dev.local.sqs_poller import dlq_messages

API_EVENTS = {
    "admin-status.json": ("admin", 200, "Keap connection"),
    "admin-status-json.json": ("admin", 200, '"status"'),
    "admin-connect.json": ("admin", 302, ""),
    "admin-refresh.json": ("admin", 303, ""),
    "admin-import-tokens.json": ("admin", 400, "Keap did not accept this token pair"),  # placeholders, not a pair
    "admin-unauthenticated.json": ("admin", 401, "Unauthorized"),
    "admin-wrong-password.json": ("admin", 401, "Unauthorized"),
    "callback-denied.json": ("callback", 403, "Keap access was denied"),
    "callback-bad-state.json": ("callback", 400, "This connection link is not valid"),
    "callback-success.json": ("callback", 400, "not valid"),  # its placeholder state is not a live one
    "callback-without-state-cookie.json": ("callback", 400, "not valid"),  # not the browser that asked
    "admin-signin.json": ("admin", 401, "Wrong user name or password."),  # its placeholder is not the password
}


@pytest.mark.parametrize("name", sorted(API_EVENTS))
def test_api_event(aws, sandbox, name: str) -> None:
    function, status, text = API_EVENTS[name]
    flows.connect()
    response = load_handler(function).lambda_handler(load_event(name), FakeContext())
    assert response["statusCode"] == status, response
    assert text in response["body"]


def test_callback_success_event_with_a_live_state(aws, sandbox) -> None:
    """The shape of callback-success.json works once its placeholders are a real state and code."""
    location, _ = flows.start_connect()
    params = flows.consent(location)
    raw = json.dumps(load_event("callback-success.json"))
    raw = raw.replace("REPLACE-WITH-STATE", params["state"]).replace("REPLACE-WITH-CODE", params["code"])
    response = load_handler("callback").lambda_handler(json.loads(raw), FakeContext())
    assert response["statusCode"] == 200 and flows.status_json()["status"] == "connected"


def test_import_tokens_event_with_a_live_pair(aws, sandbox) -> None:
    """The shape of admin-import-tokens.json works once its placeholders are a pair from the 'portal'."""
    pair = sandbox.control("POST", "tokens")
    raw = json.dumps(load_event("admin-import-tokens.json"))
    raw = raw.replace("PASTE-THE-ACCESS-TOKEN", pair["access_token"]).replace("PASTE-THE-REFRESH-TOKEN",
                                                                              pair["refresh_token"])
    response = load_handler("admin").lambda_handler(json.loads(raw), FakeContext())
    assert response["statusCode"] == 303 and flows.status_json()["status"] == "connected"


def test_refresh_events(aws, sandbox) -> None:
    handler = load_handler("refresh").lambda_handler
    assert handler(load_event("refresh.json"), FakeContext())["outcome"] == "not_connected"
    flows.connect()
    assert handler(load_event("refresh.json"), FakeContext())["outcome"] == "fresh"
    assert handler(load_event("refresh-force.json"), FakeContext())["outcome"] == "refreshed"


def test_actions_events(aws, sandbox) -> None:
    flows.connect()
    handler = load_handler("actions").lambda_handler
    assert handler(load_event("actions-signup.json"), FakeContext()) == {"batchItemFailures": []}
    assert handler(load_event("actions-press.json"), FakeContext()) == {"batchItemFailures": []}
    assert handler(load_event("actions-tag.json"), FakeContext()) == {"batchItemFailures": []}
    assert handler(load_event("actions-mixed.json"), FakeContext()) == {"batchItemFailures": []}
    assert handler(load_event("actions-malformed.json"), FakeContext()) == {"batchItemFailures": []}
    assert len(dlq_messages(aws)) == 3
    state = sandbox.control("GET", "state")
    assert {e["email"] for c in state["contacts"] for e in c["email_addresses"]} == {
        "ada@example.com", "grace@example.com", "alan@example.com"}
    assert {t["name"] for t in state["tags"]} == {"buttonpushed", "vip"}


def test_actions_hold_check_event(aws, sandbox) -> None:
    """The scheduled check: nothing held, nothing to do; held before connecting, resumed by the check after it."""
    handler = load_handler("actions").lambda_handler
    assert handler(load_event("actions-hold-check.json"), FakeContext())["outcome"] == "not_held"
    assert handler(load_event("actions-signup.json"), FakeContext())["batchItemFailures"]  # not connected: held
    assert handler(load_event("actions-hold-check.json"), FakeContext())["outcome"] == "held"
    flows.connect()  # the hold's probe is due now
    assert handler(load_event("actions-hold-check.json"), FakeContext())["outcome"] == "resumed"
    assert handler(load_event("actions-hold-check.json"), FakeContext())["outcome"] == "not_held"


def test_the_further_actions_events(aws, sandbox) -> None:
    """Consent, untag, a goal, custom fields and a note, each sample once, then the goal and note again: once."""
    flows.connect()
    sandbox.control("POST", "goals", json={"integration": "myapp", "call_name": "trial_started"})
    for label, kind in (("Plan", "DROPDOWN"), ("Seats", "WHOLE_NUMBER"), ("Signup date", "DATE")):
        sandbox.control("POST", "custom_fields", json={"label": label, "field_type": kind,
                                                       **({"options": ["Free", "Pro"]} if kind == "DROPDOWN" else {})})
    handler = load_handler("actions").lambda_handler
    for name in ("actions-signup.json", "actions-tag.json", "actions-signup-consent.json", "actions-untag.json",
                 "actions-goal.json", "actions-fields.json", "actions-note.json", "actions-goal.json",
                 "actions-note.json"):
        assert handler(load_event(name), FakeContext()) == {"batchItemFailures": []}, name
    assert dlq_messages(aws) == []
    state = sandbox.control("GET", "state")
    assert state["email_status"]["hedy@example.com"]["status"] == "SINGLE_OPT_IN"
    ada = next(c for c in state["contacts"] if c["email_addresses"][0]["email"] == "ada@example.com")
    assert ada["tag_ids"] == [] and len(ada["custom_fields"]) == 3
    assert len(state["goals_achieved"]) == 1 and len(state["notes"]) == 1
