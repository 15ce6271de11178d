"""Holding the actions queue while Keap cannot serve, and resuming it.

Two parts, always in this order: the hold's *state* (``HOLD#<id>`` in the connection table, see
:mod:`hold_store`: why, since, until, the next probe) and the *event source*: the actions function's SQS event
source mapping is disabled, so messages wait in the queue without being received — their receive count does not
grow toward the DLQ — and Keap is not called. A hold is written before the mapping is disabled, and lifted before
it is enabled again, so that a hold never exists without its state (the scheduled check would not know to lift
it).

Who lifts it: the actions function's scheduled check, when a probe succeeds (:mod:`resume`) — the only code that
changes the mapping. A reconnect (the callback) and a refresh that worked (the hourly check) only make the hold's
probe due now (:func:`after_reconnect`, the ``HOLD#`` item alone), so the check lifts it within a minute.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from keaplink.actions.hold_policy import RECONNECT_REASONS, Hold
from keaplink.observability import MetricsPort, MetricUnit, NullMetrics, NullTimeline, TimelinePort, logger

if TYPE_CHECKING:
    from keaplink.actions.hold_store import HoldState, HoldStore


class QueueHold:
    """The actions function's SQS event source mapping: disabled while held, enabled to resume."""

    def __init__(self, lambda_client: Callable[[], Any], function_name: str | None,
                 timeline: TimelinePort | None = None) -> None:
        self._lambda = lambda_client
        self.function_name = function_name
        self._timeline = timeline or NullTimeline()

    def _mappings(self) -> list[dict[str, object]]:
        if not self.function_name:
            return []
        answer = self._lambda().list_event_source_mappings(FunctionName=self.function_name)
        return [m for m in answer.get("EventSourceMappings", []) if ":sqs:" in str(m.get("EventSourceArn", ""))]

    def _set(self, enabled: bool) -> int:
        changed = 0
        for mapping in self._mappings():
            state = str(mapping.get("State", ""))
            if enabled == (state in ("Enabled", "Enabling")):
                continue
            self._lambda().update_event_source_mapping(UUID=str(mapping["UUID"]), Enabled=enabled)
            changed += 1
        if changed:
            logger.info("actions queue " + ("resumed" if enabled else "paused"), extra={"mappings": changed})
            self._timeline.record("queue_resumed" if enabled else "queue_held")
        return changed

    def pause(self) -> int:
        return self._set(False)

    def resume(self) -> int:
        return self._set(True)


class Holding:
    """The hold's state and the event source, changed together in the safe order."""

    def __init__(self, store: HoldStore, mapping: QueueHold, metrics: MetricsPort | None = None) -> None:
        self.store = store
        self.mapping = mapping
        self._metrics = metrics or NullMetrics()

    def start(self, hold: Hold, now: float) -> HoldState:
        """Hold (or go on holding) the queue: the state first, then the event source."""
        state = self.store.hold(hold, now)
        if state.since == now:
            self._metrics.add_metric("QueueHeld", MetricUnit.Count, 1)
        logger.warning("Keap cannot serve: the actions queue is held",
                       extra={"reason": state.reason.value, "detail": state.detail[:200], "until": state.until,
                              "next_probe_at": state.next_probe_at, "since": state.since})
        self.pause_quietly()
        return state

    def lift(self, seen: HoldState, now: float) -> bool:
        """Lift the hold ``seen`` and resume — unless a batch renewed it meanwhile (then it stands)."""
        if not self.store.clear(seen):
            logger.info("hold renewed meanwhile: not resuming")
            return False
        try:
            self.mapping.resume()
        except Exception:
            # Cleared but still paused, and nothing else resumes a queue: the hold goes back, its probe due at once,
            # so the next check tries again (and this run fails: after Lambda's retries, the scheduled runs' DLQ).
            self.store.hold(replace(seen.as_hold(), next_probe_at=now), now)
            raise
        self._metrics.add_metric("QueueResumed", MetricUnit.Count, 1)
        logger.info("the actions queue resumed", extra={"reason": seen.reason.value, "held_s": round(now - seen.since)})
        return True

    def pause_quietly(self) -> None:
        """The state is written; if the event source cannot be paused now, batches that still arrive meet the
        state and go straight back, and the next hold pauses it."""
        try:
            self.mapping.pause()
        except Exception as exc:  # noqa: BLE001
            logger.warning("could not pause the actions queue", extra={"error_type": type(exc).__name__})


def after_reconnect(store: HoldStore, now: float) -> str:
    """The connection is usable again (a reconnect, or a refresh that worked): make the hold's probe due now, so
    the scheduled check probes Keap and lifts it within a minute. A spent quota or a Retry-After stands until its
    known end (a reconnect changes neither). Writes ``HOLD#`` only: the callers have no right on the mapping."""
    state = store.load()
    if state is None:
        return "not_held"
    if state.reason not in RECONNECT_REASONS and state.until is not None and state.until > now:
        return "held"
    if state.blocks(now):
        store.probe_now(state, now)
    return "probe_due"


def after_reconnect_quietly(store: HoldStore, now: float) -> None:
    """Logging rather than raising: the callers (a reconnect, the hourly check) have done their own job, and the
    scheduled check probes a due hold anyway."""
    try:
        after_reconnect(store, now)
    except Exception as exc:  # noqa: BLE001
        logger.warning("could not make the held queue's probe due", extra={"error_type": type(exc).__name__})
