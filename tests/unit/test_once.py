"""Exactly once for goals and notes: what a claim means (pure), and the service keeping to it."""

from __future__ import annotations

import pytest

from keaplink.actions.once import CLAIM_STALE_S, Claim, Seen, may_have_acted, seen
from keaplink.actions.service import ActionService
from keaplink.actions.tags import TagIds
from keaplink.contract.messages import ContactGoal, ContactNote, SignedUp
from keaplink.errors import (
    KeapDown,
    KeapRateLimited,
    KeapRequestRejected,
    KeapUnavailable,
    NotReady,
    OutcomeUnknown,
    OutOfTime,
)
from tests.unit.keap_fakes import FakeKeap, FakeUsers


def test_what_a_claim_means() -> None:
    assert seen(Claim(mine=True, claimed_at=10), 10) is Seen.NEW
    assert seen(Claim(mine=False, done=True, claimed_at=10), 10 + 10 * CLAIM_STALE_S) is Seen.DUPLICATE
    assert seen(Claim(mine=False, claimed_at=10), 10 + CLAIM_STALE_S - 1) is Seen.IN_FLIGHT
    assert seen(Claim(mine=False, claimed_at=10), 10 + CLAIM_STALE_S) is Seen.UNKNOWN


def test_keap_may_have_acted_only_when_no_answer_came_back() -> None:
    assert may_have_acted(KeapUnavailable("read timed out", 0))
    assert not may_have_acted(KeapUnavailable("HTTP 502", 502))
    assert not may_have_acted(KeapDown("stopped: outage", 0))  # raised without calling Keap
    for error in (KeapRequestRejected("no", 400), KeapRateLimited("slow down"), OutOfTime("late"), ValueError()):
        assert not may_have_acted(error)


@pytest.fixture
def world() -> tuple[ActionService, FakeKeap, FakeUsers, list[float]]:
    users, keap, now = FakeUsers(), FakeKeap(), [1000.0]
    service = ActionService(users=users, tags=TagIds(users), button_tag="b", clock=lambda: now[0])  # type: ignore[arg-type]
    service.apply(SignedUp("u1", "ada@example.com"), keap)
    keap.published_goals.add(("app", "trial_started"))
    return service, keap, users, now


def test_a_goal_is_achieved_once_per_event_id(world) -> None:  # type: ignore[no-untyped-def]
    service, keap, _, _ = world
    goal = ContactGoal("u1", "app", "trial_started", "e1")
    assert service.apply(goal, keap) == "goal achieved"
    assert service.apply(goal, keap) == "event e1 done already (goal achieved)"  # a redelivery or a redrive
    assert service.apply(ContactGoal("u1", "app", "trial_started", "e2"), keap) == "goal achieved"
    assert len(keap.goals_achieved) == 2


def test_an_unpublished_goal_is_refused_with_keaps_message_and_can_be_redriven(world) -> None:  # type: ignore[no-untyped-def]
    service, keap, users, _ = world
    goal = ContactGoal("u1", "app", "trial_ended", "e1")
    with pytest.raises(KeapRequestRejected, match=r"No goals were configured for app\.trial_ended"):
        service.apply(goal, keap)
    assert users.events == {}  # released: the redrive after fixing the campaign achieves it
    keap.published_goals.add(("app", "trial_ended"))
    assert service.apply(goal, keap) == "goal achieved"


def test_a_call_keap_may_have_acted_on_is_never_repeated(world) -> None:  # type: ignore[no-untyped-def]
    service, keap, _, now = world
    goal = ContactGoal("u1", "app", "trial_started", "e1")
    keap.goal_error = KeapUnavailable("read timed out", 0)
    with pytest.raises(KeapUnavailable):
        service.apply(goal, keap)
    keap.goal_error = None
    with pytest.raises(NotReady):  # soon after: perhaps still in flight elsewhere, come back later
        service.apply(goal, keap)
    now[0] += CLAIM_STALE_S
    with pytest.raises(OutcomeUnknown, match="new event_id"):
        service.apply(goal, keap)
    assert keap.goals_achieved == []


def test_a_failure_keap_answered_releases_the_claim(world) -> None:  # type: ignore[no-untyped-def]
    service, keap, _, _ = world
    keap.goal_error = KeapUnavailable("HTTP 503", 503)
    with pytest.raises(KeapUnavailable):
        service.apply(ContactGoal("u1", "app", "trial_started", "e1"), keap)
    keap.goal_error = None
    assert service.apply(ContactGoal("u1", "app", "trial_started", "e1"), keap) == "goal achieved"


def test_a_note_is_written_once_as_the_connections_user_read_once(world) -> None:  # type: ignore[no-untyped-def]
    service, keap, _, _ = world
    keap.calls.clear()
    assert service.apply(ContactNote("u1", "Upgraded", "to Pro", "n1"), keap) == "note 1 written"
    assert service.apply(ContactNote("u1", "Upgraded", "to Pro", "n1"), keap).startswith("event n1 done already")
    assert service.apply(ContactNote("u1", "Renewed", "for a year", "n2"), keap) == "note 2 written"
    assert [n[1] for n in keap.notes] == ["1", "1"] and keap.calls.count("user_info") == 1


def test_a_note_for_a_contact_gone_from_keap_finds_it_again_by_email(world) -> None:  # type: ignore[no-untyped-def]
    service, keap, users, _ = world
    del keap.contacts[users.get("u1").contact_id]
    assert service.apply(ContactNote("u1", "t", "b", "n1"), keap) == "note 1 written"
    assert keap.notes[0][0] == users.get("u1").contact_id
