"""Holding the actions queue while Keap cannot serve, and resuming it — as a reconciler.

Two parts: the hold's *state* (``HOLD#<id>`` in the connection table, see :mod:`.store`: why, since, until,
the next probe) — what should be — and the *event source*: the actions function's SQS event source mapping —
what is. Disabled, messages wait in the queue without being received (their receive count does not grow toward
the DLQ) and Keap is not called. A hold is written before the mapping is disabled; it is lifted by marking it
*lifting*, and its record is removed only once the mapping reads ``Enabled``. So the queue is never paused without
a record of why.

AWS changes a mapping in seconds, not at once (``Enabling``, ``Disabling``, ``Updating``), refuses updates
meanwhile (``ResourceInUseException``) and throttles (``TooManyRequestsException``): every minute the scheduled
check (:mod:`.check`) calls :meth:`Holding.reconcile`, which does what :func:`.policy.converge` says and
leaves a refused or unfinished change to the next minute. That check is the one place that enables the mapping:
the callback and the hourly refresh only make the hold's probe due now (:func:`after_reconnect`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keaplink.actions.hold.policy import Hold, HoldReason, converge
from keaplink.actions.hold.store import MappingSeen
from keaplink.observability import MetricsPort, MetricUnit, NullMetrics, logger

if TYPE_CHECKING:
    from keaplink.actions.hold.store import HoldState, HoldStore
    from keaplink.actions.hold.switch import MappingSwitch

NOTE_EVERY_S = 900.0  # the mapping's state is recorded when it changes, and at least every 15 minutes


class Holding:
    """The hold's state and the event source, changed together in the safe order."""

    def __init__(self, store: HoldStore, mapping: MappingSwitch, metrics: MetricsPort | None = None) -> None:
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

    def lift(self, seen: HoldState, now: float) -> str:
        """Keap serves again: lift the hold ``seen`` — unless a batch renewed it meanwhile (then it stands:
        ``renewed``). The record is marked *lifting* first; the mapping is enabled, and the record removed once the
        mapping reads ``Enabled`` — now (``clear``), or at a later minute's check (what :meth:`reconcile` did)."""
        lifting = self.store.mark_lifting(seen, now)
        if lifting is None:
            logger.info("hold renewed meanwhile: not resuming")
            return "renewed"
        return self.reconcile(now, lifting, MappingSeen("", 0.0))

    def reconcile(self, now: float, state: HoldState | None, seen: MappingSeen | None = None,
                  again: bool = True) -> str:
        """Make the mapping agree with the hold ``state`` (:func:`converge`); what could not be done now (a mapping
        in a transitional state, an update AWS refused or throttled) is done at the next minute's check. ``seen``:
        the mapping's state as last recorded for the status page (recorded again when it changed or aged)."""
        try:
            mapping = self.mapping.state()
        except Exception as exc:  # noqa: BLE001 - Lambda's control plane refused or throttled: next minute
            logger.warning("could not read the event source mapping", extra={"error_type": type(exc).__name__})
            return "wait"
        if mapping is not None and (seen is None or seen.state != mapping or now - seen.seen_at >= NOTE_EVERY_S):
            self._note_mapping(mapping, now)
        action = converge(state is not None and not state.lifting, state is not None and state.lifting, mapping)
        try:
            if action == "pause":
                assert state is not None
                self.mapping.pause(f"{state.reason.value}: {state.detail}"[:200])
            elif action == "resume":
                self.mapping.resume("Keap serves again" if state is not None
                                    else "found paused without a hold: enabled again")
            elif action == "clear":
                assert state is not None
                if self._clear(state, now) and mapping is not None:
                    self._note_mapping(mapping, now)  # the record is gone: the status page still shows the state
        except Exception as exc:  # noqa: BLE001 - e.g. ResourceInUseException, TooManyRequestsException
            logger.warning("the event source mapping could not be changed now: next minute",
                           extra={"action": action, "mapping": mapping, "error_type": type(exc).__name__})
            return "refused"
        if action == "resume" and state is not None and again:  # AWS may say Enabled at once: then clear now
            return self.reconcile(now, state, MappingSeen("", 0.0), again=False)
        return action

    def _clear(self, state: HoldState, now: float) -> bool:
        if not self.store.clear(state):
            logger.info("hold renewed meanwhile: not resuming")
            return False
        self._metrics.add_metric("QueueResumed", MetricUnit.Count, 1)
        logger.info("the actions queue resumed",
                    extra={"reason": state.reason.value, "held_s": round(now - state.since)})
        return True

    def _note_mapping(self, mapping: str, now: float) -> None:
        try:
            self.store.record_mapping(mapping, now)
        except Exception as exc:  # noqa: BLE001 - a figure for the status page
            logger.warning("could not record the mapping's state", extra={"error_type": type(exc).__name__})

    def pause_quietly(self) -> None:
        """The state is written; if the event source cannot be paused now, batches that still arrive meet the
        state and go straight back, and the next hold pauses it."""
        try:
            self.mapping.pause()
        except Exception as exc:  # noqa: BLE001
            logger.warning("could not pause the actions queue", extra={"error_type": type(exc).__name__})


def after_reconnect(store: HoldStore, now: float) -> str:
    """The connection is usable again (a reconnect, or a refresh that worked): the hold's probe is due now, and
    the minute check's probe — a call Keap answers — lifts it. Writes ``HOLD#`` only: the callers have no right
    on the mapping. A spent quota or a Retry-After waits for its known end; an operator's pause waits for
    ``keaplink resume``."""
    state = store.load()
    if state is None:
        return "flowing"
    if state.lifting:
        return "resuming"
    if state.reason is not HoldReason.PAUSED_BY_OPERATOR and (state.until is None or state.until <= now):
        store.probe_now(state, now)
        return "probe_due"
    return "held"


def after_reconnect_quietly(store: HoldStore, now: float) -> None:
    """Logging rather than raising: the callers (a reconnect, the hourly check) have done their own job, and the
    scheduled check probes the hold all the same."""
    try:
        after_reconnect(store, now)
    except Exception as exc:  # noqa: BLE001
        logger.warning("could not make the hold's probe due", extra={"error_type": type(exc).__name__})
