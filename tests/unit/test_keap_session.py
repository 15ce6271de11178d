"""The Keap session: one re-authorization per session on 401, short 429s and one 5xx retried in place,
Keap's throttle headers respected — with Keap's answers played in memory."""

from __future__ import annotations

import threading

import pytest

from keaplink.errors import (
    KeapAuthError,
    KeapDown,
    KeapQuotaSpent,
    KeapRequestRejected,
    KeapThrottledPersistently,
    KeapUnavailable,
    OutOfTime,
)
from keaplink.keap.deadline import Deadline
from keaplink.keap.quota import QuotaGauge
from keaplink.keap.rate_limit import RateLimiter
from keaplink.keap.session import FailureStreak, KeapSession, Pacing
from tests.unit.fakes import RecordingMetrics
from tests.unit.keap_fakes import CountingAuth, ScriptedTransport, answer


class ManualLimiter(RateLimiter):
    def __init__(self) -> None:
        super().__init__(10.0, clock=lambda: 0.0, sleep=lambda s: None)
        self.pauses: list[float] = []

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)


def session(transport: ScriptedTransport, auth: CountingAuth | None = None, **kwargs: object) -> KeapSession:
    return KeapSession("https://keap.test/crm/rest", auth or CountingAuth(), 5.0, sleep=lambda s: None,
                       transport=transport, **kwargs)  # type: ignore[arg-type]


def test_the_credential_is_read_once_and_calls_are_counted() -> None:
    transport = ScriptedTransport(answer(200, {"id": 1}), answer(200, {"id": 2}))
    s = session(transport)
    s.request("GET", "/v2/tags", "find tag")
    s.request("GET", "/v2/tags", "find tag")
    assert transport.seen == ["Bearer t1", "Bearer t1"] and s.calls == 2


def test_a_401_gets_a_fresh_credential_once_and_the_call_is_retried() -> None:
    auth = CountingAuth()
    transport = ScriptedTransport(answer(401), answer(200))
    session(transport, auth).request("GET", "/v2/tags", "find tag")
    assert auth.refreshes == 1 and transport.seen == ["Bearer t1", "Bearer t2"]


def test_a_fresh_credential_refused_too_is_not_retried_again() -> None:
    auth = CountingAuth()
    s = session(ScriptedTransport(answer(401), answer(401), answer(401)), auth)
    with pytest.raises(KeapAuthError):
        s.request("GET", "/v2/tags", "find tag")
    with pytest.raises(KeapAuthError):  # the session re-authorizes once, not once per record
        s.request("GET", "/v2/tags", "find tag")
    assert auth.refreshes == 1


class ExpiredFirstToken(ScriptedTransport):
    """Keap refuses the first token and accepts any later one."""

    def __call__(self, method: str, url: str, what: str, timeout: float, **kwargs: object):  # type: ignore[no-untyped-def]
        with self.lock:
            token = kwargs["headers"]["Authorization"]  # type: ignore[index]
            self.seen.append(token)
        return answer(401 if token == "Bearer t1" else 200)


def test_concurrent_401s_share_one_refresh() -> None:
    auth = CountingAuth()
    transport = ExpiredFirstToken()
    s = session(transport, auth)
    barrier = threading.Barrier(4)

    def call() -> None:
        barrier.wait()
        s.request("GET", "/v2/tags", "find tag")

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Each call ends with one success on the fresh token; however many met the 401, one refresh served all.
    assert auth.refreshes == 1 and transport.seen.count("Bearer t2") == 4 and "Bearer t1" in transport.seen


def test_a_short_429_pauses_the_container_and_is_retried() -> None:
    limiter, metrics = ManualLimiter(), RecordingMetrics()
    s = session(ScriptedTransport(answer(429, headers={"Retry-After": "1"}), answer(200)), limiter=limiter,
                metrics=metrics)
    s.request("GET", "/v2/tags", "find tag")
    assert limiter.pauses == [1.0] and metrics.names == ["KeapThrottled"]


def test_a_long_retry_after_stops_the_session_instead_of_pausing_the_container() -> None:
    limiter = ManualLimiter()
    transport = ScriptedTransport(answer(429, headers={"Retry-After": "21600"}))
    s = session(transport, limiter=limiter)
    with pytest.raises(KeapThrottledPersistently) as raised:
        s.request("GET", "/v2/tags", "find tag")
    assert raised.value.retry_after == 21600 and limiter.pauses == []  # the container is not paused for 6 h
    with pytest.raises(KeapThrottledPersistently):  # later calls of the batch do not reach Keap
        s.request("POST", "/v2/contacts", "upsert contact")
    assert len(transport.seen) == 1


def test_a_5xx_is_retried_once_then_raised_and_a_400_never() -> None:
    transport = ScriptedTransport(answer(503), answer(200))
    session(transport).request("GET", "/v2/tags", "find tag")
    assert len(transport.seen) == 2
    with pytest.raises(KeapUnavailable):
        session(ScriptedTransport(answer(503), answer(502))).request("GET", "/v2/tags", "find tag")
    transport = ScriptedTransport(answer(400, {"message": "bad"}))
    with pytest.raises(KeapRequestRejected, match="bad"):
        session(transport).request("POST", "/v2/contacts", "upsert contact")
    assert len(transport.seen) == 1


class TimesOutFirst(ScriptedTransport):
    """The first call gets no answer (Keap may have acted on it), the next ones are played."""

    def __call__(self, method: str, url: str, what: str, timeout: float, **kwargs: object) -> object:
        if not self.seen:
            self.seen.append("timed out")
            raise KeapUnavailable(f"{what}: timed out", 0)
        return super().__call__(method, url, what, timeout, **kwargs)  # type: ignore[arg-type]


def test_a_call_keap_may_have_acted_on_is_never_sent_twice_in_place() -> None:
    """A goal or a note that got no answer is not repeated here (Keap would act twice); a 5xx answer is."""
    transport = TimesOutFirst(answer(200, {"results": []}))
    with pytest.raises(KeapUnavailable):
        session(transport).request("POST", "/v2/automations/goals/achieve", "achieve goal", repeatable=False)
    assert transport.seen == ["timed out"]
    transport = TimesOutFirst(answer(200))
    session(transport).request("GET", "/v2/tags", "find tag")  # a read is repeatable
    assert len(transport.seen) == 2
    transport = ScriptedTransport(answer(503), answer(200))
    session(transport).request("POST", "/v2/contacts/1/notes", "create note", repeatable=False)
    assert len(transport.seen) == 2  # Keap answered 503: it did nothing


def test_a_nearly_spent_window_slows_the_container_down() -> None:
    limiter, metrics = ManualLimiter(), RecordingMetrics()
    low = {"x-keap-product-throttle-available": "3", "x-keap-tenant-throttle-available": "9000|240000"}
    session(ScriptedTransport(answer(200, headers=low)), limiter=limiter, metrics=metrics).request(
        "GET", "/v2/tags", "find tag")
    assert limiter.pauses and limiter.pauses[0] > 0 and metrics.names == ["KeapSlowedDown"]


def test_calls_failing_in_a_row_stop_the_session_and_later_calls_never_reach_keap() -> None:
    transport = ScriptedTransport(*[answer(503) for _ in range(10)], answer(200))
    s = session(transport)
    for _ in range(4):
        with pytest.raises(KeapUnavailable) as raised:
            s.request("GET", "/v2/tags", "find tag")
        assert not isinstance(raised.value, KeapDown)
    with pytest.raises(KeapDown):  # the fifth call in a row: an outage, not bad luck
        s.request("GET", "/v2/tags", "find tag")
    assert len(transport.seen) == 10
    with pytest.raises(KeapDown):
        s.request("POST", "/v2/contacts", "upsert contact")
    assert len(transport.seen) == 10 and s.blocked is not None


def test_an_outage_met_one_record_per_batch_is_still_an_outage() -> None:
    """Quiet traffic: each batch makes one call. The container's streak spans the batches."""
    streak = FailureStreak()
    raised = []
    for _ in range(5):
        s = session(ScriptedTransport(answer(503), answer(503)), streak=streak)
        with pytest.raises(KeapUnavailable) as error:
            s.request("POST", "/v2/contacts", "upsert contact")
        raised.append(type(error.value))
    assert raised == [KeapUnavailable] * 4 + [KeapDown]
    clock = [0.0]
    quiet = FailureStreak(forget_after_s=600, clock=lambda: clock[0])
    assert [quiet.failed() for _ in range(3)] == [1, 2, 3]
    clock[0] = 601.0  # ten quiet minutes: the old failures say nothing about Keap now
    assert quiet.failed() == 1


def test_a_success_in_between_means_keap_is_serving() -> None:
    fail_twice = [answer(503), answer(503)]
    transport = ScriptedTransport(*(fail_twice * 4), answer(200), *(fail_twice * 4), answer(200))
    s = session(transport)
    for _ in range(2):
        for _ in range(4):
            with pytest.raises(KeapUnavailable):
                s.request("GET", "/v2/tags", "find tag")
        s.request("GET", "/v2/tags", "find tag")
    assert s.blocked is None


QUOTA_SPENT = {"x-keap-product-quota-available": "0", "x-keap-product-quota-limit": "150000",
               "x-keap-product-quota-time-unit": "day", "x-keap-product-quota-interval": "1",
               "x-keap-product-quota-expiry-time": "1800057600000", "Retry-After": "19999"}


def pacing(now: float = 1_800_000_000.0, containers: int = 2) -> Pacing:
    return Pacing(QuotaGauge(), containers, clock=lambda: now)


def test_a_429_of_a_spent_daily_quota_says_until_when_and_stops_the_session() -> None:
    transport = ScriptedTransport(answer(429, headers=QUOTA_SPENT))
    s = session(transport, pacing=pacing())
    with pytest.raises(KeapQuotaSpent) as raised:
        s.request("GET", "/v2/tags", "find tag")
    assert raised.value.resets_at == 1_800_057_600.0
    with pytest.raises(KeapQuotaSpent):
        s.request("GET", "/v2/tags", "find tag")
    assert len(transport.seen) == 1


def test_the_quota_paces_the_limiter_and_the_reserve_stops_calls_before_keap_refuses() -> None:
    limiter = RateLimiter(11.5, burst=1, clock=lambda: 0.0, sleep=lambda s: None)
    now = 1_800_057_600.0 - 10 * 3600  # ten hours before the reset
    low = {**QUOTA_SPENT, "x-keap-product-quota-available": "20000"}
    del low["Retry-After"]
    s = session(ScriptedTransport(answer(200, headers=low)), limiter=limiter, pacing=pacing(now))
    s.request("GET", "/v2/tags", "find tag")
    assert limiter.rate == 0.5 and s.quota is not None  # paced: what is left must last until the reset
    at_reserve = {**low, "x-keap-product-quota-available": "1500"}
    transport = ScriptedTransport(answer(200, headers=at_reserve))
    s = session(transport, limiter=limiter, pacing=pacing(now))
    s.request("GET", "/v2/tags", "find tag")
    with pytest.raises(KeapQuotaSpent):  # before Keap ever says 429
        s.request("GET", "/v2/tags", "find tag")
    assert len(transport.seen) == 1


def test_a_new_session_starts_from_what_the_container_learned() -> None:
    gauge_pacing = pacing()
    s = session(ScriptedTransport(answer(429, headers=QUOTA_SPENT)), pacing=gauge_pacing)
    with pytest.raises(KeapQuotaSpent):
        s.request("GET", "/v2/tags", "find tag")
    transport = ScriptedTransport()
    later = session(transport, pacing=gauge_pacing)  # the next batch in the same container
    with pytest.raises(KeapQuotaSpent):
        later.request("GET", "/v2/tags", "find tag")
    assert transport.seen == []


def test_no_call_starts_without_time_for_it_and_no_wait_outlives_the_invocation() -> None:
    slept: list[float] = []
    clock = [0.0]
    deadline = Deadline(0.5, clock=lambda: clock[0], sleep=slept.append)
    transport = ScriptedTransport(answer(200))
    with pytest.raises(OutOfTime):
        session(transport, deadline=deadline).request("GET", "/v2/tags", "find tag")
    assert transport.seen == []
    deadline = Deadline(1.5, clock=lambda: clock[0], sleep=slept.append)
    s = session(ScriptedTransport(answer(429, headers={"Retry-After": "4"})), deadline=deadline)
    with pytest.raises(OutOfTime):
        s.request("GET", "/v2/tags", "find tag")
    assert slept == []
