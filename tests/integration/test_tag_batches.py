"""Tag applications of one SQS batch go out together: one applyTags call per tag and 100 contacts, each
record settling on its own contact's result (over HTTP, against the contract-checking sandbox)."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from keaplink import root
from keaplink_dev.local import flows
from keaplink_dev.local.handlers import load_handler
from keaplink_dev.local.lambda_events import FakeContext
from keaplink_dev.local.sqs_poller import dlq_messages, drain, send, to_record


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result: dict[str, Any] = load_handler("actions").lambda_handler(event, context)
    return result


def signup(user: str) -> str:
    return json.dumps({"type": "user.signed_up", "user_id": user, "email": f"{user}@example.com"})


def press(user: str) -> str:
    return json.dumps({"type": "button.pressed", "user_id": user})


def tag(user: str, name: str) -> str:
    return json.dumps({"type": "contact.tag", "user_id": user, "tag": name})


def one_batch(aws, *bodies: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Send the bodies, receive them all, and hand them to the handler as one batch (as the event source does
    with a batch size above 10); deletes what it did not report as failed."""
    send(aws, *bodies)
    sqs = aws.client("sqs")
    arn = sqs.get_queue_attributes(QueueUrl=aws.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    messages: list[dict[str, Any]] = []
    while len(messages) < len(bodies):
        messages += sqs.receive_message(QueueUrl=aws.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"],
                                        VisibilityTimeout=60).get("Messages", [])
    response = handler({"Records": [to_record(m, arn) for m in messages]}, FakeContext())
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    for m in messages:
        if m["MessageId"] not in failed:
            sqs.delete_message(QueueUrl=aws.queue_url, ReceiptHandle=m["ReceiptHandle"])
    return response


def apply_calls(sandbox) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return [r for r in sandbox.requests_log("/crm/rest") if r["path"].endswith(":applyTags")]


def tagged(sandbox, name: str = "buttonpushed") -> set[str]:  # type: ignore[no-untyped-def]
    state = sandbox.control("GET", "state")
    [tag_id] = [t["id"] for t in state["tags"] if t["name"] == name]
    return {e["email"].split("@")[0] for c in state["contacts"] if tag_id in c.get("tag_ids", [])
            for e in c["email_addresses"]}


@pytest.fixture
def known_users(aws, sandbox):  # type: ignore[no-untyped-def]
    """Connected, 150 users signed up, and the tag known (so a first press is only the application)."""
    flows.connect()
    send(aws, *[signup(f"u{i:03d}") for i in range(150)])
    drain(aws, handler, timeout_s=120)
    sandbox.control("POST", "tags", json={"name": "buttonpushed"})
    sandbox.control("DELETE", "requests")
    return aws


def test_ten_first_presses_in_a_batch_are_one_keap_call(known_users, sandbox) -> None:
    assert one_batch(known_users, *[press(f"u{i:03d}") for i in range(10)]) == {"batchItemFailures": []}
    assert len(apply_calls(sandbox)) == 1
    lookups = [r for r in sandbox.requests_log("/crm/rest") if r["path"] == "/crm/rest/v2/tags"]
    assert len(sandbox.requests_log("/crm/rest")) == 1 + len(lookups) and len(lookups) <= 1
    assert tagged(sandbox) == {f"u{i:03d}" for i in range(10)}
    assert all(root.user_store().get(f"u{i:03d}").tags == {"buttonpushed"} for i in range(10))


def test_150_presses_are_two_calls_of_at_most_100(known_users, sandbox) -> None:
    assert one_batch(known_users, *[press(f"u{i:03d}") for i in range(150)]) == {"batchItemFailures": []}
    assert len(apply_calls(sandbox)) == 2
    assert len(tagged(sandbox)) == 150 and dlq_messages(known_users) == []


def test_two_tags_in_one_batch_are_one_call_each_and_a_duplicate_is_sent_once(known_users, sandbox) -> None:
    bodies = [press(f"u{i:03d}") for i in range(6)] + [tag(f"u{i:03d}", "vip") for i in range(4)] + [press("u000")]
    assert one_batch(known_users, *bodies) == {"batchItemFailures": []}
    assert len(apply_calls(sandbox)) == 2
    assert tagged(sandbox) == {f"u{i:03d}" for i in range(6)}
    assert tagged(sandbox, "vip") == {f"u{i:03d}" for i in range(4)}


def test_a_signup_and_a_press_of_one_user_in_one_batch_keep_their_order(aws, sandbox) -> None:
    flows.connect()
    assert one_batch(aws, signup("ada"), press("ada"), signup("bob"), press("bob")) == {"batchItemFailures": []}
    assert tagged(sandbox) == {"ada", "bob"} and len(apply_calls(sandbox)) == 1


def test_a_contact_deleted_in_keap_heals_alone_the_others_are_done(known_users, sandbox) -> None:
    sandbox.configure(apply_tags_missing_contact="CONTACT_DOES_NOT_EXIST")
    gone = root.user_store().get("u003").contact_id
    sandbox.control("DELETE", f"contacts/{gone}")
    assert one_batch(known_users, *[press(f"u{i:03d}") for i in range(10)]) == {"batchItemFailures": []}
    assert tagged(sandbox) == {f"u{i:03d}" for i in range(10)}  # u003 on a new contact found by its e-mail
    assert root.user_store().get("u003").contact_id != gone
    assert len(apply_calls(sandbox)) == 2 and dlq_messages(known_users) == []  # the batch's, then u003's own


def test_one_worker_per_batch_still_settles_every_press_and_remembers_it(known_users, sandbox,
                                                                           monkeypatch) -> None:
    # The results are settled on the batch's executor; with ACTIONS_CONCURRENCY=1 its one worker must be free.
    monkeypatch.setenv("ACTIONS_CONCURRENCY", "1")
    root.reset()
    outcome: list[dict[str, Any]] = []
    worker = threading.Thread(target=lambda: outcome.append(
        one_batch(known_users, *[press(f"u{i:03d}") for i in range(12)])), daemon=True)
    worker.start()
    worker.join(120)
    assert outcome == [{"batchItemFailures": []}], "the batch did not finish (a deadlock on its executor?)"
    assert tagged(sandbox) == {f"u{i:03d}" for i in range(12)}
    sandbox.control("DELETE", "requests")
    assert one_batch(known_users, *[press(f"u{i:03d}") for i in range(12)]) == {"batchItemFailures": []}
    assert sandbox.requests_log("/crm/rest") == []  # each press was remembered: repeats skip Keap
