"""One SQS batch of the actions function: read the token once, process records concurrently, report
partial failures, and hold the queue when Keap is disconnected."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from keaplink import credentials
from keaplink.actions import ActionService, KeapSession, TagIds
from keaplink.config import get_settings, require
from keaplink.errors import NeedsReauth, NotConnected
from keaplink.keap_client import KeapClient, api_key, bearer
from keaplink.keap_http import Throttle, throttle_pause
from keaplink.observability import MetricsPort, MetricUnit, logger
from keaplink.queue_gate import QueueGate
from keaplink.rate_limit import RateLimiter
from keaplink.refresh import Refresher
from keaplink.user_store import UserStore

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

# Two containers at most (ScalingConfig.MaximumConcurrency) x 11.5 requests/s, with a burst of one, never
# exceed Keap's 25/s spike limit in any second (2 x 12.5) and stay under 1,500/minute (1,380).
DEFAULT_MAX_RPS = 11.5
DEFAULT_CONCURRENCY = 8


@dataclass
class ActionsDeps:
    service: ActionService
    connect: Callable[[bool], KeapClient]
    gate: QueueGate
    concurrency: int
    metrics: MetricsPort


@lru_cache(maxsize=1)
def _limiter() -> RateLimiter:
    rate = float(os.environ.get("KEAP_MAX_RPS", DEFAULT_MAX_RPS))
    return RateLimiter(rate, burst=1.0)  # no bursts: a full bucket would let a second exceed the spike limit


@lru_cache(maxsize=1)
def _tag_ids() -> TagIds:
    return TagIds(UserStore())  # per container: the steady state of a first press is one Keap call


def keap_connector(
    refresher: Refresher, limiter: RateLimiter, metrics: MetricsPort | None = None
) -> Callable[[bool], KeapClient]:
    """Build the batch's Keap client: the stored OAuth token (refreshed if due), or the API key."""
    settings = get_settings()
    seen: dict[str, int] = {}

    def connect(after_401: bool) -> KeapClient:
        if settings.is_api_key_mode:
            auth = api_key(require(credentials.client_credentials().api_key, "api_key in KEAP_CREDENTIALS_SECRET"))
        else:
            result = refresher.ensure_fresh(force=after_401, seen_version=seen.get("version") if after_401 else None)
            seen["version"] = result.connection.version
            assert result.connection.token is not None
            auth = bearer(result.connection.token.access_token)
        return KeapClient(settings.keap_api_url, auth, settings.http_timeout_s, before_call=limiter.acquire,
                          after_call=lambda throttle: _respect_headers(throttle, limiter, metrics))

    return connect


def _respect_headers(throttle: Throttle, limiter: RateLimiter, metrics: MetricsPort | None) -> None:
    pause = throttle_pause(throttle, limiter.rate)
    if pause > 0:
        limiter.pause(pause)
        if metrics is not None:
            metrics.add_metric("KeapSlowedDown", MetricUnit.Count, 1)
        logger.info("Keap's throttle headers say the window is nearly spent: slowing down",
                    extra={"pause_s": pause, "product_available": throttle.product_available,
                           "tenant_available": throttle.tenant_available})


def default_deps(refresher: Refresher, metrics: MetricsPort) -> ActionsDeps:
    settings = get_settings()
    limiter = _limiter()
    service = ActionService(
        users=UserStore(),
        tags=_tag_ids(),
        limiter=limiter,
        button_tag=settings.button_tag,
        dlq_url=require(os.environ.get("DLQ_URL", ""), "DLQ_URL"),
        metrics=metrics,
    )
    return ActionsDeps(
        service=service,
        connect=keap_connector(refresher, limiter, metrics),
        gate=QueueGate(),
        concurrency=int(os.environ.get("ACTIONS_CONCURRENCY", DEFAULT_CONCURRENCY)),
        metrics=metrics,
    )


def _all_failed(event: dict[str, Any]) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event.get("Records", [])]}


def _hold(event: dict[str, Any], deps: ActionsDeps, exc: Exception) -> dict[str, Any]:
    """Keap is not usable until the admin reconnects: pause the queue and hand every record back."""
    count = len(event.get("Records", []))
    deps.gate.pause()
    deps.metrics.add_metric("MessagesHeld", MetricUnit.Count, count)
    logger.warning("Keap disconnected: holding messages until the admin reconnects",
                   extra={"records": count, "error_type": type(exc).__name__})
    return _all_failed(event)


def user_key(body: str) -> str | None:
    """The user a message is about, for ordering; None when the body cannot be read (it will be
    dead-lettered by the service with the precise reason)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    user = data.get("user_id") if isinstance(data, dict) else None
    return str(user) if user is not None else None


def process_batch(event: dict[str, Any], deps: ActionsDeps, context: Any = None) -> dict[str, Any]:
    records = event.get("Records", [])
    try:
        session = KeapSession(deps.connect)  # the one token read of this batch
    except (NotConnected, NeedsReauth) as exc:
        return _hold(event, deps, exc)

    held = threading.Event()
    # Records of one user run in arrival order (a signup and a press in the same batch must not race);
    # different users run concurrently. Each record waits for its user's previous record to finish.
    done: dict[int, asyncio.Event] = {id(r): asyncio.Event() for r in records}
    predecessor: dict[int, asyncio.Event] = {}
    last_of_user: dict[str, int] = {}
    for raw in records:
        key = user_key(str(raw.get("body", "")))
        if key is not None:
            if key in last_of_user:
                predecessor[id(raw)] = done[last_of_user[key]]
            last_of_user[key] = id(raw)
    semaphore = asyncio.Semaphore(deps.concurrency)
    executor = ThreadPoolExecutor(max_workers=deps.concurrency, thread_name_prefix="keap")

    def work(record: SQSRecord) -> str:
        try:
            return deps.service.handle(record.body, record.message_id, session)
        except (NotConnected, NeedsReauth):
            held.set()
            raise

    async def record_handler(record: SQSRecord) -> str:
        key = id(record.raw_event)
        try:
            if key in predecessor:
                await predecessor[key].wait()
            async with semaphore:
                return await asyncio.get_running_loop().run_in_executor(executor, work, record)
        finally:
            done[key].set()

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
        deps.gate.pause()
    logger.info("batch done", extra={"records": len(records), "returned": failed, "keap_calls": session.client.calls})
    return response


def reset() -> None:
    """Forget per-container caches (tests; a container never needs this)."""
    _limiter.cache_clear()
    _tag_ids.cache_clear()
