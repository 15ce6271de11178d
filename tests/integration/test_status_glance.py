"""The operator's view at a glance: the connection's timeline and the dead letters on the status page.

Handlers in-process; DynamoDB, SQS, Lambda's event source mappings, Secrets Manager and KMS on a moto server;
Keap is the sandbox, over HTTP.
"""

from __future__ import annotations

import json
import threading

from keaplink import root
from keaplink.connection.timeline import TableTimeline
from keaplink_dev.local import flows
from keaplink_dev.local.handlers import load_handler
from keaplink_dev.local.lambda_events import FakeContext
from keaplink_dev.local.lambda_local import register_actions_function
from keaplink_dev.local.sqs_poller import dlq_messages, poll_once, send
from tests.support.outage import SCHEDULED_EVENT


def kinds(status: dict) -> list[str]:  # type: ignore[type-arg]
    return [e["kind"] for e in status["timeline"]]


def test_the_timeline_tells_what_happened(aws, sandbox, monkeypatch) -> None:
    name = register_actions_function(aws)
    monkeypatch.setenv("ACTIONS_FUNCTION", name)
    root.reset()
    assert flows.status_json()["timeline"] == []
    send(aws, json.dumps({"type": "user.signed_up", "user_id": "u1", "email": "ada@example.com"}))
    poll_once(aws, load_handler("actions").lambda_handler)  # not connected: the actions hold the queue
    flows.connect()  # connected; the callback makes the hold's probe due, and the minute check resumes the queue
    assert load_handler("actions").lambda_handler(dict(SCHEDULED_EVENT), FakeContext())["outcome"] == "resumed"
    assert flows.call("admin", "POST", "/refresh")["statusCode"] == 303  # refreshed
    sandbox.fault(path_prefix="/token", status=503, count=3)
    assert flows.call("admin", "POST", "/refresh")["statusCode"] == 502  # refresh failed (3 attempts)
    sandbox.control("POST", "revoke")
    assert flows.call("admin", "POST", "/refresh")["statusCode"] == 409  # re-authorization needed
    status = flows.status_json()
    assert kinds(status) == ["needs_reauth", "refresh_failed", "refreshed", "queue_resumed", "connected",
                             "queue_held"]
    events = {e["kind"]: e for e in status["timeline"]}
    assert events["connected"]["detail"] == "Keap app sb123.infusionsoft.com"
    assert "Invalid refresh token" in events["needs_reauth"]["detail"]
    assert all(e["at"].endswith("Z") for e in status["timeline"])
    page = flows.call("admin", "GET", "/")["body"]
    assert "id='timeline'" in page and "Re-authorization needed" in page and "Actions queue held" in page
    assert page.index("Re-authorization needed") < page.index("Connected through Keap")  # newest first


def test_the_timeline_keeps_the_newest_fifty(aws) -> None:
    timeline = root.timeline()
    for i in range(60):
        timeline.record("refreshed", f"n{i}")
    events = timeline.recent(limit=0)
    assert len(events) == 50
    assert [e.detail for e in events[:2]] == ["n59", "n58"] and events[-1].detail == "n10"
    item = aws.client("dynamodb").get_item(TableName=aws.connection_table, Key={"pk": {"S": "TIMELINE#default"}})
    assert len(item["Item"]["events"]["S"]) < 8_000  # one small item, however long keaplink runs


def test_concurrent_writers_lose_no_event(aws) -> None:
    def write(prefix: str) -> None:
        timeline = root.timeline()
        for i in range(8):
            timeline.record("refreshed", f"{prefix}{i}")

    threads = [threading.Thread(target=write, args=(p,)) for p in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    written = sorted(e.detail for e in root.timeline().recent(limit=0))
    assert written == sorted(f"{p}{i}" for p in "ab" for i in range(8))


def test_a_timeline_that_cannot_be_written_never_fails_the_operation(aws, sandbox, monkeypatch, caplog) -> None:
    from keaplink.aws import bind_table
    from keaplink.connection.table import ConnectionItem

    flows.connect()
    version = flows.status_json()["refresh_count"]
    broken = TableTimeline("default", lambda: bind_table(ConnectionItem, "no-such-table", root.settings()))
    monkeypatch.setattr(root, "timeline", lambda: broken)
    assert flows.call("admin", "POST", "/refresh")["statusCode"] == 303  # the refresh succeeded all the same
    assert flows.status_json()["refresh_count"] == version + 1
    assert flows.status_json()["timeline"] is None  # and the page says the timeline is unavailable
    assert "could not be read" in flows.call("admin", "GET", "/")["body"]
    assert any("timeline event not written" in r.getMessage() for r in caplog.records)


def dead_letter(aws, body: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    from keaplink.contract.dead_letters import DeadLetterQueue

    DeadLetterQueue(lambda: aws.client("sqs"), aws.dlq_url).send(body, reason, "m")


def test_the_status_page_counts_dead_letters_without_hiding_them(aws) -> None:
    for i in range(8):
        dead_letter(aws, f'{{"n": {i}}}', f"reason {i}")
    dead = flows.status_json()["dead_letters"]
    assert dead["count"] == 8 and len(dead["newest"]) == 5
    assert {x["reason"] for x in dead["newest"]} <= {f"reason {i}" for i in range(8)}
    assert all(x["sent_at"].endswith("Z") for x in dead["newest"])
    page = flows.call("admin", "GET", "/")["body"]
    assert "<strong id='dead-letter-count'>8</strong>" in page and "keaplink dlq redrive --all" in page
    assert len(dlq_messages(aws)) == 8  # peeked and given back at once: all still visible


def test_a_dead_letter_reason_is_shown_with_control_characters_escaped(aws) -> None:
    dead_letter(aws, "{}", "Keap said \u202eevil\u202c and \u009b2J")
    page = flows.call("admin", "GET", "/")["body"]
    assert "Keap said \\u202eevil\\u202c and \\x9b2J" in page
    assert "\u202e" not in page and "\u009b" not in page


def test_an_empty_dlq_and_an_unreadable_one(aws, monkeypatch) -> None:
    assert flows.status_json()["dead_letters"] == {"count": 0, "newest": []}
    assert "<strong id='dead-letter-count'>0</strong> messages" in flows.call("admin", "GET", "/")["body"]
    monkeypatch.delenv("DLQ_URL")
    root.reset()
    status = flows.status_json()
    assert status["dead_letters"] is None and status["status"] == "not_connected"
    assert "The dead-letter queue could not be read" in flows.call("admin", "GET", "/")["body"]
