"""Holding the actions queue while Keap cannot serve, and resuming it.

Two parts, always in this order: the hold's *state* (``HOLD#<id>`` in the connection table, see
:mod:`hold_store`: why, since, until, the next probe) and the *event source*: the actions function's SQS event
source mapping is disabled, so messages wait in the queue without being received — their receive count does not
grow toward the DLQ — and Keap is not called. A hold is written before the mapping is disabled, and lifted before
it is enabled again, so that a hold never exists without its state (the scheduled check would not know to lift
it).

Who lifts it: the actions function's scheduled check, when a probe succeeds (:mod:`resume`); the callback on a
reconnect, and the hourly refresh check after a successful refresh, for the reasons a reconnect cures
(:meth:`Holding.after_reconnect`).
"""

from __future__ import annotations

from collections.abc import Callable
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
        self.mapping.resume()
        self._metrics.add_metric("QueueResumed", MetricUnit.Count, 1)
        logger.info("the actions queue resumed", extra={"reason": seen.reason.value, "held_s": round(now - seen.since)})
        return True

    def after_reconnect(self, now: float) -> str:
        """The connection is usable again (a reconnect, or a refresh that worked). Lift a hold a reconnect cures
        and resume; a hold on Keap itself stands — an outage with its probe due at once, a spent quota or a
        Retry-After until its known end (a reconnect changes neither)."""
        state = self.store.load()
        if state is None:
            self.mapping.resume()  # the safety net: a queue paused without a hold (e.g. by an older version)
            return "resumed"
        if state.reason in RECONNECT_REASONS:
            return "resumed" if self.lift(state, now) else "held"
        if state.until is None or state.until <= now:
            self.store.probe_now(state, now)
        return "held"

    def after_reconnect_quietly(self, now: float) -> None:
        """Logging rather than raising: the callers (a reconnect, the hourly check) have done their own job, and
        the scheduled check lifts the hold too."""
        try:
            self.after_reconnect(now)
        except Exception as exc:  # noqa: BLE001
            logger.warning("could not resume the actions queue", extra={"error_type": type(exc).__name__})

    def pause_quietly(self) -> None:
        """The state is written; if the event source cannot be paused now, batches that still arrive meet the
        state and go straight back, and the next hold pauses it."""
        try:
            self.mapping.pause()
        except Exception as exc:  # noqa: BLE001
            logger.warning("could not pause the actions queue", extra={"error_type": type(exc).__name__})
