"""The effects of each message, with an in-memory Keap app and user records: existing contacts keep what
they have, results are read by meaning, stale ids heal, ids belong to one Keap app."""

from __future__ import annotations

import pytest

from keaplink.actions.service import ActionService
from keaplink.actions.tags import TagIds
from keaplink.contract.messages import ButtonPressed, ContactTag, SignedUp
from keaplink.errors import KeapRequestRejected, NotReady
from tests.unit.keap_fakes import FakeKeap, FakeUsers


@pytest.fixture
def world() -> tuple[ActionService, FakeKeap, FakeUsers]:
    users, keap = FakeUsers(), FakeKeap()
    return ActionService(users=users, tags=TagIds(users), button_tag="buttonpushed"), keap, users  # type: ignore[arg-type]


def test_a_new_signup_is_looked_up_then_created(world) -> None:  # type: ignore[no-untyped-def]
    service, keap, users = world
    assert service.apply(SignedUp("u1", "ada@example.com", "Ada"), keap) == "created"
    assert keap.calls == ["find_contact", "create_contact"]
    assert users.get("u1").contact_id == "1" and users.get("u1").tenant == keap.tenant


def test_an_existing_contact_keeps_everything_and_only_blank_names_are_filled(world) -> None:  # type: ignore[no-untyped-def]
    service, keap, users = world
    existing = keap.add_contact("ada.work@example.com", "ADA@example.com", given_name="Augusta")
    assert service.apply(SignedUp("u1", "ada@example.com"), keap) == "found"
    assert keap.calls == ["find_contact"]  # no write at all
    keap.calls.clear()
    assert service.apply(SignedUp("u1", "ada@example.com", "Ada"), keap) == "found"  # staff's name stays
    assert keap.calls == ["find_contact"]
    keap.calls.clear()
    assert service.apply(SignedUp("u1", "ada@example.com", "Ada", "Lovelace"), keap) == "updated"
    assert keap.calls == ["find_contact", "update_names"]
    contact = keap.contacts[existing.id]
    assert contact.emails == ("ada.work@example.com", "ADA@example.com")
    assert (contact.given_name, contact.family_name) == ("Augusta", "Lovelace")
    assert len(keap.contacts) == 1 and users.get("u1").contact_id == existing.id


def test_fill_blanks_writes_only_what_the_contact_lacks() -> None:
    from keaplink.actions.service import fill_blanks
    from keaplink.keap.client import Contact

    assert fill_blanks(Contact("1", given_name="A", family_name="B"), "X", "Y") is None
    assert fill_blanks(Contact("1", given_name="A"), "X", "Y") == (None, "Y")
    assert fill_blanks(Contact("1"), "X", None) == ("X", None)
    assert fill_blanks(Contact("1"), None, None) is None


def test_first_press_tags_once_and_later_presses_skip_keap(world) -> None:  # type: ignore[no-untyped-def]
    service, keap, users = world
    service.apply(SignedUp("u1", "ada@example.com"), keap)
    keap.calls.clear()
    assert service.apply(ButtonPressed("u1"), keap) == "tagged"
    assert keap.calls == ["find_tag_id", "create_tag", "apply_tag"]
    keap.calls.clear()
    assert service.apply(ButtonPressed("u1"), keap) == "already tagged"
    assert keap.calls == [] and users.get("u1").tags == {"buttonpushed"}


def test_a_contact_that_had_the_tag_at_signup_needs_no_call_at_its_first_press(world) -> None:  # type: ignore[no-untyped-def]
    service, keap, users = world
    keap.tags["buttonpushed"] = "7"
    keap.add_contact("ada@example.com", tag_ids=frozenset({"7"}))
    service.apply(SignedUp("u1", "ada@example.com"), keap)
    keap.calls.clear()
    assert service.apply(ButtonPressed("u1"), keap) == "already tagged in Keap"
    assert keap.calls == ["find_tag_id"] and users.get("u1").tags == {"buttonpushed"}


@pytest.mark.parametrize("answer", ["ALREADY_APPLIED", "DUPLICATE", "Already tagged", "ALREADY_EXISTS"])
def test_already_tagged_answers_are_done(world, answer: str) -> None:  # type: ignore[no-untyped-def]
    service, keap, users = world
    service.apply(SignedUp("u1", "ada@example.com"), keap)
    keap.apply_answer = answer
    assert service.apply(ButtonPressed("u1"), keap) == "already tagged in Keap"
    assert users.get("u1").tags == {"buttonpushed"}


def test_an_unclear_answer_is_verified_on_the_contact(world) -> None:  # type: ignore[no-untyped-def]
    service, keap, _ = world
    contact = keap.add_contact("ada@example.com")
    service.apply(SignedUp("u1", "ada@example.com"), keap)
    keap.tags["buttonpushed"] = "7"
    keap.contacts[contact.id] = contact.__class__(contact.id, contact.emails, tag_ids=frozenset({"7"}))
    keap.apply_answer = "FAILED"  # yet the contact has the tag
    assert service.apply(ButtonPressed("u1"), keap) == "already tagged in Keap"
    assert keap.calls[-2:] == ["apply_tag", "get_contact"]


def test_a_verified_refusal_is_raised_with_keaps_words(world) -> None:  # type: ignore[no-untyped-def]
    service, keap, users = world
    service.apply(SignedUp("u1", "ada@example.com"), keap)
    keap.apply_answer = "FAILED"
    with pytest.raises(KeapRequestRejected, match=r"FAILED.*does not have the tag"):
        service.apply(ButtonPressed("u1"), keap)
    assert users.get("u1").tags == frozenset()


def test_a_contact_deleted_in_keap_is_found_again_by_email(world) -> None:  # type: ignore[no-untyped-def]
    service, keap, users = world
    service.apply(SignedUp("u1", "ada@example.com"), keap)
    old = users.get("u1").contact_id
    del keap.contacts[old]  # deleted in Keap; the person signs up again elsewhere
    survivor = keap.add_contact("ada@example.com")
    assert service.apply(ButtonPressed("u1"), keap) == "tagged"
    assert users.get("u1").contact_id == survivor.id
    assert keap.contacts[survivor.id].tag_ids == {keap.tags["buttonpushed"]}


def test_a_tag_deleted_in_keap_is_created_again_and_the_cache_healed(world) -> None:  # type: ignore[no-untyped-def]
    service, keap, users = world
    service.apply(SignedUp("u1", "ada@example.com"), keap)
    service.apply(SignedUp("u2", "bob@example.com"), keap)
    service.apply(ButtonPressed("u1"), keap)
    old = keap.tags.pop("buttonpushed")  # deleted in Keap
    assert service.apply(ButtonPressed("u2"), keap) == "tagged"
    new = keap.tags["buttonpushed"]
    assert new != old and users.tag_cache[(keap.tenant, "buttonpushed")] == new


def test_ids_of_another_keap_app_are_not_used(world) -> None:  # type: ignore[no-untyped-def]
    service, keap, users = world
    service.apply(SignedUp("u1", "ada@example.com"), keap)
    service.apply(ButtonPressed("u1"), keap)
    other = FakeKeap(tenant="zz999.infusionsoft.com")  # the admin reconnected to another Keap app
    assert service.apply(ButtonPressed("u1"), other) == "tagged"  # tagged there too: a new contact
    [contact] = other.contacts.values()
    assert contact.emails == ("ada@example.com",) and users.get("u1").tenant == other.tenant
    assert users.tag_cache.keys() == {(keap.tenant, "buttonpushed"), (other.tenant, "buttonpushed")}


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
    service.apply(ContactTag("u1", "VIP; 2026"), keap)
    assert keap.tags["VIP; 2026"] in keap.contacts["1"].tag_ids


# --- tag applications sent together (one call per tag and 100 contacts) ----------------------------------
def prepared(service, keap, users, n: int, tag: str = "buttonpushed"):  # type: ignore[no-untyped-def]
    for i in range(n):
        service.apply(SignedUp(f"u{i}", f"user{i}@example.com"), keap)
    keap.tags.setdefault(tag, str(7 + len(keap.tags)))
    steps = [service.prepare(ButtonPressed(f"u{i}") if tag == "buttonpushed" else ContactTag(f"u{i}", tag), keap)
             for i in range(n)]
    keap.calls.clear()
    return steps


def test_applications_of_one_tag_go_out_in_one_call_per_100_contacts(world) -> None:  # type: ignore[no-untyped-def]
    service, keap, users = world
    steps = prepared(service, keap, users, 250)
    outcomes = service.apply_tags(steps, keap)
    assert outcomes == ["tagged"] * 250
    assert keap.calls == ["apply_tag"] * 3  # 100 + 100 + 50
    assert all(users.get(f"u{i}").tags == {"buttonpushed"} for i in range(250))


def test_each_application_settles_on_its_own_contacts_result(world) -> None:  # type: ignore[no-untyped-def]
    service, keap, users = world
    steps = prepared(service, keap, users, 3)
    gone = users.get("u1").contact_id
    del keap.contacts[gone]  # deleted in Keap: that one heals (found again by e-mail, created), the others done
    outcomes = service.apply_tags([*steps, steps[0]], keap)  # the same application twice: one contact id sent
    assert outcomes == ["tagged"] * 4
    assert keap.calls[0] == "apply_tag" and keap.calls.count("apply_tag") == 2  # the batch's, then the healed one
    assert users.get("u1").contact_id != gone


def test_a_tag_deleted_in_keap_is_healed_once_for_the_whole_call(world) -> None:  # type: ignore[no-untyped-def]
    service, keap, users = world
    steps = prepared(service, keap, users, 5)
    keap.tags.clear()  # deleted in Keap after the records were prepared
    assert service.apply_tags(steps, keap) == ["tagged"] * 5
    assert keap.calls == ["apply_tag", "tag_exists", "find_tag_id", "create_tag", "apply_tag"]


def test_an_error_of_a_call_belongs_to_its_applications_only(world) -> None:  # type: ignore[no-untyped-def]
    from keaplink.errors import KeapUnavailable

    service, keap, users = world
    steps = prepared(service, keap, users, 2) + prepared(service, keap, users, 0, tag="vip")
    vip = service.prepare(ContactTag("u0", "vip"), keap)
    original = keap.apply_tag

    def flaky(tag_id: str, contact_ids: list[str]) -> dict[str, str]:
        if tag_id == keap.tags["vip"]:
            raise KeapUnavailable("apply tag: HTTP 503", 503)
        return original(tag_id, contact_ids)

    keap.apply_tag = flaky  # type: ignore[method-assign]
    outcomes = service.apply_tags([*steps, vip], keap)
    assert outcomes[:2] == ["tagged", "tagged"] and isinstance(outcomes[2], KeapUnavailable)
    assert users.get("u0").tags == {"buttonpushed"}


def test_an_email_that_cannot_be_looked_up_exactly_is_never_scanned_for() -> None:
    from keaplink.keap.client import KeapClient

    class NoSession:
        tenant = "t"

        def request(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("no Keap call for an address that cannot be looked up exactly")

    from keaplink.errors import InvalidMessage

    with pytest.raises(InvalidMessage, match="cannot be looked up exactly"):
        KeapClient(NoSession()).find_contact_by_email("inf!@x.co")  # type: ignore[arg-type]


def test_consent_goes_with_a_new_contacts_address_and_nobody_is_opted_in_without_it(world) -> None:  # type: ignore[no-untyped-def]
    service, keap, _ = world
    assert service.apply(SignedUp("u1", "ada@example.com", consent="ticked: send me news"), keap) == "created"
    assert keap.calls == ["find_contact", "create_contact"] and keap.email_status["ada@example.com"] == "SINGLE_OPT_IN"
    keap.calls.clear()
    service.apply(SignedUp("u2", "bob@example.com"), keap)
    assert "opt_in" not in keap.calls and keap.email_status["bob@example.com"] == "NON_MARKETABLE"
    service.apply(SignedUp("u2", "bob@example.com"), keap)
    assert "opt_in" not in keap.calls


def test_consent_for_an_existing_contact_opts_its_address_in(world) -> None:  # type: ignore[no-untyped-def]
    service, keap, users = world
    keap.add_contact("ada@example.com")
    keap.email_status["ada@example.com"] = "UNENGAGED_NON_MARKETABLE"
    assert service.apply(SignedUp("u1", "ada@example.com", consent="yes please"), keap) == "found, opted in"
    assert keap.calls == ["find_contact", "opt_in"] and users.opt_statuses == {}


def test_an_unsubscribed_person_stays_unsubscribed_recorded_and_counted_not_an_error() -> None:
    from tests.unit.fakes import RecordingMetrics

    users, keap, metrics = FakeUsers(), FakeKeap(), RecordingMetrics()
    service = ActionService(users=users, tags=TagIds(users), button_tag="b", metrics=metrics)  # type: ignore[arg-type]
    keap.add_contact("ada@example.com")
    keap.email_status["ada@example.com"] = "LIST_UNSUBSCRIBE"
    outcome = service.apply(SignedUp("u1", "ada@example.com", consent="yes please"), keap)
    assert outcome.startswith("found, not opted in") and "LIST_UNSUBSCRIBE" in outcome
    assert keap.email_status["ada@example.com"] == "LIST_UNSUBSCRIBE"
    assert users.opt_statuses == {"u1": "LIST_UNSUBSCRIBE"}
    assert metrics.names == ["ConsentKeptOutByKeap"]


def test_opt_in_refused_by_keap_reads_the_status_and_raises_only_for_another_reason() -> None:
    from keaplink.keap.client import KeapClient
    from tests.unit.keap_fakes import answer

    class Scripted:
        tenant = "t"

        def __init__(self, *answers: object) -> None:
            self.answers, self.sent = list(answers), []  # type: ignore[var-annotated]

        def request(self, method: str, path: str, what: str, **kwargs: object) -> object:
            self.sent.append((method, path))
            got = self.answers.pop(0)
            if isinstance(got, Exception):
                raise got
            return got

    refused = KeapRequestRejected("cannot change", 400)
    unsubscribed = {"email": "a@x.io", "opted_in": False, "status": "LIST_UNSUBSCRIBE", "create_time": "t"}
    session = Scripted(refused, answer(200, unsubscribed))
    status = KeapClient(session).opt_in("a@x.io", "yes")  # type: ignore[arg-type]
    assert (status.opted_in, status.status) == (False, "LIST_UNSUBSCRIBE")
    path = "/v2/emailAddresses/a%40x.io/status"
    assert session.sent == [("PATCH", path), ("GET", path)]
    liftable = {**unsubscribed, "status": "NON_MARKETABLE"}
    with pytest.raises(KeapRequestRejected):
        KeapClient(Scripted(refused, answer(200, liftable))).opt_in("a@x.io", "yes")  # type: ignore[arg-type]


def test_untag_removes_the_tag_and_a_later_tag_applies_it_again(world) -> None:  # type: ignore[no-untyped-def]
    from keaplink.contract.messages import ContactUntag

    service, keap, users = world
    service.apply(SignedUp("u1", "ada@example.com"), keap)
    service.apply(ContactTag("u1", "trial"), keap)
    tag_id, [contact_id] = keap.tags["trial"], list(keap.contacts)
    keap.calls.clear()
    assert service.apply(ContactUntag("u1", "trial"), keap) == "untagged"
    assert keap.calls == ["remove_tag"] and tag_id not in keap.contacts[contact_id].tag_ids
    assert users.get("u1").tags == frozenset()
    keap.calls.clear()
    assert service.apply(ContactTag("u1", "trial"), keap) == "tagged"  # memory followed: applied again
    assert keap.calls == ["apply_tag"] and tag_id in keap.contacts[contact_id].tag_ids


def test_untag_of_a_tag_keap_never_had_creates_nothing(world) -> None:  # type: ignore[no-untyped-def]
    from keaplink.contract.messages import ContactUntag

    service, keap, _ = world
    service.apply(SignedUp("u1", "ada@example.com"), keap)
    keap.calls.clear()
    assert service.apply(ContactUntag("u1", "never"), keap) == "no such tag in Keap: nothing to remove"
    assert keap.calls == ["find_tag_id"] and keap.tags == {}


@pytest.mark.parametrize("ops", [("tag", "untag", "tag"), ("untag", "tag"), ("tag", "untag"), ("tag", "tag", "untag")])
def test_in_one_round_the_last_tag_or_untag_of_a_contact_decides(world, ops: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    from keaplink.contract.messages import ContactUntag

    service, keap, _ = world
    service.apply(SignedUp("u1", "ada@example.com"), keap)
    messages = [ContactTag("u1", "vip") if op == "tag" else ContactUntag("u1", "vip") for op in ops]
    keap.tags["vip"] = "7"
    pending = []
    for m in messages:  # prepared one after the other, as a batch does for one user
        step = service.prepare(m, keap)
        assert not isinstance(step, str)
        pending.append(step)
    keap.calls.clear()
    outcomes = service.apply_tags(pending, keap)
    final = "tagged" if ops[-1] == "tag" else "untagged"
    assert outcomes == [final if op == ops[-1] else "superseded by a later tag or untag of the batch" for op in ops]
    assert keap.calls == ["apply_tag" if ops[-1] == "tag" else "remove_tag"]  # one call
    [contact] = keap.contacts.values()
    assert ("7" in contact.tag_ids) == (ops[-1] == "tag")


def test_removals_of_one_tag_go_out_in_one_call_per_100_contacts(world) -> None:  # type: ignore[no-untyped-def]
    from keaplink.contract.messages import ContactUntag

    service, keap, _ = world
    keap.tags["vip"] = "7"
    for n in range(150):
        service.apply(SignedUp(f"u{n}", f"user{n}@example.com"), keap)
    pending = [service.prepare(ContactUntag(f"u{n}", "vip"), keap) for n in range(150)]
    keap.calls.clear()
    outcomes = service.apply_tags(pending, keap)  # type: ignore[arg-type]
    assert keap.calls == ["remove_tag", "remove_tag"] and set(outcomes) == {"untagged"}
