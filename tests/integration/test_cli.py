"""The app-side publisher and the CLI, against moto's SQS."""

from __future__ import annotations

import json

import pytest

from keaplink.client import cli
from keaplink.client.publish import publish_button_pressed, publish_signup
from keaplink.errors import InvalidMessage
from tests.support.handlers import load_handler
from tests.support.sqs_poller import dlq_messages, drain, poll_once, send


@pytest.fixture
def queues(aws, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KEAPLINK_QUEUE_URL", aws.queue_url)
    monkeypatch.setenv("KEAPLINK_DLQ_URL", aws.dlq_url)
    monkeypatch.chdir("/tmp")  # no .keaplink/local.json here
    return aws


def received(aws) -> list[dict]:  # type: ignore[no-untyped-def]
    sqs = aws.client("sqs")
    msgs = sqs.receive_message(QueueUrl=aws.queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in msgs]


def test_publish_helpers_send_valid_messages(queues) -> None:
    publish_signup("u1", "ada@example.com", given_name="Ada")
    publish_button_pressed("u1")
    assert received(queues) == [
        {"type": "user.signed_up", "user_id": "u1", "email": "ada@example.com", "given_name": "Ada"},
        {"type": "button.pressed", "user_id": "u1"},
    ]


def test_publisher_refuses_what_the_consumer_would_dead_letter(queues) -> None:
    with pytest.raises(InvalidMessage, match="email"):
        publish_signup("u1", "not-an-email")
    assert received(queues) == []


def test_cli_send(queues, capsys) -> None:
    assert cli.main(["send", "signup", "--user-id", "u1", "--email", "ada@example.com"]) == 0
    assert cli.main(["send", "tag", "--user-id", "u1", "--tag", "vip"]) == 0
    assert "sent user.signed_up for user u1" in capsys.readouterr().out
    assert [m["type"] for m in received(queues)] == ["user.signed_up", "contact.tag"]


def test_cli_refuses_invalid(queues, capsys) -> None:
    assert cli.main(["send", "signup", "--user-id", "u1", "--email", "nope"]) == 2
    assert "invalid" in capsys.readouterr().err and received(queues) == []


def test_cli_dlq_list_then_redrive_chosen(queues, sandbox, capsys) -> None:
    from tests.support import flows

    flows.connect()
    handler = load_handler("actions").lambda_handler
    send(queues, "{broken", "[1]")
    poll_once(queues, handler)
    capsys.readouterr()
    assert cli.main(["dlq", "list"]) == 0
    out = capsys.readouterr().out
    assert "not valid JSON" in out and "{broken" in out and "not a JSON object" in out
    broken_id = next(line.split()[0] for line in out.splitlines() if "not valid JSON" in line)
    assert cli.main(["dlq", "redrive", broken_id]) == 0  # listing did not hide the messages
    assert "1 message(s) sent back" in capsys.readouterr().out
    sqs = queues.client("sqs")
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=queues.queue_url).get("Messages", [])] == ["{broken"]
    assert [m["Body"] for m in dlq_messages(queues)] == ["[1]"]  # the other one stays


def test_cli_redrive_unknown_id_fails(queues, capsys) -> None:
    assert cli.main(["dlq", "redrive", "no-such-id"]) == 1
    assert "not found in the DLQ: no-such-id" in capsys.readouterr().err


def test_redriven_message_is_processed_after_keap_recovers(queues, sandbox, capsys) -> None:
    from tests.support import flows

    flows.connect()
    sandbox.fault(path_prefix="/crm/rest", status=400, count=1)  # Keap rejects it once: dead-lettered
    send(queues, json.dumps({"type": "user.signed_up", "user_id": "u1", "email": "ada@example.com"}))
    handler = load_handler("actions").lambda_handler
    poll_once(queues, handler)
    assert cli.main(["dlq", "list"]) == 0
    assert "Keap rejected the request" in capsys.readouterr().out
    assert sandbox.control("GET", "state")["contacts"] == []
    assert cli.main(["dlq", "redrive", "--all"]) == 0
    drain(queues, handler)
    assert len(sandbox.control("GET", "state")["contacts"]) == 1
    assert dlq_messages(queues) == []
