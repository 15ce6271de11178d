"""Every wait is bounded by the invocation's time: the Deadline, and the rate limiter that waits through it."""

from __future__ import annotations

import pytest

from keaplink.errors import OutOfTime
from keaplink.keap.deadline import Deadline
from keaplink.keap.rate_limit import MAX_PAUSE_S, RateLimiter


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Context:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def get_remaining_time_in_millis(self) -> int:
        return self.ms


def test_the_lambda_context_sets_the_deadline_minus_a_reserve() -> None:
    t = FakeTime()
    deadline = Deadline.from_context(Context(30_000), reserve_s=3.0, clock=t, sleep=t.sleep)
    assert deadline.remaining() == 27.0
    assert Deadline.from_context(None, clock=t).remaining() > 0  # no context: a sane bound, not forever


def test_a_wait_that_does_not_fit_raises_before_sleeping_at_all() -> None:
    t = FakeTime()
    deadline = Deadline.after(10.0, clock=t, sleep=t.sleep)
    deadline.wait(4.0, "backoff")
    with pytest.raises(OutOfTime, match="Retry-After"):
        deadline.wait(21600.0, "Retry-After")
    assert t.slept == [4.0] and deadline.remaining() == 6.0


def test_the_limiter_gives_back_a_token_it_cannot_wait_for() -> None:
    t = FakeTime()
    limiter = RateLimiter(1.0, burst=1, clock=t, sleep=t.sleep)
    limiter.acquire(Deadline.after(10.0, clock=t, sleep=t.sleep))  # the bucket's one token
    with pytest.raises(OutOfTime):
        limiter.acquire(Deadline.after(0.5, clock=t, sleep=t.sleep))  # the next one is a second away
    limiter.acquire(Deadline.after(10.0, clock=t, sleep=t.sleep))  # ... and nobody else pays for the refusal
    assert t.slept == [1.0]


def test_a_pause_is_short_whatever_it_is_asked_for() -> None:
    t = FakeTime()
    limiter = RateLimiter(10.0, burst=1, clock=t, sleep=t.sleep)
    limiter.pause(6 * 3600)  # a Retry-After of 6 hours must not freeze the container into its next invocations
    assert limiter.paused_for() == MAX_PAUSE_S
    with pytest.raises(OutOfTime):
        limiter.acquire(Deadline.after(5.0, clock=t, sleep=t.sleep))
    assert t.slept == []


def test_pacing_slows_the_limiter_but_never_speeds_it_past_its_configured_rate() -> None:
    t = FakeTime()
    limiter = RateLimiter(10.0, burst=1, clock=t, sleep=t.sleep)
    limiter.set_rate(0.5)
    limiter.acquire()
    limiter.acquire()
    assert t.slept == [2.0]
    limiter.set_rate(100.0)
    assert limiter.rate == 10.0
