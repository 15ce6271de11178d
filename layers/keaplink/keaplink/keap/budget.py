"""One Keap rate budget for the whole deployment: a schedule of call slots kept in DynamoDB.

Keap's spike limit (25 calls/s) belongs to the Keap app, not to a container. The budget item
(``BUDGET#<connection_id>`` in the connection table) holds one number, ``next_free``: the epoch time of the next
free call slot of the deployment. Slots are ``1 / rate`` apart, so no second ever holds more than ``rate`` of them,
whatever the number of containers. A container books a small block of slots with one conditional UpdateItem
(a few writes per second, not one per call) and its callers each wait for a slot of their own.

Normal callers (the actions) book at most ``horizon_s`` ahead; priority callers (the minute probe, the refresh
path) may book ``reserve_s`` further, where the actions never go: a burst cannot starve them. :func:`take` is
the arithmetic, pure. When DynamoDB cannot be reached, a container falls back to a local limiter at a
conservative share (the budget over the event source's maximum concurrency) for a while, and says so.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from keaplink.errors import OutOfTime
from keaplink.keap.rate_limit import MAX_PAUSE_S, RateLimiter
from keaplink.observability import logger

if TYPE_CHECKING:
    from keaplink.keap.deadline import Deadline


@dataclass(frozen=True)
class BudgetRules:
    rate_per_s: float = 24.0  # slots per second for the whole deployment (configured: KEAP_RATE_BUDGET, 23.5)
    horizon_s: float = 0.5  # normal callers book at most this far ahead of now
    reserve_s: float = 0.5  # ... and priority callers this much further: a reserve the actions never take
    block: int = 4  # slots booked per write, at most (fewer when fewer callers wait)
    late_s: float = 0.02  # a slot missed by more than this is dropped: late calls bunch up (with <= 20 ms of
    # jitter after the slot, no 1 s window at Keap holds more than 25 calls)


@dataclass(frozen=True)
class BucketState:
    next_free: float  # epoch seconds: the deployment's next free slot
    version: int  # bumped by every write: the condition of the next one


@dataclass(frozen=True)
class Grant:
    """``count`` slots from ``first_at``, ``spacing`` apart; the bucket's ``next_free`` after them. ``count`` 0:
    nothing may be booked now, ask again at ``retry_at``."""

    count: int
    first_at: float
    spacing: float
    next_free: float
    retry_at: float

    def slots(self) -> list[float]:
        return [self.first_at + i * self.spacing for i in range(self.count)]


def take(next_free: float | None, now: float, want: int, priority: bool, rules: BudgetRules,
         rate: float | None = None) -> Grant:
    """How many slots a caller may book now, and when they are (pure).

    ``next_free``: the bucket's state (None: never written, or long past). ``rate``: the pace (Keap's daily quota),
    never above the rules' rate. Slots start at the later of now and ``next_free``; a normal caller gets those
    within ``horizon_s`` of now, a priority caller those within ``horizon_s + reserve_s``.

    A normal caller gets its whole block or nothing (``retry_at``: when the block fits): when the deployment is
    saturated, slots come within reach one at a time, and booking each alone would cost a write per Keap call.
    A priority caller takes what there is.
    """
    spacing = 1.0 / max(1e-3, min(rules.rate_per_s, rate if rate is not None else rules.rate_per_s))

    def slots_within(span: float) -> int:
        return math.floor(span / spacing + 1e-9) + 1 if span >= 0 else 0

    start = max(now, next_free if next_free is not None else now)
    limit = now + rules.horizon_s + (rules.reserve_s if priority else 0.0)
    room = slots_within(limit - start)
    # Never more than the horizon can ever hold: at a slow pace (the daily quota's) a block of 4 would never fit.
    want = max(1, min(want, slots_within(limit - now)))
    needed = 1 if priority else want
    if room < needed:  # retry when the needed slots' last one comes within the limit
        return Grant(0, start, spacing, start, retry_at=start + (needed - 1) * spacing - (limit - now))
    count = min(want, room)
    return Grant(count, start, spacing, start + count * spacing, retry_at=now)


class BudgetStore(Protocol):
    def read(self) -> BucketState | None:
        """The bucket as it is (a consistent read)."""
        ...

    def write(self, seen: BucketState | None, next_free: float) -> BucketState | None:
        """Set ``next_free`` if nobody wrote since ``seen``; the new state, or None when someone did."""
        ...


def fallback_share(rules: BudgetRules, containers: int) -> float:
    """A container's rate while the shared budget is out of reach: the budget less 2/s left to the priority
    callers, split over the event source's maximum concurrency (24/s, 2 containers: 11/s each, the old split)."""
    return max(0.1, (rules.rate_per_s - min(2.0, rules.rate_per_s / 4)) / max(1, containers))


# How long a container uses its local share after DynamoDB failed, before it tries the shared budget again.
FALLBACK_S = 30.0


class SharedBudget:
    """The deployment's budget as one container uses it: the same interface as :class:`RateLimiter` (acquire,
    pause, set_rate), so a Keap session takes either. Thread-safe; lives as long as the container."""

    def __init__(self, store: BudgetStore, rules: BudgetRules, fallback_rps: float, priority: bool = False,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                 max_rate: float | None = None) -> None:
        self.rules = rules
        self.priority = priority
        self.max_rate = min(rules.rate_per_s, max_rate or rules.rate_per_s)  # a per-container ceiling, if any
        self.rate = self.max_rate
        self.max_pause_s = MAX_PAUSE_S
        self._store = store
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()  # the slots and counters
        self._booking = threading.Lock()  # one booking at a time in this container
        self._slots: deque[float] = deque()
        self._waiting = 0
        self._state: BucketState | None = None
        self._known = False
        self._paused_until = 0.0
        self._fallback = RateLimiter(fallback_rps, burst=1.0, clock=time.monotonic, sleep=sleep)
        self._fallback_until = -math.inf
        self._round_trip_s = 0.0  # the last booking write's duration: slots start no sooner than it returns
        # Counters, for tests and the benchmark.
        self.writes = self.conflicts = self.reads = self.dropped = self.late = self.fallbacks = 0

    @property
    def fallback_rps(self) -> float:
        """This container's local share while the shared budget is out of reach."""
        return self._fallback.max_rate

    # --- the limiter's interface ---------------------------------------------------------------------
    def acquire(self, deadline: Deadline | None = None) -> None:
        """Wait for a slot of the deployment's (with a ``deadline``: OutOfTime when the wait does not fit).

        A caller that wakes more than ``late_s`` after its slot does not send: it takes another slot. Late
        calls are what bunch up at Keap's count, so lateness is checked when the call goes, not when it waits."""
        while True:
            with self._lock:
                self._waiting += 1
            try:
                at = self._slot(deadline)
            finally:
                with self._lock:
                    self._waiting -= 1
            if at is None:
                self._fallback.acquire(deadline)
                return
            wait = at - self._clock()
            if wait > 0:
                if deadline is None:
                    self._sleep(wait)
                else:
                    deadline.wait(wait, "rate budget")
            if self._clock() - at <= self.rules.late_s:
                return
            with self._lock:
                self.late += 1

    def pause(self, seconds: float) -> None:
        """Keap said slow down: this container waits ``seconds`` (at most ``max_pause_s``), and so does the whole
        deployment (the bucket's next free slot moved past the pause; one attempt, best effort)."""
        seconds = min(max(0.0, seconds), self.max_pause_s)
        until = self._clock() + seconds
        with self._lock:
            self._paused_until = max(self._paused_until, until)
            while self._slots and self._slots[0] < until:
                self._slots.popleft()
        self._fallback.pause(seconds)
        try:
            state = self._store.read()
            if state is None or state.next_free < until:
                self._store.write(state, until)
        except Exception:  # noqa: BLE001 - the local pause stands; the shared one is a courtesy
            logger.warning("could not pause the shared Keap budget", exc_info=True)

    def paused_for(self) -> float:
        with self._lock:
            return max(0.0, self._paused_until - self._clock())

    def set_rate(self, rate_per_s: float) -> None:
        """The pace (Keap's daily quota): this container books its slots further apart."""
        with self._lock:
            self.rate = max(0.001, min(self.max_rate, rate_per_s))
        self._fallback.set_rate(rate_per_s)

    # --- slots ----------------------------------------------------------------------------------------
    def _slot(self, deadline: Deadline | None) -> float | None:
        """A slot's time for this caller, or None: use the local fallback."""
        while True:
            with self._lock:
                now = self._clock()
                floor = max(now - self.rules.late_s, self._paused_until)
                while self._slots and self._slots[0] < floor:
                    self._slots.popleft()
                    self.dropped += 1
                if self._slots:
                    return self._slots.popleft()
                if now < self._fallback_until:
                    return None
            with self._booking:
                with self._lock:
                    if self._slots:
                        continue  # another caller booked meanwhile
                if not self._book(deadline):
                    return None

    def _book(self, deadline: Deadline | None) -> bool:
        """Book a block of slots (one conditional write); False when DynamoDB failed: fall back.

        A conflict (another container wrote since this one read) is contention, not an outage: re-read and try
        again, as long as the deadline allows. Only an error of DynamoDB's makes the container fall back."""
        try:
            while True:
                if not self._known:
                    self._state, self._known = self._store.read(), True
                    self.reads += 1
                now = self._clock()
                with self._lock:
                    want = max(1, min(self.rules.block, self._waiting))
                    rate = self.rate
                seen = self._state
                start = max(seen.next_free if seen else now, self._paused_until)
                # Slots booked from "now" would be past by the time a slow write returns, and dropped as late:
                # start them one round trip ahead (at most half the horizon), or a slow DynamoDB livelocks.
                lead = min(self.rules.horizon_s / 2, self._round_trip_s)
                grant = take(start, now + lead, want, self.priority, self.rules, rate)
                if grant.count == 0:
                    self._wait(grant.retry_at - now, deadline)
                    self._known = False
                    continue
                began = self._clock()
                written = self._store.write(seen, grant.next_free)
                self._round_trip_s = max(0.0, self._clock() - began)
                self.writes += 1
                if written is None:
                    self.conflicts += 1
                    self._known = False
                    if deadline is not None:
                        deadline.require(0.0, "rate budget")  # out of time: OutOfTime, not another round
                    continue
                self._state = written
                with self._lock:
                    self._slots.extend(grant.slots())
                return True
        except OutOfTime:
            raise
        except Exception as exc:  # noqa: BLE001 - DynamoDB unreachable or refusing: the local share, said so
            self._fall_back(exc)
            return False

    def _wait(self, seconds: float, deadline: Deadline | None) -> None:
        if deadline is None:
            self._sleep(max(0.0, seconds))
        else:
            deadline.wait(max(0.0, seconds), "rate budget")

    def _fall_back(self, why: BaseException) -> None:
        self.fallbacks += 1
        self._known = False
        with self._lock:
            self._fallback_until = self._clock() + FALLBACK_S
        logger.warning("the shared Keap budget is out of reach: this container uses its local share",
                       extra={"fallback_rps": self._fallback.max_rate, "for_s": FALLBACK_S,
                              "error": f"{type(why).__name__}: {str(why)[:200]}"})
