"""The app-side publisher and the CLI, against moto's SQS."""

from __future__ import annotations

import json

import pytest

from keaplink.client import cli
from keaplink.client.publish import publish_button_pressed, publish_signup
from keaplink.errors import InvalidMessage
from keaplink_dev.local.handlers import load_handler
from keaplink_dev.local.sqs_poller import dlq_messages, drain, poll_once, send


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
    from keaplink_dev.local import flows

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
    from keaplink_dev.local import flows

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


# --- the DLQ as an operator sees it: escaped output, a complete and duplicate-free redrive ----------------
def all_bodies(aws, url: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Every message body in a queue (received and kept hidden, so each is seen once)."""
    sqs, bodies, seen = aws.client("sqs"), [], set()
    while True:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=120,
                                   WaitTimeSeconds=1).get("Messages", [])
        fresh = [m for m in msgs if m["MessageId"] not in seen]
        if not fresh:
            return bodies
        seen.update(m["MessageId"] for m in fresh)
        bodies += [m["Body"] for m in fresh]


def dead_letter(aws, *bodies: str, reason: str = "test") -> None:  # type: ignore[no-untyped-def]
    from keaplink.contract.dead_letters import DeadLetterQueue

    dlq = DeadLetterQueue(lambda: aws.client("sqs"), aws.dlq_url)
    for i, body in enumerate(bodies):
        dlq.send(body, reason, f"m{i}")


# What SQS lets through (it refuses C0 controls but CR, LF and TAB): a line rewritten with CR, a fake
# line with LF, a C1 CSI (U+009B, an escape sequence in one character for terminals that honour C1) and
# a right-to-left override that shows "txt.exe" as "exe.txt".
HOSTILE = "ok\r\u009b2J\u009b31mFAKE\nkeaplink: all clear\t\u202etxt.exe"


def test_dlq_list_shows_control_characters_escaped(queues, capsys) -> None:
    dead_letter(queues, HOSTILE, reason="bad\u009b1;1Hreason\u2066")
    assert cli.main(["dlq", "list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 2  # one line per message and one for its body: the LF did not make a third
    assert "\\x0d\\x9b2J\\x9b31mFAKE\\x0akeaplink: all clear\\x09\\u202etxt.exe" in out
    assert "bad\\x9b1;1Hreason\\u2066" in out
    control = [c for c in out.replace("\n", "") if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in "\u202e\u2066"]
    assert control == []


def test_dlq_redrive_all_drains_more_than_a_hundred(queues, capsys) -> None:
    bodies = [json.dumps({"n": i}) for i in range(125)]
    sqs = queues.client("sqs")
    for start in range(0, len(bodies), 10):
        sqs.send_message_batch(QueueUrl=queues.dlq_url, Entries=[
            {"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start:start + 10])])
    assert cli.main(["dlq", "redrive", "--all"]) == 0
    out = capsys.readouterr().out
    assert "125 message(s) sent back to the main queue" in out and "… 10 sent back so far" in out
    assert sorted(all_bodies(queues, queues.queue_url)) == sorted(bodies)  # each exactly once
    assert dlq_messages(queues) == []


class SlowSqs:
    """The DLQ's SQS client on a slow day: every send takes a while, and meanwhile someone else (the status
    page, another operator's `dlq list`) receives whatever is visible in the DLQ and gives it back at once.

    It also keeps AWS's rule that moto does not: a message received again has a new receipt handle, and a
    delete with an older one "succeeds" without deleting anything (SQS DeleteMessage reference).
    """

    def __init__(self, real, dlq_url: str, delay_s: float) -> None:  # type: ignore[no-untyped-def]
        self.real, self.dlq_url, self.delay_s = real, dlq_url, delay_s
        self.latest: dict[str, str] = {}  # message id -> its newest receipt handle
        self.owner: dict[str, str] = {}  # receipt handle -> message id
        self.held: set[str] = set()  # message ids the run has received and not yet deleted
        self.others_saw_held: list[str] = []
        self.sends = 0

    def _track(self, answer):  # type: ignore[no-untyped-def]
        for m in answer.get("Messages", []):
            self.latest[m["MessageId"]] = m["ReceiptHandle"]
            self.owner[m["ReceiptHandle"]] = m["MessageId"]
        return answer

    def receive_message(self, **kwargs):  # type: ignore[no-untyped-def]
        answer = self._track(self.real.receive_message(**kwargs))
        self.held |= {m["MessageId"] for m in answer.get("Messages", [])}
        return answer

    def delete_message(self, **kwargs):  # type: ignore[no-untyped-def]
        message_id = self.owner[kwargs["ReceiptHandle"]]
        if self.latest[message_id] != kwargs["ReceiptHandle"]:
            return {}  # a stale handle: AWS answers success and keeps the message
        self.held.discard(message_id)
        return self.real.delete_message(**kwargs)

    def send_message(self, **kwargs):  # type: ignore[no-untyped-def]
        import time

        time.sleep(self.delay_s)
        other = self._track(self.real.receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=10,
                                                      VisibilityTimeout=0))
        self.others_saw_held += [m["Body"] for m in other.get("Messages", []) if m["MessageId"] in self.held]
        self.sends += 1
        return self.real.send_message(**kwargs)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.real, name)


def test_a_slow_redrive_sends_each_message_once(queues) -> None:
    from keaplink.contract.dead_letters import DeadLetterQueue

    bodies = [f"slow-{i}" for i in range(12)]
    dead_letter(queues, *bodies)
    slow = SlowSqs(queues.client("sqs"), queues.dlq_url, delay_s=0.5)
    # Hidden for 3 s, up to ten sends of 0.5 s per batch: unless the run hides the rest of its batch again in
    # time, the tail becomes visible, another reader receives it, the run's delete no longer deletes, and the
    # message comes back to be sent a second time.
    moved = DeadLetterQueue(lambda: slow, queues.dlq_url).redrive_all(queues.queue_url, hidden_s=3)
    assert len(moved.redriven) == 12 and slow.sends == 12
    assert slow.others_saw_held == []  # nothing the run held was visible to anyone else meanwhile
    assert sorted(all_bodies(queues, queues.queue_url)) == sorted(bodies)
    assert dlq_messages(queues) == []


def test_publish_helpers_for_the_further_actions(queues) -> None:
    from keaplink.client.publish import publish_fields, publish_goal, publish_note, publish_untag

    publish_signup("u1", "ada@example.com", consent="Ticked: send me news")
    publish_untag("u1", "vip")
    publish_goal("u1", "myapp", "trial_started", event_id="e1")
    publish_fields("u1", {"Plan": "Pro", "Seats": 5, "Old": None})
    publish_note("u1", "Upgraded", "Moved to Pro", event_id="n1")
    got = received(queues)
    got += received(queues)
    assert sorted(m["type"] for m in got) == ["contact.fields", "contact.goal", "contact.note", "contact.untag",
                                              "user.signed_up"]
    assert next(m for m in got if m["type"] == "contact.fields")["fields"] == {"Plan": "Pro", "Seats": 5, "Old": None}
    with pytest.raises(InvalidMessage, match="event_id"):
        publish_goal("u1", "myapp", "x", event_id="has space")


def test_cli_send_the_further_actions(queues, capsys) -> None:
    assert cli.main(["send", "untag", "--user-id", "u1", "--tag", "vip"]) == 0
    assert cli.main(["send", "goal", "--user-id", "u1", "--integration", "myapp", "--call-name", "trial",
                     "--event-id", "e1"]) == 0
    assert cli.main(["send", "fields", "--user-id", "u1", "--field", "Plan=Pro", "--field", "Seats=5"]) == 0
    assert cli.main(["send", "note", "--user-id", "u1", "--title", "Upgraded", "--body", "Moved to Pro"]) == 0
    out = capsys.readouterr().out
    assert "sent contact.goal for user u1" in out and "event id e1" in out and "event id cli-" in out
    got = {m["type"]: m for m in received(queues) + received(queues)}
    assert got["contact.fields"]["fields"] == {"Plan": "Pro", "Seats": 5}
    assert got["contact.untag"]["tag"] == "vip"
    with pytest.raises(SystemExit):
        cli.main(["send", "goal", "--user-id", "u1", "--integration", "myapp"])  # no --call-name


# --- operator tools that end and tell the truth under AWS's behaviour -------------------------------------
class ShortPollsSeeNothing:
    """SQS as AWS documents it for short polling (WaitTimeSeconds=0): only a subset of the servers is asked,
    so the answer may be empty while the queue is not. Here it always is; long polls pass through. Counts
    the polls of each kind."""

    def __init__(self, real) -> None:  # type: ignore[no-untyped-def]
        self.real, self.short, self.long = real, 0, 0

    def receive_message(self, **kwargs):  # type: ignore[no-untyped-def]
        if kwargs.get("WaitTimeSeconds", 0) < 1:
            self.short += 1
            return {}
        self.long += 1
        return self.real.receive_message(**kwargs)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.real, name)


def test_every_dlq_reader_long_polls_and_finds_what_short_polls_miss(queues, monkeypatch, capsys) -> None:
    from keaplink.contract.dead_letters import DeadLetterQueue

    dead_letter(queues, "first", "second", "third", reason="why")
    sqs = ShortPollsSeeNothing(queues.client("sqs"))
    monkeypatch.setattr(cli.Targets, "sqs", lambda self: sqs)
    glance = DeadLetterQueue(lambda: sqs, queues.dlq_url).glance()  # the status page's view
    assert glance["count"] == 3 and len(glance["newest"]) == 3
    assert cli.main(["dlq", "list"]) == 0
    out = capsys.readouterr().out
    assert "the DLQ is empty" not in out and all(b in out for b in ("first", "second", "third"))
    chosen = next(line.split()[0] for line in out.splitlines() if "reason: why" in line)
    assert cli.main(["dlq", "redrive", chosen]) == 0
    assert "1 message(s) sent back" in capsys.readouterr().out
    assert cli.main(["dlq", "redrive", "--all"]) == 0
    assert "2 message(s) sent back" in capsys.readouterr().out
    assert sqs.short == 0 and sqs.long > 0
    assert sorted(all_bodies(queues, queues.queue_url)) == ["first", "second", "third"]


class FailsAgainAtOnce:
    """The main queue's consumer on a bad day, compressed: every message sent back to the main queue fails
    again and lands in the DLQ at once, as a new message with the same body (as SQS's redrive policy or
    keaplink's own dead-lettering would put it there)."""

    def __init__(self, real, queue_url: str, dlq_url: str) -> None:  # type: ignore[no-untyped-def]
        self.real, self.queue_url, self.dlq_url = real, queue_url, dlq_url
        self.sent_to_queue: list[dict] = []

    def send_message(self, **kwargs):  # type: ignore[no-untyped-def]
        answer = self.real.send_message(**kwargs)
        if kwargs["QueueUrl"] == self.queue_url:
            self.sent_to_queue.append(kwargs)
            self.real.send_message(QueueUrl=self.dlq_url, MessageBody=kwargs["MessageBody"], MessageAttributes={
                "keaplink-reason": {"DataType": "String", "StringValue": "failed again"}})
        return answer

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.real, name)


def test_redrive_all_ends_and_reports_what_failed_again_instead_of_sending_it_round(queues, monkeypatch,
                                                                                     capsys) -> None:
    bodies = [json.dumps({"n": i}) for i in range(25)]
    dead_letter(queues, *bodies)
    sqs = FailsAgainAtOnce(queues.client("sqs"), queues.queue_url, queues.dlq_url)
    monkeypatch.setattr(cli.Targets, "sqs", lambda self: sqs)
    assert cli.main(["dlq", "redrive", "--all"]) == 1  # it ended; 1: something needs the operator
    captured = capsys.readouterr()
    assert "25 message(s) sent back to the main queue" in captured.out
    assert "25 came back failed again during the run" in captured.err
    assert captured.err.count("reason: failed again") == 25
    assert sorted(m["MessageBody"] for m in sqs.sent_to_queue) == sorted(bodies)  # each sent once, no second lap
    assert sorted(m["Body"] for m in dlq_messages(queues)) == sorted(bodies)  # the new ones wait in the DLQ


def test_redrive_keeps_each_message_s_attributes_but_not_its_old_reason_or_requeue_count(queues, capsys) -> None:
    sqs = queues.client("sqs")
    carried = {"trace-id": {"DataType": "String", "StringValue": "abc-123"},
               "priority": {"DataType": "Number", "StringValue": "2"},
               "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"}}
    for body in ("one", "two"):
        sqs.send_message(QueueUrl=queues.dlq_url, MessageBody=body, MessageAttributes={
            **carried, "keaplink-reason": {"DataType": "String", "StringValue": "Keap rejected it"},
            "keaplink-requeues": {"DataType": "Number", "StringValue": "3"},  # a redrive is a new start
            "keaplink-source-message-id": {"DataType": "String", "StringValue": f"orig-{body}"}})
    listed = DeadLetterList(queues)
    assert cli.main(["dlq", "redrive", listed.id_of("one")]) == 0
    assert cli.main(["dlq", "redrive", "--all"]) == 0
    capsys.readouterr()
    back = sqs.receive_message(QueueUrl=queues.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                               MessageAttributeNames=["All"], VisibilityTimeout=60)["Messages"]
    assert sorted(m["Body"] for m in back) == ["one", "two"]
    for m in back:
        attrs = {k: {f: v for f, v in a.items() if f in ("DataType", "StringValue", "BinaryValue")}
                 for k, a in m["MessageAttributes"].items()}
        assert attrs == {**carried, "keaplink-source-message-id": {"DataType": "String",
                                                                    "StringValue": f"orig-{m['Body']}"}}


class DeadLetterList:
    def __init__(self, aws) -> None:  # type: ignore[no-untyped-def]
        from keaplink.contract.dead_letters import DeadLetterQueue

        dlq = DeadLetterQueue(lambda: aws.client("sqs"), aws.dlq_url)
        self.letters = dlq.peek()
        dlq.release(self.letters)

    def id_of(self, body: str) -> str:
        return next(x.message_id for x in self.letters if x.body == body)
