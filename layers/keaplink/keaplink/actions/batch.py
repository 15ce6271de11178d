"""One SQS batch of the actions function: read each body once, read the token once, run records concurrently
(one user's records in arrival order), report partial failures — and hold the queue when Keap cannot serve.

What happens to a record, by type (see the table in docs/sending-events.md):

* its body can never be a message → the DLQ with the reason, at once;
* Keap refused the request for this message (400, 404, …) → the DLQ with Keap's answer;
* Keap cannot serve *any* record (:func:`~keaplink.actions.hold.policy.should_hold`: disconnected, credentials
  refused, a spent quota, an outage, persistent throttling) → the queue is held (:mod:`hold`) and the batch's
  records go back, no further Keap call;
* anything else that may work later (a 5xx after its retry, a short 429, a press before its signup, no time
  left in this invocation) → back to the queue.

A record SQS would move to the DLQ on its next receive (``maxReceiveCount``, with no reason) never gets there
silently: on its last chance a record held back, out of time or not ready yet is re-sent as a fresh message,
and any other is dead-lettered with the reason it kept failing.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keaplink.actions.hold.policy import Hold, opening_hold, should_hold, stronger
from keaplink.actions.ordering import predecessors
from keaplink.actions.queue import first_sent_ms, oldest_age_s, requeues
from keaplink.actions.service import PendingTag
from keaplink.contract.messages import Message, parse
from keaplink.errors import InvalidMessage, KeapRequestRejected, NotReady, OutcomeUnknown, OutOfTime
from keaplink.keap.client import KeapClient
from keaplink.keap.deadline import Deadline
from keaplink.observability import MetricsPort, MetricUnit, logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from keaplink.actions.hold.holding import Holding
    from keaplink.actions.queue import ActionsQueue
    from keaplink.actions.service import ActionService
    from keaplink.actions.users import UserRecord
    from keaplink.contract.dead_letters import DeadLetterQueue
    from keaplink.keap.quota import Quota
    from keaplink.keap.session import KeapSession

LAST_CHANCE_MARGIN = 1  # ApproximateReceiveCount is approximate: act one receive early
MAX_REQUEUES = 24  # a press still without its signup after this many re-sends (a day or more) is dead-lettered
NOT_READY_DELAY_S = 900  # a record not ready on its last chance comes back after 15 minutes
NOT_READY_RETRY_S = 15  # a press that overtook its signup comes back after 15 s per receive, not the 6-minute
#                         visibility timeout: its signup is usually done by then


class HeldBack(Exception):
    """Not tried: the batch had already found that Keap cannot serve."""


NOT_THE_MESSAGES_FAULT = (HeldBack, OutOfTime, NotReady)


@dataclass
class ActionsDeps:
    service: ActionService
    open_session: Callable[[Deadline], KeapSession]  # reads the token: the one token read of a batch
    dead_letters: DeadLetterQueue
    holding: Holding
    queue: ActionsQueue
    concurrency: int
    metrics: MetricsPort
    record_quota: Callable[[Quota], None] = lambda quota: None
    clock: Callable[[], float] = time.time  # epoch seconds: holds and Keap's quota windows are absolute times
    sleep: Callable[[float], None] = time.sleep  # every wait of a batch goes through its Deadline, and this


def read(record: Mapping[str, Any]) -> Message | InvalidMessage:
    """The record's message, or why it can never be processed — whatever the body is."""
    try:
        return parse(str(record.get("body", "")))
    except InvalidMessage as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - one bad body costs no other record anything
        return InvalidMessage(f"the body could not be read ({type(exc).__name__})")


def receive_count(record: Mapping[str, Any]) -> int:
    try:
        return int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))
    except (TypeError, ValueError):
        return 1


class _Findings:
    """What the records of a batch ran into (thread-safe): each failed record's error, and the hold, if any."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.errors: dict[int, BaseException] = {}
        self.hold: Hold | None = None

    def failed(self, i: int, error: BaseException, hold: Hold | None) -> None:
        with self._lock:
            self.errors[i] = error
            if hold is not None:
                self.hold = stronger(self.hold, hold)


def process_batch(event: dict[str, Any], deps: ActionsDeps, context: Any = None) -> dict[str, Any]:
    records: list[dict[str, Any]] = list(event.get("Records", []))
    oldest = oldest_age_s(records, deps.clock())
    if oldest is not None:  # first, so that it is published whatever happens to the batch
        deps.metrics.add_metric("OldestMessageAgeSeconds", MetricUnit.Seconds, oldest)
    readings = [read(r) for r in records]
    opened = _open_session(records, readings, deps, Deadline.from_context(context, sleep=deps.sleep))
    if isinstance(opened, dict):
        return opened  # held: the batch's answer
    run = _Run(records, readings, deps, KeapClient(opened))

    from aws_lambda_powertools.utilities.batch import AsyncBatchProcessor, EventType, async_process_partial_response

    processor = AsyncBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    try:
        response: dict[str, Any] = dict(async_process_partial_response(event, run.handle, processor, context))
    finally:
        run.executor.shutdown(wait=False)
    failed_ids = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
    failed = {i for i, r in enumerate(records) if r.get("messageId") in failed_ids}
    if opened.quota is not None:
        deps.record_quota(opened.quota)
    hold = run.findings.hold
    result = _finish(records, failed, run.findings.errors, hold, deps)
    logger.info("batch done", extra={"records": len(records), "returned": len(result["batchItemFailures"]),
                                     "keap_calls": opened.calls, "tag_applications": len(run.pending),
                                     "held": hold.reason.value if hold else None})
    return result


class _Run:
    """One batch in flight. Each record is *prepared* (its contact and tag resolved; a signup done) in arrival
    order per user and concurrently across users; once every record is prepared, the batch's tag applications
    go out together — one Keap call per tag and 100 contacts — and each record settles on its own contact's
    result."""

    def __init__(self, records: list[dict[str, Any]], readings: list[Message | InvalidMessage], deps: ActionsDeps,
                 keap: KeapClient) -> None:
        self.readings, self.deps, self.keap = readings, deps, keap
        self.index = {id(r): i for i, r in enumerate(records)}
        self.waits_for = predecessors([m.user_id if not isinstance(m, InvalidMessage) else None for m in readings])
        self.prepared = [asyncio.Event() for _ in records]  # a user's next record waits for this one's preparation
        self.stored = _read_users(readings, self.waits_for, deps)
        self.pending: dict[int, PendingTag] = {}
        self.tag_round: asyncio.Future[dict[int, str | Exception]] | None = None
        self.findings = _Findings()
        self.semaphore = asyncio.Semaphore(deps.concurrency)
        self.executor = ThreadPoolExecutor(max_workers=deps.concurrency, thread_name_prefix="keap")

    async def handle(self, record: SQSRecord) -> str:
        i = self.index[id(record.raw_event)]
        loop = asyncio.get_running_loop()
        try:
            before = self.waits_for[i]
            if before is not None:
                await self.prepared[before].wait()
            async with self.semaphore:
                done = await loop.run_in_executor(self.executor, self._prepare, i, record)
        finally:
            self.prepared[i].set()
        if done is not None:
            return done
        if self.tag_round is None:  # the first record to get here starts the round: once all are prepared
            self.tag_round = asyncio.ensure_future(self._apply_when_prepared())
        outcome = (await asyncio.shield(self.tag_round))[i]
        # Settled on what Keap answered for this record, even if another tag's call meanwhile found Keap unable.
        return str(self._guarded(i, record, lambda: _settle(outcome), check_hold=False))

    def _guarded(self, i: int, record: SQSRecord, step: Callable[[], str | PendingTag],
                 check_hold: bool = True) -> str | PendingTag:
        """One step of one record; what it raises is sorted into "never" (the DLQ) or "later" (back)."""
        try:
            if check_hold and self.findings.hold is not None:
                raise HeldBack(self.findings.hold.reason.value)
            return step()
        except KeapRequestRejected as exc:
            return _dead_letter(self.deps, record.body, record.message_id, f"Keap rejected the request: {exc}")
        except (InvalidMessage, OutcomeUnknown) as exc:  # found on the way: an e-mail Keap cannot look up exactly,
            return _dead_letter(self.deps, record.body, record.message_id, str(exc))  # a goal perhaps achieved
        except Exception as exc:
            self.findings.failed(i, exc, should_hold(exc, self.deps.clock()))
            raise

    def _prepare(self, i: int, record: SQSRecord) -> str | None:
        reading = self.readings[i]
        if isinstance(reading, InvalidMessage):
            return _dead_letter(self.deps, record.body, record.message_id, str(reading))
        step = self._guarded(i, record, lambda: self.deps.service.prepare(reading, self.keap, self.stored.get(i)))
        if isinstance(step, PendingTag):
            self.pending[i] = step
            return None
        return step

    async def _apply_when_prepared(self) -> dict[int, str | Exception]:
        await asyncio.gather(*(e.wait() for e in self.prepared))
        # Off the batch's executor: the results are settled on it (all of its workers, even with concurrency 1).
        return await asyncio.to_thread(self._apply_pending)

    def _apply_pending(self) -> dict[int, str | Exception]:
        order = sorted(self.pending)
        if self.findings.hold is not None:
            return {i: HeldBack(self.findings.hold.reason.value) for i in order}
        outcomes = self.deps.service.apply_tags([self.pending[i] for i in order], self.keap, self.executor)
        return dict(zip(order, outcomes, strict=True))


def _read_users(readings: list[Message | InvalidMessage], waits_for: list[int | None],
                deps: ActionsDeps) -> dict[int, UserRecord]:
    """The records of the batch's users, read together, for each user's first record in the batch (a later one
    reads after its predecessor wrote). Empty if the read fails: each record then reads its own."""
    first = {i: m.user_id for i, m in enumerate(readings)
             if not isinstance(m, InvalidMessage) and waits_for[i] is None}
    if not first:
        return {}
    try:
        found = deps.service.users.get_many(first.values())
    except Exception as exc:  # noqa: BLE001 - an optimisation: the records' own reads report DynamoDB's errors
        logger.warning("could not read the batch's users together", extra={"error_type": type(exc).__name__})
        return {}
    return {i: found[user] for i, user in first.items() if user in found}


def _settle(outcome: str | Exception) -> str:
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def _open_session(records: list[dict[str, Any]], readings: list[Message | InvalidMessage], deps: ActionsDeps,
                  deadline: Deadline) -> KeapSession | dict[str, Any]:
    """The batch's Keap session (its one token read) — or, when the queue is held or Keap cannot serve, the
    batch's answer: invalid bodies dead-lettered, every other record back, no Keap call."""
    now = deps.clock()
    held = deps.holding.store.load()
    if held is not None and held.blocks(now):
        # In flight while the queue was being paused (or resumed by hand): straight back, no Keap call.
        deps.holding.pause_quietly()
        return _finish(records, _without_invalid(records, readings, deps), {}, held.as_hold(), deps, renew=False)
    try:
        return deps.open_session(deadline)
    except Exception as exc:
        hold = opening_hold(exc, now)  # KMS, DynamoDB, Secrets Manager, configuration: held, never drained
        if hold is None and not isinstance(exc, OutOfTime):
            raise
        valid = _without_invalid(records, readings, deps)
        return _finish(records, valid, dict.fromkeys(valid, exc), hold, deps)


def _without_invalid(records: list[dict[str, Any]], readings: list[Message | InvalidMessage],
                     deps: ActionsDeps) -> set[int]:
    """Dead-letter the bodies that can never be messages (no Keap needed for that); the others' indices."""
    valid = set()
    for i, (record, reading) in enumerate(zip(records, readings, strict=True)):
        if isinstance(reading, InvalidMessage):
            _dead_letter(deps, str(record.get("body", "")), str(record.get("messageId", "")), str(reading))
        else:
            valid.add(i)
    return valid


def _finish(records: list[dict[str, Any]], failed: set[int], errors: Mapping[int, BaseException], hold: Hold | None,
            deps: ActionsDeps, renew: bool = True) -> dict[str, Any]:
    """Hold if needed, then hand the failed records back — except those on their last chance."""
    if hold is not None and renew:
        try:
            deps.holding.start(hold, deps.clock())
        except Exception as exc:  # noqa: BLE001 - e.g. DynamoDB refusing: the records still go back or are rescued
            logger.error("could not write the hold", extra={"reason": hold.reason.value,
                                                            "error_type": type(exc).__name__})
    returned: list[str] = []
    for i in sorted(failed):
        record = records[i]
        if not _last_chance(record, deps) or not _rescue(record, errors.get(i), hold, deps):
            returned.append(str(record.get("messageId")))
            if hold is None and isinstance(errors.get(i), NotReady):
                _retry_soon(record, deps)
    deps.metrics.add_metric("MessagesProcessed", MetricUnit.Count, len(records) - len(failed))
    if returned:
        deps.metrics.add_metric("MessagesReturned", MetricUnit.Count, len(returned))
    if hold is not None and failed:
        deps.metrics.add_metric("MessagesHeld", MetricUnit.Count, len(failed))
    return {"batchItemFailures": [{"itemIdentifier": m} for m in dict.fromkeys(returned)]}


def _retry_soon(record: Mapping[str, Any], deps: ActionsDeps) -> None:
    """Not ready yet (a press before its signup): back in seconds rather than after the visibility timeout."""
    try:
        deps.queue.retry_in(str(record.get("receiptHandle", "")), NOT_READY_RETRY_S * receive_count(record))
    except Exception as exc:  # noqa: BLE001 - it comes back after the visibility timeout all the same
        logger.warning("could not shorten a record's visibility", extra={"error_type": type(exc).__name__})


def _last_chance(record: Mapping[str, Any], deps: ActionsDeps) -> bool:
    """SQS would move this record to the DLQ (without a reason) if it were returned now."""
    count = receive_count(record)
    if count < 2:
        return False  # the common case: no need to know the redrive policy
    limit = deps.queue.max_receive_count()
    return limit is not None and count >= limit - LAST_CHANCE_MARGIN


def _rescue(record: Mapping[str, Any], error: BaseException | None, hold: Hold | None, deps: ActionsDeps) -> bool:
    """Re-send a record that failed through no fault of its own; dead-letter one that kept failing, with why.
    False when that did not work either (then SQS's redrive is the last resort)."""
    body, message_id = str(record.get("body", "")), str(record.get("messageId", ""))
    attributes = record.get("messageAttributes") or {}
    count = receive_count(record)
    blameless = hold is not None or isinstance(error, NOT_THE_MESSAGES_FAULT)
    try:
        if blameless and not (isinstance(error, NotReady) and hold is None and requeues(attributes) >= MAX_REQUEUES):
            delay = NOT_READY_DELAY_S if isinstance(error, NotReady) and hold is None else 0
            n = deps.queue.requeue(body, message_id, attributes, delay_s=delay, first_sent_ms=first_sent_ms(record))
            deps.metrics.add_metric("MessagesRequeued", MetricUnit.Count, 1)
            logger.info("record re-sent as a fresh message on its last receive",
                        extra={"message_id": message_id, "receive_count": count, "requeues": n,
                               "why": hold.reason.value if hold else type(error).__name__})
            return True
        reason = f"returned {count} times without success; last error: {type(error).__name__}: {error}"
        _dead_letter(deps, body, message_id, reason)
        return True
    except Exception as exc:  # noqa: BLE001 - returned: SQS moves it on its next receive
        logger.error("could not rescue a record on its last receive",
                     extra={"message_id": message_id, "error_type": type(exc).__name__})
        return False


def _dead_letter(deps: ActionsDeps, body: str, message_id: str, reason: str) -> str:
    deps.dead_letters.send(body, reason, message_id)
    deps.metrics.add_metric("MessagesDeadLettered", MetricUnit.Count, 1)
    logger.warning("message sent to the DLQ, not retried", extra={"message_id": message_id, "reason": reason})
    return "dead-lettered"
