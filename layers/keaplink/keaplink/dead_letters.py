"""Messages that can never succeed go straight to the DLQ with their reason; operators list and redrive
them from there."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from keaplink import aws

REASON_ATTRIBUTE = "keaplink-reason"
SOURCE_ATTRIBUTE = "keaplink-source-message-id"


def send_to_dlq(dlq_url: str, body: str, reason: str, message_id: str) -> None:
    aws.client("sqs").send_message(
        QueueUrl=dlq_url,
        MessageBody=body,
        MessageAttributes={
            REASON_ATTRIBUTE: {"DataType": "String", "StringValue": reason[:1000] or "unknown"},
            SOURCE_ATTRIBUTE: {"DataType": "String", "StringValue": message_id or "unknown"},
        },
    )


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    body: str
    reason: str
    source_message_id: str
    receipt_handle: str
    receive_count: int


def peek(dlq_url: str, max_messages: int = 100, hold_s: int = 30) -> list[DeadLetter]:
    """Receive up to ``max_messages`` distinct messages, hidden from others for ``hold_s`` seconds.

    Callers act on some and give the rest back with :func:`release`, so listing never hides messages.
    """
    sqs = aws.client("sqs")
    letters: dict[str, DeadLetter] = {}
    while len(letters) < max_messages:
        answer = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=min(10, max_messages - len(letters)),
            MessageAttributeNames=["All"],
            AttributeNames=["ApproximateReceiveCount"],
            VisibilityTimeout=hold_s,
            WaitTimeSeconds=0,
        )
        batch = [m for m in answer.get("Messages", []) if m["MessageId"] not in letters]
        if not batch:
            break
        for msg in batch:
            attrs = msg.get("MessageAttributes", {})
            letters[msg["MessageId"]] = DeadLetter(
                message_id=msg["MessageId"],
                body=msg["Body"],
                reason=attrs.get(REASON_ATTRIBUTE, {}).get("StringValue", "retries exhausted (no reason recorded)"),
                source_message_id=attrs.get(SOURCE_ATTRIBUTE, {}).get("StringValue", ""),
                receipt_handle=msg["ReceiptHandle"],
                receive_count=int(msg.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
            )
    return list(letters.values())


def release(dlq_url: str, letters: Iterable[DeadLetter]) -> None:
    """Make received messages visible again at once."""
    sqs = aws.client("sqs")
    for letter in letters:
        sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=letter.receipt_handle, VisibilityTimeout=0)


def redrive(dlq_url: str, queue_url: str, letter: DeadLetter) -> None:
    """Send the message back to the main queue, then delete it from the DLQ (in that order: no loss)."""
    sqs = aws.client("sqs")
    sqs.send_message(QueueUrl=queue_url, MessageBody=letter.body)
    sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=letter.receipt_handle)
