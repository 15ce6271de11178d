"""Messages that can never succeed go straight to the DLQ with their reason; operators list and redrive
them from there (``keaplink dlq``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

REASON_ATTRIBUTE = "keaplink-reason"
SOURCE_ATTRIBUTE = "keaplink-source-message-id"


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    body: str
    reason: str
    source_message_id: str
    receipt_handle: str
    receive_count: int


class DeadLetterQueue:
    def __init__(self, sqs: Callable[[], Any], url: str) -> None:
        self._sqs = sqs
        self.url = url

    def send(self, body: str, reason: str, message_id: str) -> None:
        self._sqs().send_message(
            QueueUrl=self.url,
            MessageBody=body,
            MessageAttributes={
                REASON_ATTRIBUTE: {"DataType": "String", "StringValue": reason[:1000] or "unknown"},
                SOURCE_ATTRIBUTE: {"DataType": "String", "StringValue": message_id or "unknown"},
            },
        )

    def peek(self, max_messages: int = 100, hold_s: int = 30) -> list[DeadLetter]:
        """Receive up to ``max_messages`` distinct messages, hidden from others for ``hold_s`` seconds.

        Callers act on some and give the rest back with :meth:`release`, so listing never hides messages.
        """
        sqs = self._sqs()
        letters: dict[str, DeadLetter] = {}
        while len(letters) < max_messages:
            answer = sqs.receive_message(
                QueueUrl=self.url,
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

    def release(self, letters: Iterable[DeadLetter]) -> None:
        """Make received messages visible again at once."""
        sqs = self._sqs()
        for letter in letters:
            sqs.change_message_visibility(QueueUrl=self.url, ReceiptHandle=letter.receipt_handle, VisibilityTimeout=0)

    def redrive(self, letter: DeadLetter, queue_url: str) -> None:
        """Send the message back to the main queue, then delete it from the DLQ (in that order: no loss)."""
        sqs = self._sqs()
        sqs.send_message(QueueUrl=queue_url, MessageBody=letter.body)
        sqs.delete_message(QueueUrl=self.url, ReceiptHandle=letter.receipt_handle)
