"""The actions queue itself, as the actions function needs it beyond receiving: its redrive policy (after how
many receives SQS moves a record to the DLQ, with no reason), re-sending a record as a fresh message (receive
count 0) instead of letting SQS move it, and how many messages wait."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from keaplink.contract.dead_letters import REQUEUES_ATTRIBUTE as REQUEUES
from keaplink.contract.sizes import fit
from keaplink.observability import logger

REQUEUED_FROM = "keaplink-requeued-from"
FIRST_SENT = "keaplink-first-sent"  # the original message's SentTimestamp (ms), carried across re-sends
MAX_DELAY_S = 900  # SQS's longest DelaySeconds


class ActionsQueue:
    def __init__(self, sqs: Callable[[], Any], url: Callable[[], str]) -> None:
        self._sqs = sqs
        self._url = url  # read on first use: most batches never need it
        self._lock = threading.Lock()
        self._max_receive_count: int | None = None
        self._visibility_s: int | None = None
        self._looked_up = False

    def _look_up(self) -> None:
        """The queue's redrive policy and visibility timeout, once per container; None where unknown."""
        with self._lock:
            if self._looked_up:
                return
            self._looked_up = True
            try:
                attrs = self._sqs().get_queue_attributes(
                    QueueUrl=self._url(), AttributeNames=["RedrivePolicy", "VisibilityTimeout"]).get("Attributes", {})
                policy = json.loads(attrs.get("RedrivePolicy") or "{}")
                self._max_receive_count = int(policy["maxReceiveCount"]) if "maxReceiveCount" in policy else None
                self._visibility_s = int(attrs["VisibilityTimeout"]) if "VisibilityTimeout" in attrs else None
            except Exception as exc:  # noqa: BLE001 - unknown means: no last-chance handling
                logger.warning("could not read the queue's redrive policy",
                               extra={"error_type": type(exc).__name__})

    def max_receive_count(self) -> int | None:
        """The queue's ``maxReceiveCount``; None when unknown."""
        self._look_up()
        return self._max_receive_count

    def requeue(self, body: str, message_id: str, attributes: Mapping[str, Any], delay_s: int = 0,
                first_sent_ms: int | None = None) -> int:
        """Send ``body`` again as a new message (receive count 0), carrying the record's string attributes, how
        often it was re-sent and when it was first sent. Returns that count."""
        count = _int(_attr(attributes, REQUEUES)) + 1
        carried = {k: {"DataType": v.get("dataType", "String"), "StringValue": str(v["stringValue"])}
                   for k, v in attributes.items()
                   if isinstance(v, Mapping) and v.get("stringValue") is not None
                   and k not in (REQUEUES, REQUEUED_FROM, FIRST_SENT)}
        origin = _attr(attributes, REQUEUED_FROM) or message_id
        # Ours are kept; the carried ones (SQS allows 10 attributes in all) are dropped, last first, where the body
        # is so large that they would not fit beside it.
        ours = {
            REQUEUED_FROM: {"DataType": "String", "StringValue": origin},
            REQUEUES: {"DataType": "Number", "StringValue": str(count)},
            **({FIRST_SENT: {"DataType": "Number", "StringValue": str(first_sent_ms)}} if first_sent_ms else {}),
        }
        fitting = fit(body, required=ours, optional=dict(list(carried.items())[:10 - len(ours)]))
        self._sqs().send_message(
            QueueUrl=self._url(),
            MessageBody=body,
            DelaySeconds=max(0, min(MAX_DELAY_S, delay_s)),
            **({"MessageAttributes": fitting} if fitting else {}),
        )
        return count

    def retry_in(self, receipt_handle: str, delay_s: int) -> None:
        """Make a received record visible again after ``delay_s`` — sooner than the queue's visibility timeout,
        never later (nothing is done when that is shorter anyway, or unknown)."""
        self._look_up()
        if self._visibility_s is None or delay_s >= self._visibility_s:
            return
        self._sqs().change_message_visibility(QueueUrl=self._url(), ReceiptHandle=receipt_handle,
                                              VisibilityTimeout=max(0, delay_s))

    def waiting(self) -> int:
        """Messages in the queue: visible, in flight and delayed (approximate, as SQS counts them)."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                 "ApproximateNumberOfMessagesDelayed"]
        attrs = self._sqs().get_queue_attributes(QueueUrl=self._url(), AttributeNames=names).get("Attributes", {})
        return sum(int(attrs.get(n, 0)) for n in names)


def _attr(attributes: Mapping[str, Any], name: str) -> str | None:
    value = attributes.get(name)
    return str(value.get("stringValue")) if isinstance(value, Mapping) and value.get("stringValue") else None


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def requeues(attributes: Mapping[str, Any]) -> int:
    """How often a record was re-sent already (its ``keaplink-requeues`` attribute)."""
    return _int(_attr(attributes, REQUEUES))


def first_sent_ms(record: Mapping[str, Any]) -> int | None:
    """When a record's message was first sent (epoch ms): its ``keaplink-first-sent`` attribute if it was re-sent,
    else SQS's ``SentTimestamp``. None when neither is known."""
    carried = _int(_attr(record.get("messageAttributes") or {}, FIRST_SENT))
    if carried:
        return carried
    sent = _int(str((record.get("attributes") or {}).get("SentTimestamp") or 0))
    return sent or None


def oldest_age_s(records: Sequence[Mapping[str, Any]], now: float) -> float | None:
    """keaplink's own "oldest waiting message" figure for a batch: unlike SQS's ``ApproximateAgeOfOldestMessage``
    it counts records received three times or more, and re-sent ones from their first sending."""
    sent = [s for s in (first_sent_ms(r) for r in records) if s]
    return max(0.0, now - min(sent) / 1000.0) if sent else None
