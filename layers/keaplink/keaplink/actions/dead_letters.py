"""Messages that can never succeed go straight to the DLQ with their reason; operators list and redrive
them from there (``keaplink dlq``), and the status page shows how many there are and the newest reasons.

Reading a queue hides what was read: every reader here either gives the messages back at once
(:meth:`DeadLetterQueue.release`) or finishes with each one (send, then delete) while it is still hidden
from others, extending the hiding when its own work runs long.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

REASON_ATTRIBUTE = "keaplink-reason"
SOURCE_ATTRIBUTE = "keaplink-source-message-id"
NO_REASON = "retries exhausted (no reason recorded)"


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    body: str
    reason: str
    source_message_id: str
    receipt_handle: str
    receive_count: int
    sent_at: float | None = None  # epoch seconds, when it reached the DLQ


def _letter(msg: dict[str, Any]) -> DeadLetter:
    attrs = msg.get("MessageAttributes", {})
    system = msg.get("Attributes", {})
    sent_ms = system.get("SentTimestamp")
    return DeadLetter(
        message_id=msg["MessageId"],
        body=msg["Body"],
        reason=attrs.get(REASON_ATTRIBUTE, {}).get("StringValue", NO_REASON),
        source_message_id=attrs.get(SOURCE_ATTRIBUTE, {}).get("StringValue", ""),
        receipt_handle=msg["ReceiptHandle"],
        receive_count=int(system.get("ApproximateReceiveCount", "1")),
        sent_at=int(sent_ms) / 1000 if sent_ms else None,
    )


@dataclass(frozen=True)
class RedriveResult:
    redriven: list[str]  # message ids sent back to the main queue
    missing: list[str]  # asked for, not found


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

    def _receive(self, count: int, hidden_s: int, wait_s: int = 0) -> list[dict[str, Any]]:
        answer = self._sqs().receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=max(1, min(10, count)),
            MessageAttributeNames=["All"],
            AttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            VisibilityTimeout=hidden_s,
            WaitTimeSeconds=wait_s,
        )
        return list(answer.get("Messages", []))

    def peek(self, max_messages: int = 100, hold_s: int = 30) -> list[DeadLetter]:
        """Receive up to ``max_messages`` distinct messages, hidden from others for ``hold_s`` seconds.

        Callers act on some and give the rest back with :meth:`release`, so listing never hides messages.
        """
        letters: dict[str, DeadLetter] = {}
        while len(letters) < max_messages:
            batch = [m for m in self._receive(max_messages - len(letters), hold_s) if m["MessageId"] not in letters]
            if not batch:
                break
            for msg in batch:
                letters[msg["MessageId"]] = _letter(msg)
        return list(letters.values())

    def _set_visibility(self, handles: Sequence[str], seconds: int) -> None:
        sqs = self._sqs()
        for start in range(0, len(handles), 10):
            entries = [{"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": seconds}
                       for i, h in enumerate(handles[start:start + 10])]
            sqs.change_message_visibility_batch(QueueUrl=self.url, Entries=entries)

    def release(self, letters: Iterable[DeadLetter]) -> None:
        """Make received messages visible again at once."""
        self._set_visibility([letter.receipt_handle for letter in letters], 0)

    def count(self) -> int:
        """Messages in the DLQ, visible or not (SQS's approximate figures)."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attrs = self._sqs().get_queue_attributes(QueueUrl=self.url, AttributeNames=names)["Attributes"]
        return sum(int(attrs.get(name, 0)) for name in names)

    def glance(self, newest: int = 5, sample: int = 20) -> dict[str, Any]:
        """How many dead letters there are and the newest reasons among up to ``sample`` of them (SQS gives no
        order, so "newest" is of that sample), for the status page. Peeked and released at once."""
        letters = self.peek(sample, hold_s=10)
        self.release(letters)
        ordered = sorted(letters, key=lambda x: x.sent_at or 0.0, reverse=True)[:newest]
        return {
            "count": max(self.count(), len(letters)),
            "newest": [{"message_id": x.message_id, "reason": x.reason, "sent_at": x.sent_at} for x in ordered],
        }

    def _move(self, msg: dict[str, Any], queue_url: str) -> None:
        """Send back to the main queue, then delete from the DLQ: in that order, so nothing is lost."""
        self._sqs().send_message(QueueUrl=queue_url, MessageBody=msg["Body"])
        self._sqs().delete_message(QueueUrl=self.url, ReceiptHandle=msg["ReceiptHandle"])

    def redrive_all(
        self,
        queue_url: str,
        on_progress: Callable[[int], None] = lambda moved: None,
        hidden_s: int = 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> int:
        """Send every message back to the main queue, however many there are; returns how many.

        Small steps: receive up to 10 (hidden for ``hidden_s``), then for each send it and only after the send
        succeeded delete it, while its receipt handle is still valid. Should the run be slow (a slow network,
        a throttled queue), the rest of the batch is hidden again before half of ``hidden_s`` has passed, so no
        message becomes visible — and is received a second time, and sent twice — while this run still holds
        it. A message SQS hands out twice anyway (at-least-once) is deleted without being sent again. What no
        client can rule out: a crash between a send and its delete sends that message once more next time.
        """
        sent: set[str] = set()
        moved = 0
        while True:
            batch = self._receive(10, hidden_s, wait_s=1)  # long polling: an empty answer means empty
            if not batch:
                return moved
            hidden_at = clock()
            for i, msg in enumerate(batch):
                if clock() - hidden_at > hidden_s / 2:
                    self._set_visibility([m["ReceiptHandle"] for m in batch[i:]], hidden_s)
                    hidden_at = clock()
                try:
                    if msg["MessageId"] in sent:
                        self._sqs().delete_message(QueueUrl=self.url, ReceiptHandle=msg["ReceiptHandle"])
                        continue
                    self._move(msg, queue_url)
                except Exception:
                    self._set_visibility([m["ReceiptHandle"] for m in batch[i:]], 0)  # not ours any more
                    raise
                sent.add(msg["MessageId"])
                moved += 1
            on_progress(moved)

    def redrive_ids(self, ids: Iterable[str], queue_url: str, hold_s: int = 60) -> RedriveResult:
        """Send the chosen messages back, each as soon as it is found. The others stay hidden while the scan
        goes on (so it reaches new ones) and are given back at the end."""
        wanted = set(ids)
        seen: set[str] = set()
        held: list[str] = []
        redriven: list[str] = []
        try:
            while wanted - set(redriven):
                batch = [m for m in self._receive(10, hold_s) if m["MessageId"] not in seen]
                if not batch:
                    break
                seen.update(m["MessageId"] for m in batch)
                held.extend(m["ReceiptHandle"] for m in batch if m["MessageId"] not in wanted)
                for msg in (m for m in batch if m["MessageId"] in wanted):
                    held.append(msg["ReceiptHandle"])  # given back if its move fails
                    self._move(msg, queue_url)
                    held.pop()
                    redriven.append(msg["MessageId"])
        finally:
            self._set_visibility(held, 0)
        return RedriveResult(redriven=redriven, missing=sorted(wanted - set(redriven)))
