"""The switch of the actions function's SQS event source mapping: disabled while the queue is held, enabled to
resume. It reports the mappings' state as Lambda gives it, transitional states included; the holding
(:mod:`keaplink.actions.hold.holding`) decides when to flip it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keaplink.actions.hold.policy import MIXED, TRANSITIONAL_STATES
from keaplink.observability import NullTimeline, TimelinePort, logger


class MappingSwitch:
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

    def state(self) -> str | None:
        """The SQS mappings' state: one of Lambda's (``Enabled``, ``Disabling``, …), ``Mixed``, or None (none)."""
        states = {str(m.get("State", "")) for m in self._mappings()}
        if not states:
            return None
        if len(states) == 1:
            return states.pop()
        return next((s for s in sorted(states) if s in TRANSITIONAL_STATES), MIXED)

    def _set(self, enabled: bool, why: str = "") -> int:
        changed = 0
        for mapping in self._mappings():
            state = str(mapping.get("State", ""))
            if enabled == (state in ("Enabled", "Enabling")):
                continue
            self._lambda().update_event_source_mapping(UUID=str(mapping["UUID"]), Enabled=enabled)
            changed += 1
        if changed:
            logger.info("actions queue " + ("resumed" if enabled else "paused"),
                        extra={"mappings": changed, "why": why})
            self._timeline.record("queue_resumed" if enabled else "queue_held", why)
        return changed

    def pause(self, why: str = "") -> int:
        return self._set(False, why)

    def resume(self, why: str = "") -> int:
        return self._set(True, why)
