"""Messages that can never succeed go straight to the DLQ with their reason; operators list and redrive
them from there."""

from __future__ import annotations

from collections.abc import Iterator
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
    receipt_handle: str
    receive_count: int


def peek(dlq_url: str, max_messages: int = 100, visibility_s: int = 30) -> Iterator[DeadLetter]:
    """Receive (not delete) up to ``max_messages``; they become visible again after ``visibility_s``."""
    sqs = aws.client("sqs")
    seen = 0
    while seen < max_messages:
        answer = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=min(10, max_messages - seen),
            MessageAttributeNames=["All"],
            AttributeNames=["ApproximateReceiveCount"],
            VisibilityTimeout=visibility_s,
            WaitTimeSeconds=0,
        )
        batch = answer.get("Messages", [])
        if not batch:
            return
        for msg in batch:
            seen += 1
            attrs = msg.get("MessageAttributes", {})
            reason = attrs.get(REASON_ATTRIBUTE, {}).get("StringValue", "retries exhausted (no reason recorded)")
            yield DeadLetter(
                message_id=msg["MessageId"],
                body=msg["Body"],
                reason=reason,
                receipt_handle=msg["ReceiptHandle"],
                receive_count=int(msg.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
            )


def redrive(dlq_url: str, queue_url: str, letter: DeadLetter) -> None:
    """Send the message back to the main queue, then delete it from the DLQ (in that order: no loss)."""
    sqs = aws.client("sqs")
    sqs.send_message(QueueUrl=queue_url, MessageBody=letter.body)
    sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=letter.receipt_handle)
