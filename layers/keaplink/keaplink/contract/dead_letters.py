"""Messages that can never succeed go straight to the DLQ with their reason; operators list and redrive
them from there (``keaplink dlq``), and the status page shows how many there are and the newest reasons.

Reading a queue hides what was read: every reader here either gives the messages back at once
(:meth:`DeadLetterQueue.release`) or finishes with each one (send, then delete) while it is still hidden
from others, extending the hiding when its own work runs long. Every read long-polls: a short poll asks a
subset of SQS's servers, so an empty answer to it does not mean an empty queue (SQS developer guide,
"Amazon SQS short and long polling").
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from keaplink.contract.sizes import fit

REASON_ATTRIBUTE = "keaplink-reason"
SOURCE_ATTRIBUTE = "keaplink-source-message-id"
NO_REASON = "retries exhausted (no reason recorded)"
POLL_S = 1  # WaitTimeSeconds of every read: long polling, which asks every server
REQUEUES_ATTRIBUTE = "keaplink-requeues"  # how often actions.queue re-sent a message (a redrive starts afresh)


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


def body_hash(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def _carried(msg: dict[str, Any]) -> dict[str, Any]:
    """A dead letter's message attributes as they go back to the main queue: all but the reason of its last
    failure (which would mislead if it failed again without one) and its re-send count (a redrive is a new
    start)."""
    out: dict[str, Any] = {}
    for name, value in msg.get("MessageAttributes", {}).items():
        if name in (REASON_ATTRIBUTE, REQUEUES_ATTRIBUTE):
            continue
        kept = {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
        if "DataType" in kept and ("StringValue" in kept or "BinaryValue" in kept):
            out[name] = kept
    return out


@dataclass(frozen=True)
class RedriveResult:
    redriven: list[str]  # message ids sent back to the main queue
    missing: list[str]  # asked for, not found


@dataclass(frozen=True)
class RedriveAllResult:
    redriven: list[str]  # message ids (of the snapshot) sent back to the main queue
    failed_again: list[DeadLetter]  # new dead letters with the body of one sent back during the run


class DeadLetterQueue:
    def __init__(self, sqs: Callable[[], Any], url: str) -> None:
        self._sqs = sqs
        self.url = url

    def send(self, body: str, reason: str, message_id: str) -> None:
        """Dead-letter ``body`` unchanged, with its reason cut to what fits beside it in SQS's limit."""
        attributes = fit(body, required={
            SOURCE_ATTRIBUTE: {"DataType": "String", "StringValue": message_id or "unknown"},
            REASON_ATTRIBUTE: {"DataType": "String", "StringValue": reason[:1000] or "unknown"},
        }, optional={}, trim=REASON_ATTRIBUTE)
        self._sqs().send_message(QueueUrl=self.url, MessageBody=body,
                                 **({"MessageAttributes": attributes} if attributes else {}))

    def _receive(self, count: int, hidden_s: int, wait_s: int = POLL_S) -> list[dict[str, Any]]:
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
        """Receive up to ``max_messages`` distinct messages, hidden from others for ``hold_s`` seconds; ends
        at ``max_messages`` or when a long poll brings nothing new.

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

    def counts(self) -> tuple[int, int]:
        """Messages in the DLQ, visible and in flight (SQS's approximate figures, read from all servers)."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attrs = self._sqs().get_queue_attributes(QueueUrl=self.url, AttributeNames=names)["Attributes"]
        return int(attrs.get(names[0], 0)), int(attrs.get(names[1], 0))

    def count(self) -> int:
        """Messages in the DLQ, visible or not."""
        return sum(self.counts())

    def glance(self, newest: int = 5, sample: int = 20) -> dict[str, Any]:
        """How many dead letters there are and the newest reasons among up to ``sample`` of them (SQS gives no
        order, so "newest" is of that sample), for the status page. The count is the queue's; the sample is
        peeked (only when the count says there is something to see) and released at once."""
        visible, in_flight = self.counts()
        letters = self.peek(min(sample, visible), hold_s=10) if visible else []
        self.release(letters)
        ordered = sorted(letters, key=lambda x: x.sent_at or 0.0, reverse=True)[:newest]
        return {
            "count": max(visible + in_flight, len(letters)),
            "newest": [{"message_id": x.message_id, "reason": x.reason, "sent_at": x.sent_at} for x in ordered],
        }

    def _move(self, msg: dict[str, Any], queue_url: str) -> None:
        """Send back to the main queue with its attributes, then delete from the DLQ: in that order, so nothing
        is lost."""
        attributes = fit(msg["Body"], required={}, optional=_carried(msg))
        self._sqs().send_message(QueueUrl=queue_url, MessageBody=msg["Body"],
                                 **({"MessageAttributes": attributes} if attributes else {}))
        self._sqs().delete_message(QueueUrl=self.url, ReceiptHandle=msg["ReceiptHandle"])

    def redrive_all(
        self,
        queue_url: str,
        on_progress: Callable[[int], None] = lambda moved: None,
        hidden_s: int = 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> RedriveAllResult:
        """Send back every message the DLQ holds when the run starts, however many, once each; then report
        the messages that came back failed again meanwhile, without sending them round again.

        1. The snapshot: every message is received (long polling, until a poll brings nothing new) and kept
           hidden, its newest receipt handle noted; a message SQS hands out twice counts once.
        2. Each is sent, then deleted while its handle is still valid. Whenever half of ``hidden_s`` has
           passed, whatever the run still holds is hidden again, so no message becomes visible — and is
           received by someone else, and sent twice — while the run holds it. The run receives nothing more,
           so it ends, whatever comes back.
        3. The DLQ is peeked and released: a dead letter (not of the snapshot) with the body of a message sent
           back in step 2 came back failed again, and is reported.

        What no client can rule out: a crash between a send and its delete sends that message once more.
        """
        held: dict[str, dict[str, Any]] = {}  # message id -> the message, with its newest receipt handle
        hidden_at = clock()

        def still_held(start: int = 0) -> list[str]:
            return [held[x]["ReceiptHandle"] for x in list(held)[start:]]

        def keep_hidden(start: int = 0) -> None:
            nonlocal hidden_at
            if clock() - hidden_at > hidden_s / 2:
                self._set_visibility(still_held(start), hidden_s)
                hidden_at = clock()

        try:
            while True:
                batch = self._receive(10, hidden_s)
                fresh = [m for m in batch if m["MessageId"] not in held]
                held.update({m["MessageId"]: m for m in batch})
                if not fresh:
                    break
                keep_hidden()
        except Exception:
            self._set_visibility(still_held(), 0)
            raise
        snapshot = list(held)
        sent_bodies: set[str] = set()
        moved: list[str] = []
        for i, message_id in enumerate(snapshot):
            try:
                keep_hidden(i)
                self._move(held[message_id], queue_url)
            except Exception:
                self._set_visibility(still_held(i), 0)  # not ours any more
                raise
            sent_bodies.add(body_hash(held[message_id]["Body"]))
            moved.append(message_id)
            if len(moved) % 10 == 0 or len(moved) == len(snapshot):
                on_progress(len(moved))
        came_back = self.peek(10_000, hold_s=30) if moved else []
        self.release(came_back)
        failed_again = [x for x in came_back if x.message_id not in held and body_hash(x.body) in sent_bodies]
        return RedriveAllResult(redriven=moved, failed_again=failed_again)

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
