"""The deployment's shared Keap budget: the pure arithmetic (take) and containers sharing one bucket (in memory)."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from keaplink.keap.budget import BucketState, BudgetRules, SharedBudget, fallback_share, take
from tests.unit.test_rate_limit import FakeClock

RULES = BudgetRules()  # 24/s, horizon 0.5 s, reserve 0.5 s, blocks of 4


def busiest_second(stamps: list[float]) -> int:
    """The most stamps in any half-open one-second window [t, t + 1)."""
    ordered = sorted(stamps)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while ordered[lo] <= t - 1.0 + 1e-9:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


# --- take(): pure ------------------------------------------------------------------------------------------
def test_an_empty_bucket_grants_the_block_from_now_one_slot_every_1_24_s() -> None:
    grant = take(None, 100.0, 4, False, RULES)
    assert grant.count == 4 and grant.first_at == 100.0
    assert grant.slots() == pytest.approx([100.0, 100.0 + 1 / 24, 100.0 + 2 / 24, 100.0 + 3 / 24])
    assert grant.next_free == pytest.approx(100.0 + 4 / 24)


def test_a_stale_bucket_starts_at_now_not_in_the_past() -> None:
    assert take(50.0, 100.0, 2, False, RULES).first_at == 100.0  # unused slots of the past are not spent now


def test_normal_callers_book_at_most_the_horizon_ahead() -> None:
    # 0.45 s booked ahead: room for slots at +0.45 and +0.4917 only (<= +0.5).
    assert take(100.45, 100.0, 2, False, RULES).count == 2
    full = take(100.55, 100.0, 1, False, RULES)
    assert full.count == 0 and full.retry_at == pytest.approx(100.05)  # when +0.55 is within the horizon


def test_a_normal_caller_books_its_whole_block_or_waits_until_it_fits() -> None:
    # Saturated: two of the four slots within reach. Booking them alone would cost a write per slot.
    part = take(100.45, 100.0, 4, False, RULES)
    assert part.count == 0 and part.retry_at == pytest.approx(100.45 + 3 / 24 - 0.5)
    later = take(100.45, part.retry_at, 4, False, RULES)
    assert later.count == 4 and later.first_at == 100.45
    assert take(100.45, 100.0, 4, True, RULES).count == 4  # priority: what there is (here all, in the reserve)


def test_at_a_slow_pace_a_block_is_what_the_horizon_can_hold() -> None:
    # One slot every 0.4 s: at most two within 0.5 s. Waiting for four would wait for ever.
    grant = take(None, 100.0, 4, False, RULES, rate=2.5)
    assert grant.count == 2 and grant.slots() == pytest.approx([100.0, 100.4])
    later = take(grant.next_free, 100.0, 4, False, RULES, rate=2.5)
    assert later.count == 0 and later.retry_at == pytest.approx(100.8 + 0.4 - 0.5)
    assert take(grant.next_free, later.retry_at, 4, False, RULES, rate=2.5).count == 2


def test_priority_callers_may_book_into_the_reserve_the_actions_never_take() -> None:
    assert take(100.55, 100.0, 1, False, RULES).count == 0
    grant = take(100.55, 100.0, 1, True, RULES)
    assert grant.count == 1 and grant.first_at == 100.55  # waits 0.55 s at most, never starved
    assert take(101.01, 100.0, 1, True, RULES).count == 0  # beyond horizon + reserve: someone paused everyone


def test_the_pace_spreads_slots_but_never_speeds_them_up() -> None:
    assert take(None, 0.0, 2, False, RULES, rate=1.0).spacing == 1.0
    assert take(None, 0.0, 2, False, RULES, rate=100.0).spacing == pytest.approx(1 / 24)


def test_fallback_share_is_the_old_static_split() -> None:
    assert fallback_share(RULES, 2) == 11.0
    assert fallback_share(RULES, 10) == pytest.approx(2.2)


@pytest.mark.parametrize("seed", range(5))
def test_any_interleaving_of_bookings_never_puts_more_than_24_slots_in_a_second(seed: int) -> None:
    rng = random.Random(seed)
    state: float | None = None
    now, slots = 0.0, []
    for _ in range(2000):
        now += rng.choice([0.0, 0.0, 0.01, 0.05, 0.3])
        grant = take(state, now, rng.randint(1, 4), rng.random() < 0.05, RULES)
        if grant.count:
            state = grant.next_free
            slots += grant.slots()
    assert busiest_second(slots) <= 24
    assert len(slots) > 1000


# --- SharedBudget: containers sharing one bucket --------------------------------------------------------------
class MemoryStore:
    """The BudgetStore contract in memory: a conditional write on the version."""

    def __init__(self) -> None:
        self.state: BucketState | None = None
        self.writes = self.refused = 0
        self.down = False

    def read(self) -> BucketState | None:
        if self.down:
            raise ConnectionError("DynamoDB unreachable")
        return self.state

    def write(self, seen: BucketState | None, next_free: float) -> BucketState | None:
        if self.down:
            raise ConnectionError("DynamoDB unreachable")
        if (seen.version if seen else None) != (self.state.version if self.state else None):
            self.refused += 1
            return None
        self.writes += 1
        self.state = BucketState(next_free, (seen.version if seen else 0) + 1)
        return self.state


class VirtualClock(FakeClock):
    """The rate limiter tests' clock at an epoch-like time (the budget stores epoch seconds)."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1_000_000.0


def test_two_containers_and_a_probe_share_24_per_second_and_the_probe_waits_little() -> None:
    store, clock = MemoryStore(), VirtualClock()
    a, b = (SharedBudget(store, RULES, fallback_rps=11, clock=clock, sleep=clock.sleep) for _ in range(2))
    probe = SharedBudget(store, RULES, fallback_rps=11, priority=True, clock=clock, sleep=clock.sleep)
    stamps, probe_waits = [], []
    for i, who in zip(range(1200), itertools.cycle((a, b, a, b, b, a)), strict=False):
        who.acquire()
        stamps.append(clock.now)
        if i % 100 == 50:  # a probe (or a refresh) in the middle of the burst
            before = clock.now
            probe.acquire()
            probe_waits.append(clock.now - before)
            stamps.append(clock.now)
    assert busiest_second(stamps) <= 24
    assert max(probe_waits) <= RULES.horizon_s + 1 / 24 + 1e-9  # never starved
    # One caller waits at a time here, so each booking is one slot (a block is as large as the callers waiting);
    # the containers' stale views met the write's condition and re-read.
    assert store.writes <= len(stamps) and store.refused > 0
    assert a.fallbacks == b.fallbacks == 0


def test_unreachable_dynamodb_falls_back_to_the_local_share() -> None:
    store, clock = MemoryStore(), VirtualClock()
    store.down = True
    budget = SharedBudget(store, RULES, fallback_rps=5, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        budget.acquire()
    assert budget.fallbacks == 1  # said once, then the local share for a while (FALLBACK_S)


def test_a_pause_moves_the_whole_deployment_back() -> None:
    store, clock = MemoryStore(), VirtualClock()
    a, b = (SharedBudget(store, RULES, fallback_rps=11, clock=clock, sleep=clock.sleep) for _ in range(2))
    a.acquire()
    a.pause(2.0)  # Keap answered 429 with Retry-After 2 to container a
    start = clock.now
    b.acquire()
    assert clock.now - start >= 2.0 - 1e-9  # container b waits too


def test_the_pace_slows_this_containers_bookings() -> None:
    store, clock = MemoryStore(), VirtualClock()
    budget = SharedBudget(store, RULES, fallback_rps=11, clock=clock, sleep=clock.sleep)
    budget.set_rate(2.0)
    start = clock.now
    for _ in range(5):
        budget.acquire()
    assert clock.now - start == pytest.approx(2.0)  # slots 0.5 s apart


class LateClock(VirtualClock):
    """Every ``every``-th sleep wakes ``late_by`` seconds late: a busy machine."""

    def __init__(self, every: int, late_by: float) -> None:
        super().__init__()
        self.every, self.late_by, self.sleeps = every, late_by, 0

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        super().sleep(seconds + (self.late_by if self.sleeps % self.every == 0 else 0.0))


def test_a_caller_that_wakes_late_takes_another_slot_so_sends_never_bunch() -> None:
    rules = BudgetRules(rate_per_s=23.5)
    store, clock = MemoryStore(), LateClock(every=7, late_by=0.08)
    a, b = (SharedBudget(store, rules, fallback_rps=11, clock=clock, sleep=clock.sleep) for _ in range(2))
    sent = []
    for who in itertools.islice(itertools.cycle((a, b, b, a)), 600):
        who.acquire()
        sent.append(clock.now)
    assert a.late + b.late > 0
    # Each send is at most late_s after its slot, so a second of sends spans at most 1 + late_s of slots.
    assert busiest_second(sent) <= math.ceil(rules.rate_per_s * (1 + rules.late_s))  # 24


class SlowStore(MemoryStore):
    """DynamoDB answering in 0.1 s: longer than a slot's tolerance (the clock moves while the write is away)."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self.clock = clock

    def write(self, seen: BucketState | None, next_free: float) -> BucketState | None:
        self.clock.now += 0.1
        if self.writes > 50:
            raise AssertionError("livelock: every booking was past before it returned")
        return super().write(seen, next_free)


def test_a_slow_dynamodb_does_not_make_every_booking_late() -> None:
    clock = VirtualClock()
    store = SlowStore(clock)
    budget = SharedBudget(store, RULES, fallback_rps=11, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        budget.acquire()
    # The first booking's slots were past when it returned; later ones start a round trip ahead.
    assert store.writes <= 12 and budget.fallbacks == 0
