"""The connection's timeline: its newest events in one bounded item, ``TIMELINE#<connection id>``.

What happened overnight, on the status page, without opening CloudWatch. The code paths that cause an
event append it (the callback, the token import, the refresh path, the queue hold); a failed write is
logged and swallowed, never raised: the timeline is a view, the operation is the point.

One item rather than one per event: the status page reads it with one GetItem, and it can never grow past
:data:`MAX_EVENTS` (about 10 KB). Appends are read-modify-write with a condition on a version number, so
two writers do not drop each other's event; events are rare (a refresh every ~21 h), so retries are too.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keaplink.observability import logger

if TYPE_CHECKING:
    from keaplink.connection.table import ConnectionItem

MAX_EVENTS = 50
MAX_DETAIL = 200

# Kind → label. Kinds are keaplink's own words; an unknown kind is stored and shown as it is.
KINDS = {
    "connected": "Connected through Keap's consent page",
    "tokens_imported": "Token pair imported",
    "refreshed": "Token refreshed",
    "refresh_failed": "Refresh failed",
    "needs_reauth": "Re-authorization needed",
    "queue_held": "Actions queue held",
    "queue_resumed": "Actions queue resumed",
}


@dataclass(frozen=True)
class TimelineEvent:
    at: float
    kind: str
    detail: str = ""

    @property
    def label(self) -> str:
        return KINDS.get(self.kind, self.kind)


class TableTimeline:
    """``table`` gives the bound pynamodb model on first use (pynamodb stays off the cold-start path)."""

    def __init__(self, connection_id: str, table: Callable[[], type[ConnectionItem]],
                 clock: Callable[[], float] = time.time, max_events: int = MAX_EVENTS) -> None:
        self.connection_id = connection_id
        self._table = table
        self._clock = clock
        self.max_events = max_events

    @property
    def key(self) -> str:
        return f"TIMELINE#{self.connection_id}"

    def record(self, kind: str, detail: str = "") -> None:
        """Append one event; never raises."""
        event = {"at": self._clock(), "kind": kind, "detail": detail[:MAX_DETAIL]}
        try:
            self._append(event)
        except Exception as exc:  # noqa: BLE001 - the operation that caused the event has succeeded already
            logger.warning("timeline event not written", extra={"kind": kind, "error_type": type(exc).__name__})

    def _load(self) -> tuple[list[dict[str, Any]], int | None]:
        from pynamodb.exceptions import DoesNotExist

        try:
            item = self._table().get(self.key, consistent_read=True)
        except DoesNotExist:
            return [], None
        events = json.loads(item.events or "[]")
        return (events if isinstance(events, list) else []), int(item.version or 0)

    def _append(self, event: dict[str, Any]) -> None:
        from pynamodb.exceptions import PutError

        from keaplink.aws import conditional_failed

        m = self._table()
        for attempt in range(1, 7):
            if attempt > 1:
                time.sleep(random.uniform(0.01, 0.05) * attempt)  # another writer won: let it finish
            events, version = self._load()
            kept = [*events, event][-self.max_events:]
            item = m(self.key, events=json.dumps(kept, separators=(",", ":")), version=(version or 0) + 1)
            condition = m.pk.does_not_exist() if version is None else (m.version == version)
            try:
                item.save(condition=condition)
                return
            except PutError as exc:
                if not conditional_failed(exc):
                    raise
        raise RuntimeError("the timeline kept changing while appending")

    def recent(self, limit: int = 10) -> list[TimelineEvent]:
        """The newest events first."""
        events, _ = self._load()
        out = []
        for raw in reversed(events[-limit:] if limit else events):
            if isinstance(raw, dict) and isinstance(raw.get("at"), (int, float)):
                out.append(TimelineEvent(float(raw["at"]), str(raw.get("kind", "")), str(raw.get("detail", ""))))
        return out
