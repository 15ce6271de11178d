"""The publisher and the CLI on every supported Python: messages validated by the shared contract, sent to SQS,
the DLQ listed and redriven, the operator's pause written, the status read."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from keaplink.client import cli
from keaplink.client.publish import publish, publish_fields, publish_goal, publish_signup
from keaplink.contract.dead_letters import DeadLetterQueue
from keaplink.contract.messages import (
    ButtonPressed,
    ContactFields,
    ContactGoal,
    ContactNote,
    ContactTag,
    ContactUntag,
    SignedUp,
    as_dict,
    parse,
    to_json,
    validate,
)
from keaplink.errors import ConfigError, InvalidMessage

EXAMPLES = [
    SignedUp("u1", "ada@example.com", "Ada", "Lovelace", "newsletter"),
    ButtonPressed("u1"),
    ContactTag("u1", "vip", "ada@example.com"),
    ContactUntag("u1", "trial"),
    ContactGoal("u1", "myapp", "trial_started", "goal-1"),
    ContactNote("u1", "Upgraded", "Moved to Pro — ✓", "note-1"),
    ContactFields("u1", {"Plan": "Pro", "Seats": 5, "Old": None}),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: m.type)
def test_every_message_type_round_trips_through_the_contract(message: Any) -> None:
    assert validate(as_dict(message)) == message
    assert parse(to_json(message)) == message
    assert parse(to_json(message).encode()) == message


def test_the_contract_refuses_with_a_reason() -> None:
    with pytest.raises(InvalidMessage, match="unknown message type"):
        validate({"type": "user.deleted", "user_id": "u1"})
    with pytest.raises(InvalidMessage, match="email"):
        validate({"type": "user.signed_up", "user_id": "u1", "email": "nope"})
    with pytest.raises(InvalidMessage, match="nested deeper"):
        parse("[" * 100 + "]" * 100)


def test_published_messages_are_what_the_consumer_parses(queues: Any) -> None:
    publish_signup("u1", "ada@example.com", given_name="Ada")
    publish_goal("u1", "myapp", "trial_started", event_id="goal-1")
    publish_fields("u1", {"Seats": 5})
    bodies = [parse(m["Body"]) for m in queues.received()]
    assert bodies == [SignedUp("u1", "ada@example.com", "Ada"), ContactGoal("u1", "myapp", "trial_started", "goal-1"),
                      ContactFields("u1", {"Seats": 5})]


def test_the_publisher_refuses_what_the_consumer_would_dead_letter(queues: Any) -> None:
    with pytest.raises(InvalidMessage, match="email"):
        publish_signup("u1", "not-an-email")
    assert queues.received() == []


def test_no_queue_url_is_a_config_error(queues: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEAPLINK_QUEUE_URL")
    with pytest.raises(ConfigError, match="KEAPLINK_QUEUE_URL"):
        publish(ButtonPressed("u1"))


SENDS = {
    "signup": ["--email", "ada@example.com", "--consent", "newsletter"],
    "press": [],
    "tag": ["--tag", "vip"],
    "untag": ["--tag", "vip"],
    "goal": ["--integration", "myapp", "--call-name", "trial_started"],
    "fields": ["--field", "Plan=Pro", "--field", "Seats=5"],
    "note": ["--title", "Upgraded", "--body", "Moved to Pro"],
}


def test_cli_sends_each_kind(queues: Any, capsys: pytest.CaptureFixture[str]) -> None:
    for kind, flags in SENDS.items():
        assert cli.main(["send", kind, "--user-id", "u1", *flags]) == 0
    assert capsys.readouterr().out.count("sent ") == len(SENDS)
    sent = [parse(m["Body"]) for _ in range(3) for m in queues.received()]
    assert sorted(m.type for m in sent) == sorted(["user.signed_up", "button.pressed", "contact.tag",
                                                   "contact.untag", "contact.goal", "contact.fields", "contact.note"])
    assert ContactFields("u1", {"Plan": "Pro", "Seats": 5}) in sent


def test_cli_refuses_an_invalid_message(queues: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["send", "signup", "--user-id", "u1", "--email", "nope"]) == 2
    assert "invalid" in capsys.readouterr().err and queues.received() == []


def test_cli_lists_and_redrives_the_dlq(queues: Any, capsys: pytest.CaptureFixture[str]) -> None:
    dlq = DeadLetterQueue(lambda: queues.client("sqs"), queues.dlq_url)
    body = to_json(ButtonPressed("u1"))
    dlq.send(body, "Keap said no \x1b[2J", "m-1")
    assert cli.main(["dlq", "list"]) == 0
    listed = capsys.readouterr().out
    assert "reason: Keap said no \\x1b[2J" in listed and "\x1b" not in listed  # shown escaped
    assert cli.main(["dlq", "redrive", "--all"]) == 0
    assert "1 message(s) sent back" in capsys.readouterr().out
    [back] = queues.received()
    assert back["Body"] == body and "keaplink-reason" not in back.get("MessageAttributes", {})
    assert queues.received(queues.dlq_url) == []


def test_cli_pause_and_resume_write_the_hold(queues: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ddb = queues.client("dynamodb")

    def hold() -> dict[str, Any]:
        return dict(ddb.get_item(TableName=queues.table, Key={"pk": {"S": "HOLD#default"}}).get("Item", {}))

    assert cli.main(["resume"]) == 1  # nothing to resume
    assert cli.main(["pause", "--reason", "migrating the CRM"]) == 0
    assert hold()["reason"] == {"S": "paused_by_operator"} and hold()["detail"] == {"S": "migrating the CRM"}
    assert cli.main(["resume"]) == 0
    assert "lifting_at" in hold()
    assert cli.main(["resume"]) == 1  # already being lifted
    assert "resuming" in capsys.readouterr().out


@pytest.fixture
def admin() -> Iterator[str]:
    """A stand-in for the admin API's status.json behind Basic auth (what ``keaplink status`` reads)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.path == "/status.json" and self.headers.get("Authorization") == "Basic YWRtaW46czNjcmV0"
            body = json.dumps({"status": "connected"} if ok else {"error": "no"}).encode()
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_cli_status_reads_the_admin_api(queues: Any, admin: str, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KEAPLINK_ADMIN_PASSWORD", "s3cret")
    assert cli.main(["status", "--admin-url", admin]) == 0
    assert json.loads(capsys.readouterr().out) == {"status": "connected"}
    monkeypatch.setenv("KEAPLINK_ADMIN_PASSWORD", "wrong")
    assert cli.main(["status", "--admin-url", admin]) == 1
