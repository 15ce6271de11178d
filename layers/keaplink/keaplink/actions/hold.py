"""Holding events while Keap cannot serve them: the actions function's SQS event source mapping is
disabled, so messages wait in the queue (14 days' retention) without their receive count growing toward
the DLQ, and it is enabled again as soon as the admin reconnects (or the hourly check finds Keap usable)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keaplink.observability import NullTimeline, TimelinePort, logger


class QueueHold:
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

    def resume_quietly(self) -> None:
        """Resume, logging rather than raising on failure: callers (a reconnect, the hourly check) have
        done their own job already, and the other one resumes the queue too."""
        try:
            self.resume()
        except Exception as exc:  # noqa: BLE001
            logger.warning("could not resume the actions queue", extra={"error_type": type(exc).__name__})
