"""The Keap session: one re-authorization per session on 401, short 429s and one 5xx retried in place,
Keap's throttle headers respected — with Keap's answers played in memory."""

from __future__ import annotations

import threading

import pytest

from keaplink.errors import KeapAuthError, KeapRateLimited, KeapRequestRejected, KeapUnavailable
from keaplink.keap.rate_limit import RateLimiter
from keaplink.keap.session import KeapSession
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


def test_a_short_429_pauses_the_container_and_is_retried_a_long_one_is_not() -> None:
    limiter, metrics = ManualLimiter(), RecordingMetrics()
    s = session(ScriptedTransport(answer(429, headers={"Retry-After": "1"}), answer(200)), limiter=limiter,
                metrics=metrics)
    s.request("GET", "/v2/tags", "find tag")
    assert limiter.pauses == [1.0] and metrics.names == ["KeapThrottled"]
    s = session(ScriptedTransport(answer(429, headers={"Retry-After": "30"})), limiter=limiter)
    with pytest.raises(KeapRateLimited):
        s.request("GET", "/v2/tags", "find tag")
    assert limiter.pauses[-1] == 30.0


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


def test_a_nearly_spent_window_slows_the_container_down() -> None:
    limiter, metrics = ManualLimiter(), RecordingMetrics()
    low = {"x-keap-product-throttle-available": "3", "x-keap-tenant-throttle-available": "9000|240000"}
    session(ScriptedTransport(answer(200, headers=low)), limiter=limiter, metrics=metrics).request(
        "GET", "/v2/tags", "find tag")
    assert limiter.pauses and limiter.pauses[0] > 0 and metrics.names == ["KeapSlowedDown"]
