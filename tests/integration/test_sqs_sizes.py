"""A near-maximum body dead-lettered over HTTP (moto's SQS): the body arrives unchanged and the message, its
attributes counted, fits SQS's 262,144 bytes.

moto checks only the body's length against the queue's MaximumMessageSize (1 MiB by default there), never
the attributes, so it accepts messages AWS refuses (the first test shows it). The tests therefore model
AWS's rule on what moto stored, with the arithmetic AWS documents (SQS developer guide, "Amazon SQS message
attributes", https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-message-metadata.html:
name, type and value of every attribute count toward the 256 KiB, 262,144 bytes).
"""

from __future__ import annotations

import json

from keaplink.contract.dead_letters import REASON_ATTRIBUTE, SOURCE_ATTRIBUTE, DeadLetterQueue
from keaplink_dev.local import flows
from keaplink_dev.local.handlers import load_handler
from keaplink_dev.local.sqs_poller import dlq_messages, poll_once, send
from tests.unit.test_sqs_sizes import LIMIT, aws_size


def stored_size(msg: dict) -> int:  # type: ignore[type-arg]
    attrs = {k: {f: v for f, v in a.items() if f in ("DataType", "StringValue", "BinaryValue")}
             for k, a in msg.get("MessageAttributes", {}).items()}
    return aws_size(msg["Body"], attrs)


def test_moto_does_not_count_attributes_so_the_tests_must(aws) -> None:
    sqs = aws.client("sqs")
    sqs.send_message(QueueUrl=aws.dlq_url, MessageBody="x" * LIMIT, MessageAttributes={
        "extra": {"DataType": "String", "StringValue": "y" * 1000}})  # AWS would refuse this
    [msg] = dlq_messages(aws)
    assert stored_size(msg) > LIMIT


def test_a_near_maximum_body_with_a_long_reason_is_dead_lettered_whole(aws) -> None:
    body = json.dumps({"type": "user.signed_up", "note": "é" * ((LIMIT - 200) // 2)}, ensure_ascii=False)
    assert LIMIT - 250 < len(body.encode()) <= LIMIT - 150
    reason = "Keap rejected the request: HTTP 400 " + "field 'email' is not valid; " * 40  # ~1.1 KB
    DeadLetterQueue(lambda: aws.client("sqs"), aws.dlq_url).send(body, reason, "orig-1")
    [msg] = dlq_messages(aws)
    assert msg["Body"] == body and stored_size(msg) <= LIMIT
    kept = msg["MessageAttributes"][REASON_ATTRIBUTE]["StringValue"]
    assert kept.endswith("…") and reason.startswith(kept[:-1])
    assert msg["MessageAttributes"][SOURCE_ATTRIBUTE]["StringValue"] == "orig-1"


def test_the_actions_function_dead_letters_an_oversized_body_unchanged_and_within_the_limit(aws, sandbox) -> None:
    flows.connect()
    body = "z" * (LIMIT - 60)  # far over the contract's 16 KiB: invalid, dead-lettered with the reason
    send(aws, body)
    poll_once(aws, load_handler("actions").lambda_handler)
    [msg] = dlq_messages(aws)
    assert msg["Body"] == body and stored_size(msg) <= LIMIT
    reason = msg["MessageAttributes"].get(REASON_ATTRIBUTE, {}).get("StringValue", "")
    assert reason.startswith("the body is")  # cut to what fits, not dropped: 60 bytes leave room for some
