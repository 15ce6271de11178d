"""In-memory stand-ins for the hold's collaborators: the HOLD# item, the event source mapping, the actions queue
and the DLQ. Exercised by test_batch.py and test_resume.py."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from keaplink.actions.hold.policy import Hold, stronger
from keaplink.actions.hold.store import HoldState, MappingSeen


class FakeHoldStore:
    """Same contract as keaplink.actions.hold.store.HoldStore (conditions on updated_at), in memory."""

    def __init__(self, state: HoldState | None = None) -> None:
        self.state = state
        self.waiting: list[int] = []

        self.mapping_seen: MappingSeen | None = None

    def load(self) -> HoldState | None:
        return self.state

    def load_all(self) -> tuple[HoldState | None, MappingSeen | None]:
        return self.state, self.mapping_seen

    def record_mapping(self, state: str, now: float) -> None:
        self.mapping_seen = MappingSeen(state, now)

    def mark_lifting(self, seen: HoldState, now: float) -> HoldState | None:
        if self.state is None or self.state.updated_at != seen.updated_at:
            return None
        self.state = replace(self.state, lifting_at=now, next_probe_at=now, updated_at=now)
        return self.state

    def hold(self, hold: Hold, now: float) -> HoldState:
        current = self.state if self.state is None or not self.state.lifting else None
        chosen = stronger(current.as_hold() if current else None, hold)
        self.state = HoldState(chosen.reason, chosen.detail, current.since if current else now, chosen.until,
                               chosen.next_probe_at, now, current.probes if current else 0)
        return self.state

    def after_probe(self, seen: HoldState, hold: Hold, result: str, now: float) -> HoldState | None:
        if self.state is None or self.state.updated_at != seen.updated_at:
            return None
        self.state = replace(seen, reason=hold.reason, detail=hold.detail, until=hold.until,
                             next_probe_at=hold.next_probe_at, updated_at=now, probes=seen.probes + 1,
                             last_probe_at=now, last_probe_result=result)
        return self.state

    def probe_now(self, seen: HoldState, now: float) -> None:
        if self.state is not None and self.state.updated_at == seen.updated_at:
            self.state = replace(self.state, next_probe_at=now, updated_at=now)

    def clear(self, seen: HoldState) -> bool:
        if self.state is None or self.state.updated_at != seen.updated_at:
            return False
        self.state = None
        return True

    def note_waiting(self, waiting: int, now: float) -> None:
        self.waiting.append(waiting)


class FakeMapping:
    """The event source mapping. ``transitional``: the state it reads after a change until ``settle()`` (as AWS's
    Enabling/Disabling); ``refuse``: errors its next updates raise (as ResourceInUseException, throttling)."""

    def __init__(self, transitional: bool = False) -> None:
        self.enabled = True
        self.changes: list[str] = []
        self.transitional = transitional
        self.changing: str | None = None
        self.refuse: list[Exception] = []

    def state(self) -> str:
        return self.changing or ("Enabled" if self.enabled else "Disabled")

    def settle(self) -> None:
        self.changing = None

    def _update(self, enabled: bool, name: str) -> int:
        if self.refuse:
            raise self.refuse.pop(0)
        self.changes.append(name)
        changed, self.enabled = self.enabled != enabled, enabled
        if changed and self.transitional:
            self.changing = "Enabling" if enabled else "Disabling"
        return int(changed)

    def pause(self, why: str = "") -> int:
        return self._update(False, "pause")

    def resume(self, why: str = "") -> int:
        return self._update(True, "resume")


class FakeQueue:
    def __init__(self, max_receive_count: int | None = 20, waiting: int = 0) -> None:
        self._max = max_receive_count
        self._waiting = waiting
        self.requeued: list[dict[str, Any]] = []
        self.retries: list[tuple[str, int]] = []

    def max_receive_count(self) -> int | None:
        return self._max

    def requeue(self, body: str, message_id: str, attributes: Any, delay_s: int = 0,
                first_sent_ms: int | None = None) -> int:
        self.requeued.append({"body": body, "message_id": message_id, "delay_s": delay_s})
        return len(self.requeued)

    def retry_in(self, receipt_handle: str, delay_s: int) -> None:
        self.retries.append((receipt_handle, delay_s))

    def waiting(self) -> int:
        return self._waiting


class FakeDeadLetters:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def send(self, body: str, reason: str, message_id: str) -> None:
        self.sent.append((body, reason, message_id))
