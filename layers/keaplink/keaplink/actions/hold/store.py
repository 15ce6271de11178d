"""Where the hold lives: one item per connection in the connection table (``HOLD#<id>``), read consistently,
changed with conditions so that a probe never lifts a hold a batch has just renewed. And Keap's latest daily
quota reading (``QUOTA#<id>``), for the status page."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from keaplink.actions.hold.policy import Hold, HoldReason, stronger
from keaplink.aws import conditional_failed
from keaplink.keap.quota import pace
from keaplink.observability import logger

if TYPE_CHECKING:
    from keaplink.actions.hold.table import HoldItem
    from keaplink.keap.quota import Pace, Quota, Window

HOLD_PREFIX = "HOLD#"  # the IAM conditions of the connection table name these prefixes: keep them
QUOTA_PREFIX = "QUOTA#"

Table = Callable[[], "type[HoldItem]"]


@dataclass(frozen=True)
class HoldState:
    """The stored hold: the :class:`Hold` plus its history (since when, probes, messages waiting)."""

    reason: HoldReason
    detail: str
    since: float
    until: float | None
    next_probe_at: float
    updated_at: float
    probes: int = 0  # failed probes in this hold
    last_probe_at: float | None = None
    last_probe_result: str | None = None
    waiting: int | None = None
    waiting_at: float | None = None
    lifting_at: float | None = None  # being lifted: the record goes once the event source is enabled

    def blocks(self, now: float) -> bool:
        """No Keap call before the next probe is due (a batch that arrives meanwhile goes straight back); an
        operator's pause blocks until ``keaplink resume``; a hold being lifted blocks nothing."""
        if self.lifting_at is not None:
            return False
        return self.reason is HoldReason.PAUSED_BY_OPERATOR or now < self.next_probe_at

    @property
    def lifting(self) -> bool:
        return self.lifting_at is not None

    def as_hold(self) -> Hold:
        return Hold(self.reason, self.detail, self.until, self.next_probe_at)


@dataclass(frozen=True)
class MappingSeen:
    """The event source mapping's state as the minute check last saw it (the admin panel cannot ask Lambda)."""

    state: str
    seen_at: float


@dataclass(frozen=True)
class QuotaStatus:
    window: str
    available: int
    limit: int | None
    resets_at: float
    read_at: float
    paced_rps: float | None
    pace: str


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


class HoldStore:
    """``table`` gives the bound pynamodb model on first use (pynamodb stays off the cold-start path)."""

    def __init__(self, connection_id: str, table: Table) -> None:
        self.connection_id = connection_id
        self._table = table

    @property
    def _hold_key(self) -> str:
        return f"{HOLD_PREFIX}{self.connection_id}"

    @property
    def _quota_key(self) -> str:
        return f"{QUOTA_PREFIX}{self.connection_id}"

    # --- the hold --------------------------------------------------------------------------------------
    def load(self) -> HoldState | None:
        return self.load_all()[0]

    def load_all(self) -> tuple[HoldState | None, MappingSeen | None]:
        """The hold, and the mapping's state as last seen (one consistent read)."""
        from pynamodb.exceptions import DoesNotExist

        try:
            item = self._table().get(self._hold_key, consistent_read=True)
        except DoesNotExist:
            return None, None
        seen = (MappingSeen(item.mapping_state, float(item.mapping_seen_at))
                if item.mapping_state and item.mapping_seen_at is not None else None)
        return self._state(item), seen

    @staticmethod
    def _state(item: HoldItem) -> HoldState | None:
        if not item.reason or item.since is None or item.next_probe_at is None:
            return None
        try:
            reason = HoldReason(item.reason)
        except ValueError:
            reason = HoldReason.KEAP_UNAVAILABLE  # written by a newer version: still a hold
        return HoldState(
            reason=reason,
            detail=item.detail or "",
            since=float(item.since),
            until=_num(item.until),
            next_probe_at=float(item.next_probe_at),
            updated_at=float(item.updated_at or item.since),
            probes=int(item.probes or 0),
            last_probe_at=_num(item.last_probe_at),
            last_probe_result=item.last_probe_result,
            waiting=None if item.waiting is None else int(item.waiting),
            waiting_at=_num(item.waiting_at),
            lifting_at=_num(item.lifting_at),
        )

    def _write(self, hold: Hold, now: float, condition: Any = None, extra: list[Any] | None = None,
               fresh: bool = False) -> HoldState:
        m = self._table()
        item = m(self._hold_key)
        actions = [
            m.lifting_at.remove(),  # a hold written (or renewed) is not being lifted
            m.since.set(now) if fresh else m.since.set(m.since | now),  # a hold goes on from when it first started
            m.reason.set(hold.reason.value),
            m.detail.set(hold.detail[:500] or hold.reason.value),
            m.until.set(hold.until) if hold.until is not None else m.until.remove(),
            m.next_probe_at.set(hold.next_probe_at),
            m.updated_at.set(now),
            *(extra or []),
        ]
        item.update(actions=actions, condition=condition)
        state = self._state(item)
        assert state is not None
        return state

    def hold(self, hold: Hold, now: float) -> HoldState:
        """Start a hold, or renew the current one (the stronger of the two reasons wins)."""
        current = self.load()
        lifting = current is not None and current.lifting
        if lifting:
            current = None  # the hold being lifted is over: this one starts afresh
        chosen = stronger(current.as_hold() if current is not None else None, hold)
        if current is not None and chosen == current.as_hold() and current.blocks(now):
            return current  # already held for at least as long: nothing to write
        m = self._table()
        extra = [m.probes.set(0)] if lifting else [m.probes.set(m.probes | 0)]
        return self._write(chosen, now, extra=extra, fresh=lifting)

    def after_probe(self, seen: HoldState, hold: Hold, result: str, now: float) -> HoldState | None:
        """The probe failed: the hold goes on with ``hold``. None when a batch renewed it meanwhile."""
        from pynamodb.exceptions import UpdateError

        m = self._table()
        try:
            return self._write(
                hold, now, condition=m.updated_at == seen.updated_at,
                extra=[m.probes.set(seen.probes + 1), m.last_probe_at.set(now), m.last_probe_result.set(result[:300])],
            )
        except UpdateError as exc:
            if conditional_failed(exc):
                return None
            raise

    def probe_now(self, seen: HoldState, now: float) -> None:
        """Make the next probe due at once (e.g. after a reconnect: Keap may serve again)."""
        from pynamodb.exceptions import UpdateError

        m = self._table()
        try:
            m(self._hold_key).update(actions=[m.next_probe_at.set(now), m.updated_at.set(now)],
                                     condition=m.updated_at == seen.updated_at)
        except UpdateError:
            pass  # renewed meanwhile: its own next probe stands

    def mark_lifting(self, seen: HoldState, now: float) -> HoldState | None:
        """Keap serves again: the hold ``seen`` is being lifted (the minute check removes the record once the
        mapping is enabled). None when someone renewed it since."""
        from pynamodb.exceptions import UpdateError

        m = self._table()
        item = m(self._hold_key)
        try:
            item.update(actions=[m.lifting_at.set(now), m.next_probe_at.set(now), m.updated_at.set(now)],
                        condition=m.updated_at == seen.updated_at)
        except UpdateError as exc:
            if conditional_failed(exc):
                return None
            raise
        return self._state(item)

    def record_mapping(self, state: str, now: float) -> None:
        """The mapping's state as the minute check saw it, for the status page (the item may hold no hold)."""
        m = self._table()
        m(self._hold_key).update(actions=[m.mapping_state.set(state), m.mapping_seen_at.set(now)])

    def clear(self, seen: HoldState) -> bool:
        """Lift the hold ``seen`` — unless someone renewed it since (then it stands, and False)."""
        from pynamodb.exceptions import DeleteError

        m = self._table()
        try:
            m(self._hold_key).delete(condition=m.updated_at == seen.updated_at)
        except DeleteError as exc:
            if conditional_failed(exc):
                return False
            raise
        return True

    def note_waiting(self, waiting: int, now: float) -> None:
        """How many messages wait in the queue (the scheduled check counts them each minute while held)."""
        m = self._table()
        m(self._hold_key).update(actions=[m.waiting.set(waiting), m.waiting_at.set(now)], condition=m.pk.exists())

    # --- Keap's daily quota --------------------------------------------------------------------------
    def record_quota(self, window: Window, paced: Pace, read_at: float) -> None:
        m = self._table()
        m(
            self._quota_key,
            window=window.name,
            available=window.available,
            quota_limit=window.limit,
            resets_at=window.resets_at,
            read_at=read_at,
            paced_rps=None if paced.rate == float("inf") else round(paced.rate, 3),
            pace=paced.reason,
        ).save()

    def load_quota(self) -> QuotaStatus | None:
        from pynamodb.exceptions import DoesNotExist

        try:
            item = self._table().get(self._quota_key)
        except DoesNotExist:
            return None
        if item.available is None or item.resets_at is None or item.read_at is None:
            return None
        return QuotaStatus(
            window=item.window or "product",
            available=int(item.available),
            limit=None if item.quota_limit is None else int(item.quota_limit),
            resets_at=float(item.resets_at),
            read_at=float(item.read_at),
            paced_rps=_num(item.paced_rps),
            pace=item.pace or "",
        )


class QuotaLog:
    """Writes Keap's latest quota reading to ``QUOTA#<id>`` at most every ``every_s`` seconds per container (the
    status page needs a recent figure, not one write per Keap call)."""

    def __init__(self, store: Callable[[], HoldStore], max_rps: float, containers: int, every_s: float = 30.0) -> None:
        self._store = store
        self._max_rps = max_rps
        self._containers = containers
        self._every_s = every_s
        self._last = float("-inf")
        self._lock = threading.Lock()

    def record(self, quota: Quota) -> None:
        with self._lock:
            if quota.read_at - self._last < self._every_s:
                return
            self._last = quota.read_at
        window = quota.tightest(quota.read_at)
        if window is None:
            return
        try:
            self._store().record_quota(window, pace(quota, quota.read_at, self._max_rps, self._containers),
                                       quota.read_at)
        except Exception as exc:  # noqa: BLE001 - a figure for the status page: never worth failing a batch
            logger.warning("could not record Keap's quota", extra={"error_type": type(exc).__name__})


def describe(state: HoldState | None, quota: QuotaStatus | None,
             mapping: MappingSeen | None = None) -> dict[str, Any]:
    """Plain values for the admin panel (which does not import this package): the hold, the quota, and the
    event source mapping as the minute check last saw it."""
    view: dict[str, Any] = {"held": state is not None}
    if state is not None:
        view.update(asdict(state), reason=state.reason.value)
    view["quota"] = asdict(quota) if quota is not None else None
    view["mapping"] = asdict(mapping) if mapping is not None else None
    return view
