"""Each branch of the single refresh path, with in-memory fakes and a controllable clock."""

from __future__ import annotations

import threading

import pytest

from keaplink.connection.decision import RefreshReason
from keaplink.connection.refresh import STEPS, Outcome, Refresher, RefreshTimings
from keaplink.connection.token import Connection, Status, Token
from keaplink.errors import (
    KeapClientConfigError,
    KeapRateLimited,
    KeapUnavailable,
    LeaseBusy,
    NeedsReauth,
    NotConnected,
    OutOfTime,
)
from keaplink.keap.deadline import Deadline
from tests.unit.fakes import FakeOAuth, FakeTokenStore, RecordingMetrics

NOW = 1_800_000_000.0


def connected(age_h: float = 0.0, version: int = 1) -> Connection:
    issued = NOW - age_h * 3600
    token = Token("at-0", "rt-0", 86400, issued + 86400, issued, "full|ab123.infusionsoft.com")
    return Connection("default", status=Status.CONNECTED, token=token, version=version)


def refresher(store: FakeTokenStore, oauth: FakeOAuth, **kwargs: object) -> Refresher:
    kwargs.setdefault("timings", RefreshTimings(wait_for_other_s=2.0, backoff_base_s=0.0))
    return Refresher(store=store, oauth=oauth, clock=lambda: NOW, sleep=lambda s: None, **kwargs)  # type: ignore[arg-type]


def test_fresh_token_is_left_alone() -> None:
    store, oauth = FakeTokenStore(connected(age_h=1)), FakeOAuth("rt-0")
    result = refresher(store, oauth).ensure_fresh()
    assert (result.outcome, result.reason, oauth.calls) == (Outcome.FRESH, RefreshReason.FRESH, 0)


def test_due_token_is_refreshed_and_saved() -> None:
    store, oauth, metrics = FakeTokenStore(connected(age_h=21.5)), FakeOAuth("rt-0"), RecordingMetrics()
    result = refresher(store, oauth, metrics=metrics).ensure_fresh()
    assert result.outcome is Outcome.REFRESHED and result.reason is RefreshReason.DUE
    assert store.conn.token and store.conn.token.refresh_token == "rt-1" and store.conn.version == 2
    assert store.conn.lease_owner is None
    assert "RefreshSucceeded" in metrics.names


def test_force_refreshes_a_fresh_token() -> None:
    store, oauth = FakeTokenStore(connected()), FakeOAuth("rt-0")
    assert refresher(store, oauth).ensure_fresh(force=True).outcome is Outcome.REFRESHED


def test_not_connected_and_needs_reauth_raise() -> None:
    with pytest.raises(NotConnected):
        refresher(FakeTokenStore(Connection("default")), FakeOAuth("x")).ensure_fresh()
    dead = Connection("default", status=Status.NEEDS_REAUTH, token=connected().token, version=3)
    with pytest.raises(NeedsReauth):
        refresher(FakeTokenStore(dead), FakeOAuth("x")).ensure_fresh(force=True)


def test_401_after_someone_else_refreshed_uses_their_token() -> None:
    store, oauth = FakeTokenStore(connected(version=5)), FakeOAuth("rt-0")
    result = refresher(store, oauth).ensure_fresh(force=True, seen_version=4)
    assert result.outcome is Outcome.REFRESHED_BY_OTHER and oauth.calls == 0


def test_waiter_uses_the_token_the_lease_holder_saved() -> None:
    store, oauth = FakeTokenStore(connected(age_h=22)), FakeOAuth("rt-0")
    store.acquire_lease("other", NOW, 60)
    calls = {"n": 0}

    def sleep(_: float) -> None:  # while we wait, the other caller finishes its refresh
        calls["n"] += 1
        if calls["n"] == 2:
            store.store_refreshed(Token("at-x", "rt-x", 86400, NOW + 86400, NOW), 1, NOW)

    r = Refresher(store=store, oauth=oauth, clock=lambda: NOW, sleep=sleep)  # type: ignore[arg-type]
    result = r.ensure_fresh()
    assert result.outcome is Outcome.REFRESHED_BY_OTHER and oauth.calls == 0
    assert result.connection.token and result.connection.token.access_token == "at-x"


def test_lease_never_released_gives_lease_busy() -> None:
    store, oauth = FakeTokenStore(connected(age_h=22)), FakeOAuth("rt-0")
    store.acquire_lease("other", NOW, 600)
    clock = iter(NOW + i for i in range(1000))
    r = Refresher(store=store, oauth=oauth, clock=lambda: next(clock), sleep=lambda s: None,  # type: ignore[arg-type]
                  timings=RefreshTimings(wait_for_other_s=5))
    with pytest.raises(LeaseBusy):
        r.ensure_fresh()
    assert oauth.calls == 0


def test_dead_refresh_token_marks_needs_reauth_and_emits_metric() -> None:
    store, oauth, metrics = FakeTokenStore(connected(age_h=22)), FakeOAuth("someone-else-used-it"), RecordingMetrics()
    with pytest.raises(NeedsReauth):
        refresher(store, oauth, metrics=metrics).ensure_fresh()
    assert store.conn.status is Status.NEEDS_REAUTH and "Invalid refresh token" in (store.conn.last_error or "")
    assert "ConnectionDead" in metrics.names
    assert store.conn.token and store.conn.token.refresh_token == "rt-0"  # kept for the record, not deleted


def test_transient_failures_are_retried() -> None:
    store = FakeTokenStore(connected(age_h=22))
    oauth = FakeOAuth("rt-0", script=[KeapUnavailable("503", 503), KeapUnavailable("timeout", 0)])
    assert refresher(store, oauth).ensure_fresh().outcome is Outcome.REFRESHED
    assert oauth.calls == 3 and store.conn.status is Status.CONNECTED


def test_transient_failures_exhausted_keep_the_connection() -> None:
    store, metrics = FakeTokenStore(connected(age_h=22)), RecordingMetrics()
    oauth = FakeOAuth("rt-0", script=[KeapUnavailable("503", 503)] * 3)
    with pytest.raises(KeapUnavailable):
        refresher(store, oauth, metrics=metrics).ensure_fresh()
    assert store.conn.status is Status.CONNECTED and store.conn.refresh_failures == 1
    assert store.conn.last_error == "503" and store.conn.lease_owner is None
    assert "RefreshFailed" in metrics.names


def test_invalid_client_is_a_config_error_not_a_dead_connection() -> None:
    store = FakeTokenStore(connected(age_h=22))
    oauth = FakeOAuth("rt-0", script=[KeapClientConfigError("bad client", 401)])
    with pytest.raises(KeapClientConfigError):
        refresher(store, oauth).ensure_fresh()
    assert store.conn.status is Status.CONNECTED


def test_save_is_retried_after_a_store_error() -> None:
    store, oauth = FakeTokenStore(connected(age_h=22)), FakeOAuth("rt-0")
    store.fail_saves = 2
    assert refresher(store, oauth).ensure_fresh().outcome is Outcome.REFRESHED
    assert store.conn.token and store.conn.token.refresh_token == oauth.live


def test_checkpoints_run_in_order() -> None:
    seen: list[str] = []
    store, oauth = FakeTokenStore(connected(age_h=22)), FakeOAuth("rt-0")
    refresher(store, oauth, checkpoint=seen.append).ensure_fresh()
    assert tuple(seen) == STEPS


def test_concurrent_callers_refresh_once() -> None:
    store, oauth = FakeTokenStore(connected(age_h=22)), FakeOAuth("rt-0")
    results = []

    def run() -> None:
        r = Refresher(store=store, oauth=oauth, clock=lambda: NOW)  # type: ignore[arg-type]
        results.append(r.ensure_fresh())

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert oauth.calls == 1 and store.saves == 1
    assert {r.connection.token.access_token for r in results if r.connection.token} == {"at-1"}


def test_lease_expired_mid_save_keeps_the_newest_token() -> None:
    """Our lease ran out before the save; a second caller, refused with the refresh token we had just
    rotated, marked the connection dead. Our token is Keap's live one: it must win."""
    conn = connected(age_h=22)
    store, oauth = FakeTokenStore(conn), FakeOAuth("rt-0")
    original = store.store_refreshed

    def someone_marks_dead_first(token: Token, expected_version: int, now: float) -> Connection:
        store.store_refreshed = original  # type: ignore[method-assign]
        store.mark_needs_reauth("Invalid refresh token", expected_version, now)
        return original(token, expected_version, now)

    store.store_refreshed = someone_marks_dead_first  # type: ignore[method-assign]
    result = refresher(store, oauth).ensure_fresh()
    assert result.outcome is Outcome.REFRESHED
    assert store.conn.status is Status.CONNECTED and store.conn.token.refresh_token == oauth.live
    assert store.conn.version == 3


def test_reconnect_during_refresh_wins() -> None:
    conn = connected(age_h=22)
    store, oauth = FakeTokenStore(conn), FakeOAuth("rt-0")
    original = store.store_refreshed
    fresh = Token("at-new-grant", "rt-new-grant", 86400, NOW + 86400, NOW)

    def reconnected_first(token: Token, expected_version: int, now: float) -> Connection:
        store.store_refreshed = original  # type: ignore[method-assign]
        from dataclasses import replace

        store.conn = replace(store.conn, token=fresh, version=expected_version + 1, connected_at=NOW + 1)
        return original(token, expected_version, now)

    store.store_refreshed = reconnected_first  # type: ignore[method-assign]
    refresher(store, oauth).ensure_fresh()
    assert store.conn.token is fresh


def test_invalid_request_is_asked_once_more_before_the_token_counts_as_dead() -> None:
    from keaplink.errors import RefreshTokenDoubtful

    once = [RefreshTokenDoubtful("invalid_request", 400)]
    store, oauth = FakeTokenStore(connected(age_h=22)), FakeOAuth("rt-0", once)
    result = refresher(store, oauth).ensure_fresh()
    assert result.outcome is Outcome.REFRESHED and oauth.calls == 2 and store.conn.status is Status.CONNECTED

    doubtful = [RefreshTokenDoubtful("invalid_request", 400), RefreshTokenDoubtful("invalid_request", 400)]
    store, oauth = FakeTokenStore(connected(age_h=22)), FakeOAuth("rt-0", doubtful)
    with pytest.raises(NeedsReauth):
        refresher(store, oauth).ensure_fresh()
    assert oauth.calls == 2 and store.conn.status is Status.NEEDS_REAUTH


# --- within the caller's time ----------------------------------------------------------------------------
class SimTime:
    """A monotonic clock that moves only when someone sleeps, and a record of the sleeps."""

    def __init__(self) -> None:
        self.t = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds

    def deadline(self, seconds: float) -> Deadline:
        return Deadline(self.t + seconds, clock=self.clock, sleep=self.sleep)


def test_no_keap_call_without_time_to_save_its_answer() -> None:
    store, oauth, sim = FakeTokenStore(connected(age_h=22)), FakeOAuth("rt-0"), SimTime()
    timings = RefreshTimings(keap_call_s=10.0, save_s=5.0)
    with pytest.raises(OutOfTime):
        refresher(store, oauth, timings=timings).ensure_fresh(deadline=sim.deadline(14.0))
    assert oauth.calls == 0 and store.conn.lease_owner is None and store.conn.token.refresh_token == "rt-0"
    assert refresher(store, oauth, timings=timings).ensure_fresh(deadline=sim.deadline(15.0)).outcome is \
        Outcome.REFRESHED


def test_a_retry_is_started_only_if_it_and_its_save_still_fit() -> None:
    store, sim = FakeTokenStore(connected(age_h=22)), SimTime()
    oauth = FakeOAuth("rt-0", script=[KeapUnavailable("timeout", 0)])
    timings = RefreshTimings(keap_call_s=10.0, save_s=5.0, backoff_base_s=0.5)
    with pytest.raises(KeapUnavailable):  # two Keap timeouts and a slow success would not fit a 16 s budget
        refresher(store, oauth, timings=timings).ensure_fresh(deadline=sim.deadline(15.4))
    assert oauth.calls == 1 and sim.slept == [] and store.conn.refresh_failures == 1


def test_a_long_retry_after_from_the_token_endpoint_is_not_slept_on_with_the_lease_held() -> None:
    store, sim = FakeTokenStore(connected(age_h=22)), SimTime()
    oauth = FakeOAuth("rt-0", script=[KeapRateLimited("429", 21600.0)])
    r = Refresher(store=store, oauth=oauth, clock=lambda: NOW, sleep=sim.sleep)  # type: ignore[arg-type]
    with pytest.raises(KeapRateLimited):
        r.ensure_fresh(deadline=sim.deadline(120.0))
    assert sim.slept == [] and oauth.calls == 1 and store.conn.lease_owner is None


class ReconnectingOAuth(FakeOAuth):
    """The admin reconnects while our refresh is on its way: Keap revokes the grant we are refreshing."""

    def __init__(self, store: FakeTokenStore) -> None:
        super().__init__("rt-0")
        self.store = store

    def refresh(self, refresh_token: str, now: float) -> Token:
        from dataclasses import replace

        from keaplink.errors import RefreshTokenDead

        self.calls += 1
        new_grant = Token("at-new-grant", "rt-new-grant", 86400, NOW + 86400, NOW, "full|ab123.infusionsoft.com")
        with self.store.lock:  # what store_authorized does: a new token, version + 1, connected_at now
            self.store.conn = replace(self.store.conn, token=new_grant, version=self.store.conn.version + 1,
                                      status=Status.CONNECTED, connected_at=NOW + 1, lease_owner=None, lease_until=None)
        raise RefreshTokenDead("Invalid refresh token", 400)


def test_a_refresh_that_meets_a_reconnect_returns_the_new_authorization() -> None:
    store, metrics = FakeTokenStore(connected(age_h=22)), RecordingMetrics()
    result = refresher(store, ReconnectingOAuth(store), metrics=metrics).ensure_fresh()
    assert result.outcome is Outcome.REFRESHED_BY_OTHER and result.refreshed
    assert result.connection.token and result.connection.token.access_token == "at-new-grant"
    assert store.conn.status is Status.CONNECTED and "ConnectionDead" not in metrics.names


def test_a_due_token_that_cannot_be_refreshed_now_is_used_while_it_is_valid() -> None:
    store = FakeTokenStore(connected(age_h=22))
    oauth = FakeOAuth("rt-0", script=[KeapUnavailable("503", 503)] * 3)
    result = refresher(store, oauth).ensure_fresh(keep_valid=True)
    assert result.outcome is Outcome.KEPT and not result.refreshed and result.connection.token.access_token == "at-0"
    assert store.conn.refresh_failures == 1  # the failure is on record; the hourly check retries
    expired = FakeTokenStore(connected(age_h=25))
    with pytest.raises(KeapUnavailable):  # an expired token is no use: the caller must hear why
        refresher(expired, FakeOAuth("rt-0", script=[KeapUnavailable("503", 503)] * 3)).ensure_fresh(keep_valid=True)
    with pytest.raises(KeapUnavailable):  # the scheduled check (no keep_valid) reports the failure
        refresher(FakeTokenStore(connected(age_h=22)),
                  FakeOAuth("rt-0", script=[KeapUnavailable("503", 503)] * 3)).ensure_fresh()


def test_the_save_is_retried_within_the_time_kept_for_it() -> None:
    store, oauth, sim = FakeTokenStore(connected(age_h=22)), FakeOAuth("rt-0"), SimTime()
    store.fail_saves = 3
    timings = RefreshTimings(keap_call_s=10.0, save_s=5.0)
    result = refresher(store, oauth, timings=timings).ensure_fresh(deadline=sim.deadline(15.0))
    assert result.outcome is Outcome.REFRESHED and sum(sim.slept) <= 15.0
