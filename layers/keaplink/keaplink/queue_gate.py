"""Holding events while Keap is disconnected: the SQS event source mapping of the actions function is
disabled, so messages wait in the queue (14 days retention) without their receive count growing toward
the DLQ, and it is enabled again as soon as the admin reconnects."""

from __future__ import annotations

import os

from keaplink import aws
from keaplink.observability import logger


class QueueGate:
    def __init__(self, function_name: str | None = None) -> None:
        self._function_name = function_name

    @property
    def function_name(self) -> str | None:
        # The actions function knows itself from the runtime; the admin functions get ACTIONS_FUNCTION.
        return self._function_name or os.environ.get("ACTIONS_FUNCTION") or os.environ.get("AWS_LAMBDA_FUNCTION_NAME")

    def _mappings(self) -> list[dict[str, object]]:
        if not self.function_name:
            return []
        answer = aws.client("lambda").list_event_source_mappings(FunctionName=self.function_name)
        return [m for m in answer.get("EventSourceMappings", []) if ":sqs:" in str(m.get("EventSourceArn", ""))]

    def _set(self, enabled: bool) -> int:
        changed = 0
        for mapping in self._mappings():
            state = str(mapping.get("State", ""))
            if enabled == (state in ("Enabled", "Enabling")):
                continue
            aws.client("lambda").update_event_source_mapping(UUID=str(mapping["UUID"]), Enabled=enabled)
            changed += 1
        if changed:
            logger.info("actions queue " + ("resumed" if enabled else "paused"), extra={"mappings": changed})
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
