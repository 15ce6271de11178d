from __future__ import annotations

from itertools import pairwise

from keaplink.keap.rate_limit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def calls_in_first_second(rate: float, burst: float) -> int:
    clock = FakeClock()
    limiter = RateLimiter(rate, burst=burst, clock=clock, sleep=clock.sleep)
    count = 0
    while True:
        limiter.acquire()
        if clock.now >= 1.0:
            return count
        count += 1


def test_burst_of_one_never_exceeds_rate_plus_one_per_second() -> None:
    # Two containers at 11.5/s must stay within Keap's 25/s spike limit in any second.
    assert 2 * calls_in_first_second(11.5, burst=1.0) <= 25


def test_a_full_bucket_would_burst() -> None:
    assert calls_in_first_second(12, burst=12) > 20  # why the burst is 1


def test_pause_holds_everyone_back() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, burst=1, clock=clock, sleep=clock.sleep)
    limiter.pause(2.0)
    assert limiter.reserve() >= 2.0


def test_callers_queued_during_a_pause_are_spread_out_after_it() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, burst=1, clock=clock, sleep=clock.sleep)
    limiter.pause(2.0)
    waits = [limiter.reserve() for _ in range(5)]
    assert waits[0] >= 2.0
    assert all(b - a >= 0.099 for a, b in pairwise(waits))
