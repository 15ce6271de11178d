"""The effects of each message, with in-memory Keap and user records."""

from __future__ import annotations

import pytest

from keaplink.actions.messages import ButtonPressed, ContactTag, SignedUp
from keaplink.actions.service import ActionService
from keaplink.actions.tags import TagIds
from keaplink.errors import KeapRequestRejected, KeapUnavailable, NotReady
from tests.unit.keap_fakes import FakeKeap, FakeUsers


@pytest.fixture
def world() -> tuple[ActionService, FakeKeap, FakeUsers]:
    users, keap = FakeUsers(), FakeKeap()
    return ActionService(users=users, tags=TagIds(users), button_tag="buttonpushed"), keap, users  # type: ignore[arg-type]


def test_signup_upserts_and_remembers_the_contact(world) -> None:  # type: ignore[no-untyped-def]
    service, keap, users = world
    assert service.apply(SignedUp("u1", "ada@example.com", "Ada"), keap) == "created"
    assert service.apply(SignedUp("u1", "ada@example.com", "Augusta"), keap) == "updated"
    assert users.get("u1").contact_id == "1" and keap.calls == ["upsert_contact", "upsert_contact"]


def test_first_press_tags_once_and_later_presses_skip_keap(world) -> None:  # type: ignore[no-untyped-def]
    service, keap, users = world
    service.apply(SignedUp("u1", "ada@example.com"), keap)
    keap.calls.clear()
    assert service.apply(ButtonPressed("u1"), keap) == "tagged"
    assert keap.calls == ["find_tag_id", "create_tag", "apply_tag"]
    keap.calls.clear()
    assert service.apply(ButtonPressed("u1"), keap) == "already tagged"
    assert keap.calls == [] and users.get("u1").tags == {"buttonpushed"}


def test_press_before_signup_waits_unless_it_carries_the_email(world) -> None:  # type: ignore[no-untyped-def]
    service, keap, users = world
    with pytest.raises(NotReady):
        service.apply(ButtonPressed("u1"), keap)
    assert keap.calls == []
    assert service.apply(ButtonPressed("u2", email="zoe@example.com"), keap) == "tagged"
    assert users.get("u2").contact_id is not None


def test_a_named_tag_is_applied(world) -> None:  # type: ignore[no-untyped-def]
    service, keap, _ = world
    service.apply(SignedUp("u1", "ada@example.com"), keap)
    service.apply(ContactTag("u1", "vip"), keap)
    assert (keap.tags["vip"], "1") in keap.applied


def test_a_tag_deleted_in_keap_is_looked_up_again_next_time(world) -> None:  # type: ignore[no-untyped-def]
    service, keap, users = world
    service.apply(SignedUp("u1", "ada@example.com"), keap)
    service.apply(SignedUp("u2", "bob@example.com"), keap)
    service.apply(ButtonPressed("u1"), keap)
    keap.tags.clear()  # deleted in Keap
    users.tag_cache.clear()
    with pytest.raises(KeapUnavailable):  # returned to the queue, not dead-lettered
        service.apply(ButtonPressed("u2"), keap)
    assert service.apply(ButtonPressed("u2"), keap) == "tagged"


def test_a_result_other_than_success_is_a_refusal(world) -> None:  # type: ignore[no-untyped-def]
    service, keap, users = world
    service.apply(SignedUp("u1", "ada@example.com"), keap)
    keap.apply_answer = "FAILED"
    with pytest.raises(KeapRequestRejected, match="FAILED"):
        service.apply(ButtonPressed("u1"), keap)
    assert users.get("u1").tags == frozenset()
