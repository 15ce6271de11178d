"""The actions function's scheduled check (EventBridge, every minute): the hold as a reconciler. What should be
(the ``HOLD#`` record) and what is (the event source mapping) converge (:meth:`Holding.reconcile`): a held queue's
mapping is disabled, a lifted hold's record goes once the mapping is enabled, and a mapping found disabled with no
hold (a failed lift, a change by hand) is enabled again — the timeline says so. A change AWS refuses or has not
finished is retried next minute.

While held: say how long and how many messages wait; when the hold's probe is due, call Keap once — a cheap list
of one tag, through the same session the batches use (token refreshed if due, quota read) — and if Keap answered,
lift the hold. A failed probe backs off (1, 2, 4, 8, then every 15 minutes) or waits for the quota's reset, so an
outage of hours costs Keap a handful of calls. An operator's pause (``keaplink pause``) is never probed.

Not held: one DynamoDB read and one ListEventSourceMappings call. To pause the queue, an operator runs
``keaplink pause`` (a hold like any other): a mapping disabled by hand is enabled again within a minute.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keaplink.actions.hold.policy import after_failed_probe
from keaplink.keap.deadline import Deadline
from keaplink.observability import MetricsPort, MetricUnit, logger

if TYPE_CHECKING:
    from keaplink.actions.hold.holding import Holding
    from keaplink.actions.queue import ActionsQueue
    from keaplink.keap.quota import Quota
    from keaplink.keap.session import KeapSession

PROBE = ("GET", "/v2/tags", {"page_size": 1})  # the cheapest call keaplink's credentials can make


@dataclass
class CheckDeps:
    holding: Holding
    open_session: Callable[[Deadline], KeapSession]
    queue: ActionsQueue
    metrics: MetricsPort
    record_quota: Callable[[Quota], None] = lambda quota: None
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep


def is_queue_event(event: Any) -> bool:
    """An SQS batch (else: the scheduled check)."""
    return isinstance(event, dict) and "Records" in event


def check(deps: CheckDeps, context: Any = None) -> dict[str, Any]:
    now = deps.clock()
    state, seen = deps.holding.store.load_all()
    if state is None or state.lifting:
        converged = deps.holding.reconcile(now, state, seen)
        if state is None:
            return {"outcome": "not_held", "mapping": converged}
        return {"outcome": "resumed" if converged == "clear" else "resuming", "mapping": converged}
    deps.metrics.add_metric("QueueHeldSeconds", MetricUnit.Seconds, now - state.since)
    summary: dict[str, Any] = {"reason": state.reason.value, "since": state.since, "until": state.until,
                               "next_probe_at": state.next_probe_at}
    try:
        summary["waiting"] = deps.queue.waiting()
        deps.holding.store.note_waiting(summary["waiting"], now)
        if summary["waiting"]:  # nothing is received while held, so no record says its age: the hold's age (true
            #                     for messages from before the hold, an overstatement for later ones — the alarms
            #                     err toward telling; SQS itself cannot be peeked: a peek is a receive)
            deps.metrics.add_metric("OldestMessageAgeSeconds", MetricUnit.Seconds, now - state.since)
    except Exception as exc:  # noqa: BLE001 - a count for the status page; the hold goes on without it
        logger.warning("could not count the waiting messages", extra={"error_type": type(exc).__name__})
    summary["mapping"] = deps.holding.reconcile(now, state, seen)  # a pause that failed or was refused
    if state.blocks(now):
        return {"outcome": "held", **summary}
    session: KeapSession | None = None
    try:
        session = deps.open_session(Deadline.from_context(context, sleep=deps.sleep))
        method, path, params = PROBE
        session.request(method, path, "probe", params=params)
        if session.blocked is not None:
            raise session.blocked  # Keap answered, and its answer says stop (e.g. the quota is at the reserve)
        if session.calls < 1:
            raise NotAnswered("the probe reached no Keap answer")  # only a call Keap answered lifts a hold
    except Exception as exc:  # noqa: BLE001 - any failure of the one probe call: Keap still cannot serve
        hold = after_failed_probe(state.as_hold(), exc, state.probes, now)
        deps.holding.store.after_probe(state, hold, f"{type(exc).__name__}: {exc}", now)
        logger.info("probe failed: the queue stays held",
                    extra={"reason": hold.reason.value, "error_type": type(exc).__name__,
                           "next_probe_at": hold.next_probe_at})
        return {"outcome": "held", "probe": "failed", **summary, "reason": hold.reason.value,
                "until": hold.until, "next_probe_at": hold.next_probe_at}
    finally:
        if session is not None and session.quota is not None:
            deps.record_quota(session.quota)
    lifted = deps.holding.lift(state, now)
    outcome = {"clear": "resumed", "renewed": "held"}.get(lifted, "resuming")
    return {"outcome": outcome, "probe": "ok", **summary, "mapping": lifted}


class NotAnswered(Exception):
    """The probe returned without a Keap answer (nothing to lift a hold on)."""
