"""One SQS batch of the actions function: read each body once, read the token once, run records
concurrently (one user's records in arrival order), report partial failures, and hold the queue when Keap
is disconnected."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keaplink.actions.messages import Message, parse
from keaplink.actions.ordering import predecessors
from keaplink.errors import InvalidMessage, KeapRequestRejected, NeedsReauth, NotConnected
from keaplink.keap.client import KeapClient
from keaplink.observability import MetricsPort, MetricUnit, logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from keaplink.actions.dead_letters import DeadLetterQueue
    from keaplink.actions.hold import QueueHold
    from keaplink.actions.service import ActionService
    from keaplink.keap.session import KeapSession

DISCONNECTED = (NotConnected, NeedsReauth)  # no Keap call can succeed until the admin reconnects


@dataclass
class ActionsDeps:
    service: ActionService
    open_session: Callable[[], KeapSession]  # reads the token: the one token read of a batch
    dead_letters: DeadLetterQueue
    hold: QueueHold
    concurrency: int
    metrics: MetricsPort


def read(record: Mapping[str, Any]) -> Message | InvalidMessage:
    """The record's message, or why it can never be processed."""
    try:
        return parse(str(record.get("body", "")))
    except InvalidMessage as exc:
        return exc


def _all_failed(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records]}


def _hold(records: list[dict[str, Any]], deps: ActionsDeps, exc: Exception) -> dict[str, Any]:
    """Keap is not usable until the admin reconnects: pause the queue and hand every record back."""
    deps.hold.pause()
    deps.metrics.add_metric("MessagesHeld", MetricUnit.Count, len(records))
    logger.warning("Keap disconnected: holding messages until the admin reconnects",
                   extra={"records": len(records), "error_type": type(exc).__name__})
    return _all_failed(records)


def process_batch(event: dict[str, Any], deps: ActionsDeps, context: Any = None) -> dict[str, Any]:
    records: list[dict[str, Any]] = list(event.get("Records", []))
    try:
        session = deps.open_session()
    except DISCONNECTED as exc:
        return _hold(records, deps, exc)
    keap = KeapClient(session)
    readings = [read(r) for r in records]
    waits_for = predecessors([m.user_id if not isinstance(m, InvalidMessage) else None for m in readings])
    index = {id(r): i for i, r in enumerate(records)}
    done = [asyncio.Event() for _ in records]
    held = threading.Event()
    semaphore = asyncio.Semaphore(deps.concurrency)
    executor = ThreadPoolExecutor(max_workers=deps.concurrency, thread_name_prefix="keap")

    def dead_letter(record: SQSRecord, reason: str) -> str:
        deps.dead_letters.send(record.body, reason, record.message_id)
        deps.metrics.add_metric("MessagesDeadLettered", MetricUnit.Count, 1)
        logger.warning("message sent to the DLQ, not retried", extra={"message_id": record.message_id,
                                                                      "reason": reason})
        return "dead-lettered"

    def work(i: int, record: SQSRecord) -> str:
        reading = readings[i]
        if isinstance(reading, InvalidMessage):
            return dead_letter(record, str(reading))
        try:
            return deps.service.apply(reading, keap)
        except KeapRequestRejected as exc:
            return dead_letter(record, f"Keap rejected the request: {exc}")
        except DISCONNECTED:
            held.set()
            raise

    async def record_handler(record: SQSRecord) -> str:
        i = index[id(record.raw_event)]
        try:
            before = waits_for[i]
            if before is not None:
                await done[before].wait()
            async with semaphore:
                return await asyncio.get_running_loop().run_in_executor(executor, work, i, record)
        finally:
            done[i].set()

    from aws_lambda_powertools.utilities.batch import AsyncBatchProcessor, EventType, async_process_partial_response

    processor = AsyncBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    try:
        response: dict[str, Any] = dict(async_process_partial_response(event, record_handler, processor, context))
    finally:
        executor.shutdown(wait=False)
    failed = len(response.get("batchItemFailures", []))
    deps.metrics.add_metric("MessagesProcessed", MetricUnit.Count, len(records) - failed)
    if failed:
        deps.metrics.add_metric("MessagesReturned", MetricUnit.Count, failed)
    if held.is_set():
        deps.hold.pause()
    logger.info("batch done", extra={"records": len(records), "returned": failed, "keap_calls": session.calls})
    return response
