"""The scheduled check of a held queue (probe Keap once when due, resume when it serves) and what a reconnect
lifts — with in-memory fakes and a fixed clock."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from keaplink.actions.hold.check import CheckDeps, check, is_queue_event
from keaplink.actions.hold.holding import Holding, after_reconnect
from keaplink.actions.hold.policy import HoldReason, probe_interval
from keaplink.actions.hold.store import HoldState
from keaplink.keap.quota import QuotaGauge
from keaplink.keap.session import KeapSession, Pacing
from tests.unit.fakes import RecordingMetrics
from tests.unit.hold_fakes import FakeHoldStore, FakeMapping, FakeQueue
from tests.unit.keap_fakes import CountingAuth, ScriptedTransport, answer

NOW = 1_800_000_000.0


def hold(reason: HoldReason, next_probe_at: float, probes: int = 0) -> HoldState:
    return HoldState(reason, "why", since=NOW - 7200, until=None, next_probe_at=next_probe_at, updated_at=NOW - 60,
                     probes=probes)


class World:
    def __init__(self, state: HoldState | None, *answers: Any) -> None:
        self.store, self.mapping = FakeHoldStore(state), FakeMapping()
        self.mapping.enabled = state is None
        self.transport = ScriptedTransport(*answers)
        self.metrics = RecordingMetrics()
        self.sessions = 0

    def open_session(self, deadline: Any) -> KeapSession:
        self.sessions += 1
        return KeapSession("https://keap.test/crm/rest", CountingAuth(), 5.0, sleep=lambda s: None,
                           transport=self.transport, deadline=deadline,
                           pacing=Pacing(QuotaGauge(), 2, clock=lambda: NOW))

    def check(self) -> dict[str, Any]:
        deps = CheckDeps(holding=Holding(self.store, self.mapping, self.metrics),  # type: ignore[arg-type]
                         open_session=self.open_session, queue=FakeQueue(waiting=42),  # type: ignore[arg-type]
                         metrics=self.metrics, clock=lambda: NOW, sleep=lambda s: None)
        return check(deps)


def test_scheduled_events_are_told_from_sqs_batches() -> None:
    assert is_queue_event({"Records": []}) and not is_queue_event({"source": "aws.events"})


def test_nothing_happens_when_nothing_is_held() -> None:
    world = World(None)
    assert world.check() == {"outcome": "not_held", "mapping": "none"}
    assert world.sessions == 0 and world.mapping.changes == []


def test_a_hold_reports_its_age_and_the_waiting_messages_and_calls_nobody_before_its_probe() -> None:
    world = World(hold(HoldReason.KEAP_UNAVAILABLE, NOW + 300))
    result = world.check()
    assert result["outcome"] == "held" and result["waiting"] == 42 and world.store.waiting == [42]
    assert world.sessions == 0 and world.transport.seen == [] and "QueueHeldSeconds" in world.metrics.names
    assert "OldestMessageAgeSeconds" in world.metrics.names  # nothing is received while held: the hold's age
    assert world.mapping.changes == []  # already paused
    world.mapping.enabled = True  # the pause failed when the hold began (or someone enabled it by hand)
    assert world.check()["mapping"] == "pause" and world.mapping.changes == ["pause"]


def test_keap_serving_again_lifts_the_hold_and_resumes_the_queue() -> None:
    world = World(hold(HoldReason.KEAP_UNAVAILABLE, NOW - 1), answer(200, {"tags": []}))
    assert world.check()["outcome"] == "resumed"
    assert world.store.state is None and world.mapping.enabled and "QueueResumed" in world.metrics.names
    assert len(world.transport.seen) == 1  # one probe


def test_a_failed_probe_backs_off() -> None:
    world = World(hold(HoldReason.KEAP_UNAVAILABLE, NOW - 1, probes=3), answer(503), answer(503))
    result = world.check()
    state = world.store.state
    assert result["outcome"] == "held" and result["probe"] == "failed"
    assert state is not None and state.probes == 4 and state.next_probe_at == NOW + probe_interval(4)
    assert state.last_probe_result and "503" in state.last_probe_result and not world.mapping.enabled


def test_a_probe_that_meets_a_spent_quota_waits_for_its_reset() -> None:
    spent = {"x-keap-product-quota-available": "0", "x-keap-product-quota-expiry-time": str(int((NOW + 5000) * 1000))}
    world = World(hold(HoldReason.KEAP_UNAVAILABLE, NOW - 1), answer(429, headers=spent))
    world.check()
    state = world.store.state
    assert state is not None and state.reason is HoldReason.QUOTA_SPENT and state.until == NOW + 5000


def test_a_probe_answered_with_a_quota_at_the_reserve_does_not_resume() -> None:
    """Keap serves the probe, but its headers say the quota is down to keaplink's reserve: resuming would only
    make the next batch hold again."""
    low = {"x-keap-product-quota-available": "3", "x-keap-product-quota-limit": "150000",
           "x-keap-product-quota-expiry-time": str(int((NOW + 5000) * 1000))}
    world = World(hold(HoldReason.QUOTA_SPENT, NOW - 1), answer(200, {"tags": []}, headers=low))
    assert world.check()["outcome"] == "held"
    state = world.store.state
    assert state is not None and state.until == NOW + 5000 and not world.mapping.enabled


def test_a_hold_renewed_during_the_probe_stands() -> None:
    world = World(hold(HoldReason.KEAP_UNAVAILABLE, NOW - 1), answer(200, {"tags": []}))
    original = world.store.mark_lifting

    def renewed_meanwhile(seen: HoldState, now: float) -> HoldState | None:
        assert world.store.state is not None
        world.store.state = replace(world.store.state, updated_at=NOW)  # a batch met Keap down again
        return original(seen, now)

    world.store.mark_lifting = renewed_meanwhile  # type: ignore[method-assign]
    assert world.check()["outcome"] == "held" and world.store.state is not None and not world.mapping.enabled


def test_a_reconnect_only_makes_the_probe_due_and_never_touches_the_mapping() -> None:
    """The callback and the hourly refresh call after_reconnect: the minute check's probe, a call Keap answers,
    is what lifts a hold, and the minute check is the one place that enables the mapping."""
    for reason in (HoldReason.NOT_CONNECTED, HoldReason.NEEDS_REAUTH, HoldReason.CREDENTIALS_REFUSED,
                   HoldReason.KEAP_UNAVAILABLE):
        world = World(hold(reason, NOW + 600))
        assert after_reconnect(world.store, NOW) == "probe_due"  # type: ignore[arg-type]
        assert world.store.state is not None and world.store.state.next_probe_at == NOW
        assert world.mapping.changes == []
    spent = replace(hold(HoldReason.QUOTA_SPENT, NOW + 6 * 3600), until=NOW + 6 * 3600)
    world = World(spent)
    assert after_reconnect(world.store, NOW) == "held"  # type: ignore[arg-type]
    assert world.store.state == spent  # a reconnect does not reset Keap's quota: no wasted probe
    world = World(hold(HoldReason.PAUSED_BY_OPERATOR, NOW - 1))
    assert after_reconnect(world.store, NOW) == "held"  # type: ignore[arg-type]
    world = World(None)
    world.mapping.enabled = False
    assert after_reconnect(world.store, NOW) == "flowing"  # type: ignore[arg-type]
    assert world.mapping.changes == []  # the minute check enables it


def test_refused_credentials_are_lifted_only_by_a_probe_keap_answered() -> None:
    world = World(hold(HoldReason.CREDENTIALS_REFUSED, NOW + 600), answer(401), answer(401))
    after_reconnect(world.store, NOW)  # type: ignore[arg-type]  # an hourly refresh worked
    result = world.check()
    assert result["probe"] == "failed" and world.store.state is not None and not world.mapping.enabled
    world = World(hold(HoldReason.CREDENTIALS_REFUSED, NOW - 1), answer(200, {"tags": []}))
    assert world.check()["outcome"] == "resumed" and world.store.state is None


def test_a_lift_keeps_the_record_until_the_mapping_reads_enabled() -> None:
    world = World(hold(HoldReason.KEAP_UNAVAILABLE, NOW - 1), answer(200, {"tags": []}))
    world.mapping.transitional = True  # as AWS: Enabling for some seconds
    assert world.check()["outcome"] == "resuming"
    assert world.store.state is not None and world.store.state.lifting and world.mapping.state() == "Enabling"
    assert not world.store.state.blocks(NOW)  # batches that arrive now go ahead
    assert world.check()["outcome"] == "resuming" and world.store.state is not None  # still Enabling: wait
    world.mapping.settle()
    assert world.check() == {"outcome": "resumed", "mapping": "clear"} and world.store.state is None
    assert len(world.transport.seen) == 1  # one probe, however many minutes the mapping took


def test_a_refused_enable_is_retried_next_minute_and_the_hold_is_never_lost() -> None:
    world = World(hold(HoldReason.KEAP_UNAVAILABLE, NOW - 1), answer(200, {"tags": []}))
    world.mapping.refuse = [RuntimeError("ResourceInUseException"), RuntimeError("TooManyRequestsException")]
    assert world.check()["mapping"] == "refused"
    assert world.store.state is not None and world.store.state.lifting and not world.mapping.enabled
    assert world.check()["mapping"] == "refused" and world.store.state is not None
    assert world.check()["outcome"] == "resumed" and world.store.state is None and world.mapping.enabled
    assert len(world.transport.seen) == 1


def test_a_mapping_found_paused_without_a_hold_is_enabled_again() -> None:
    world = World(None)
    world.mapping.enabled = False  # a failed lift of an older version, or a change by hand
    assert world.check() == {"outcome": "not_held", "mapping": "resume"} and world.mapping.enabled
    assert world.check() == {"outcome": "not_held", "mapping": "none"}


def test_a_held_queue_whose_mapping_is_changing_waits_and_pauses_next_minute() -> None:
    world = World(hold(HoldReason.KEAP_UNAVAILABLE, NOW + 300))
    world.mapping.enabled, world.mapping.changing = True, "Updating"
    assert world.check()["mapping"] == "wait" and world.mapping.changes == []
    world.mapping.settle()
    assert world.check()["mapping"] == "pause" and not world.mapping.enabled


def test_an_operators_pause_is_never_probed_and_only_resume_lifts_it() -> None:
    world = World(hold(HoldReason.PAUSED_BY_OPERATOR, NOW - 3600), answer(200, {"tags": []}))
    world.mapping.enabled = True
    result = world.check()
    assert result["outcome"] == "held" and result["mapping"] == "pause" and world.sessions == 0
    state = world.store.state
    assert state is not None and state.blocks(NOW + 10 * 86400)
    world.store.state = replace(state, lifting_at=NOW, next_probe_at=NOW)  # `keaplink resume`
    assert world.check()["outcome"] == "resumed" and world.mapping.enabled and world.sessions == 0
