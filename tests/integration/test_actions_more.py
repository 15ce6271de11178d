"""The actions beyond signup and tags (issue 20), over HTTP against moto and the Keap sandbox: e-mail
addresses keaplink can look up, names filled only where blank, consent, untag, goals, notes, custom fields."""

from __future__ import annotations

import json
from typing import Any

import pytest

from keaplink import root
from keaplink.errors import InvalidMessage
from keaplink_dev.local.sqs_poller import dlq_messages, drain, send
from tests.integration.test_actions import connected, contacts, handler, keap_api_calls, signup  # noqa: F401


def body(kind: str, user: str = "u1", **fields: Any) -> str:
    return json.dumps({"type": kind, "user_id": user, **fields})


def reasons(aws: Any) -> list[str]:
    return [m["MessageAttributes"]["keaplink-reason"]["StringValue"] for m in dlq_messages(aws)]


# --- e-mail addresses and existing contacts -------------------------------------------------------------
@pytest.mark.parametrize("email", ["o'brien@example.com", "inf!@x.co"])
def test_an_email_keap_cannot_look_up_exactly_is_refused_by_the_publisher_and_the_consumer(
        connected, sandbox, email: str) -> None:  # noqa: F811
    from keaplink.client.publish import publish_signup

    with pytest.raises(InvalidMessage, match="cannot match exactly"):
        publish_signup("u1", email, queue_url=connected.queue_url)
    send(connected, signup("u1", email))  # an application that does not use the publisher
    drain(connected, handler)
    [reason] = reasons(connected)
    assert "cannot match exactly" in reason and "Keap rejected" not in reason
    assert keap_api_calls(sandbox) == []  # never a scan of the customer's contacts


def test_a_signup_for_an_existing_contact_fills_blank_names_only(connected, sandbox) -> None:  # noqa: F811
    sandbox.control("POST", "contacts", json={
        "given_name": "Augusta", "email_addresses": [{"email": "ada.work@example.com", "field": "EMAIL1"},
                                                     {"email": "ada@example.com", "field": "EMAIL2"}]})
    sandbox.control("DELETE", "requests")
    send(connected, signup("u1", "ada@example.com", given_name="Mallory", family_name="Lovelace"))
    drain(connected, handler)
    [contact] = contacts(sandbox)
    assert (contact["given_name"], contact["family_name"]) == ("Augusta", "Lovelace")
    assert [e["email"] for e in contact["email_addresses"]] == ["ada.work@example.com", "ada@example.com"]
    send(connected, signup("u2", "ada@example.com", given_name="Eve", family_name="Intruder"))
    drain(connected, handler)
    [contact] = contacts(sandbox)
    assert (contact["given_name"], contact["family_name"]) == ("Augusta", "Lovelace")  # nobody renames it
    assert root.user_store().get("u2").contact_id == contact["id"]
    assert sandbox.contract_violations() == []


# --- consent -----------------------------------------------------------------------------------------------
def email_status(sandbox, email: str) -> str:  # type: ignore[no-untyped-def]
    return str(sandbox.control("GET", "state")["email_status"][email.casefold()]["status"])


def test_consent_on_a_new_contact_goes_with_its_address(connected, sandbox) -> None:  # noqa: F811
    send(connected, signup("u1", "ada@example.com", consent="ticked: send me news"),
         signup("u2", "bob@example.com"))
    drain(connected, handler)
    assert email_status(sandbox, "ada@example.com") == "SINGLE_OPT_IN"
    assert email_status(sandbox, "bob@example.com") == "NON_MARKETABLE"  # no consent: never opted in
    assert not [r for r in keap_api_calls(sandbox) if "emailAddresses" in r["path"]]
    assert sandbox.contract_violations() == []


def test_consent_for_an_existing_non_marketable_contact_opts_it_in(connected, sandbox) -> None:  # noqa: F811
    sandbox.control("POST", "contacts", json={"email_addresses": [{"email": "ada@example.com", "field": "EMAIL1"}]})
    sandbox.control("DELETE", "requests")
    send(connected, signup("u1", "ADA@example.com"))
    drain(connected, handler)
    assert email_status(sandbox, "ada@example.com") == "NON_MARKETABLE"
    send(connected, signup("u1", "ada@example.com", consent="ticked: send me news"))
    drain(connected, handler)
    assert email_status(sandbox, "ada@example.com") == "SINGLE_OPT_IN"
    assert [r["method"] for r in keap_api_calls(sandbox) if "emailAddresses" in r["path"]] == ["PATCH"]
    assert sandbox.contract_violations() == []


@pytest.mark.parametrize("refused", ["unchanged_200", "bad_request_400"])
def test_an_unsubscribed_person_stays_unsubscribed_and_is_not_retried(connected, sandbox, refused: str) -> None:  # noqa: F811
    sandbox.configure(opt_in_refused=refused)
    sandbox.control("POST", "contacts", json={"email_addresses": [{"email": "ada@example.com", "field": "EMAIL1"}]})
    sandbox.control("POST", "email_status", json={"email": "ada@example.com", "status": "LIST_UNSUBSCRIBE"})
    send(connected, signup("u1", "ada@example.com", consent="ticked: send me news"))
    drain(connected, handler)
    assert email_status(sandbox, "ada@example.com") == "LIST_UNSUBSCRIBE"
    assert dlq_messages(connected) == []  # done: recorded, not dead-lettered
    assert [r["method"] for r in keap_api_calls(sandbox) if "emailAddresses" in r["path"]] == \
        (["PATCH"] if refused == "unchanged_200" else ["PATCH", "GET"])  # once: not retried
    assert root.user_store()._table().get("USER#u1").opt_status == "LIST_UNSUBSCRIBE"
    assert sandbox.contract_violations() == []


# --- untag ---------------------------------------------------------------------------------------------------
def tagged(sandbox, tag: str = "vip") -> bool:  # type: ignore[no-untyped-def]
    state = sandbox.control("GET", "state")
    [contact] = state["contacts"]
    ids = {t["id"] for t in state["tags"] if t["name"] == tag}
    return bool(ids & set(contact["tag_ids"]))


def tag(user: str = "u1", name: str = "vip") -> str:
    return body("contact.tag", user, tag=name)


def untag(user: str = "u1", name: str = "vip") -> str:
    return body("contact.untag", user, tag=name)


@pytest.mark.parametrize("split", [
    [[tag(), untag(), tag()]],  # one batch
    [[tag()], [untag()], [tag()]],  # a batch each
    [[tag()], [untag(), tag()]],
    [[tag(), untag()], [tag()]],
])
def test_tag_untag_tag_ends_tagged_in_any_batch_split(connected, sandbox, split: list[list[str]]) -> None:  # noqa: F811
    send(connected, signup("u1", "ada@example.com"))
    drain(connected, handler)
    for batch in split:
        send(connected, *batch)
        drain(connected, handler)
    assert tagged(sandbox)
    assert root.user_store().get("u1").tags == {"vip"}
    send(connected, untag())
    drain(connected, handler)
    assert not tagged(sandbox) and root.user_store().get("u1").tags == frozenset()
    assert dlq_messages(connected) == [] and sandbox.contract_violations() == []


def test_a_tag_the_customer_applied_is_removed_and_applied_again(connected, sandbox) -> None:  # noqa: F811
    sandbox.control("POST", "contacts", json={"email_addresses": [{"email": "ada@example.com", "field": "EMAIL1"}],
                                              "tag_names": ["vip"]})
    send(connected, signup("u1", "ada@example.com"))
    drain(connected, handler)
    send(connected, tag())
    drain(connected, handler)  # tagged when found: no call
    send(connected, untag())
    drain(connected, handler)
    assert not tagged(sandbox)
    send(connected, tag())
    drain(connected, handler)
    assert tagged(sandbox)


def test_untags_of_one_tag_in_a_batch_are_one_remove_tags_call(connected, sandbox) -> None:  # noqa: F811
    send(connected, *[signup(f"u{n}", f"user{n}@example.com") for n in range(8)])
    drain(connected, handler)
    send(connected, *[tag(f"u{n}") for n in range(8)])
    drain(connected, handler)
    sandbox.control("DELETE", "requests")
    send(connected, *[untag(f"u{n}") for n in range(8)])
    drain(connected, handler, batch_size=10)
    removes = [r for r in keap_api_calls(sandbox) if r["path"].endswith(":removeTags")]
    assert len(removes) == 1
    assert all(not c["tag_ids"] for c in contacts(sandbox))


def test_untag_of_a_tag_keap_does_not_have_is_done_without_creating_it(connected, sandbox) -> None:  # noqa: F811
    send(connected, signup("u1", "ada@example.com"))
    drain(connected, handler)
    send(connected, untag(name="never made"))
    drain(connected, handler)
    assert sandbox.control("GET", "state")["tags"] == [] and dlq_messages(connected) == []


# --- goals and notes: exactly once per event_id ------------------------------------------------------------
def goal(event_id: str, call_name: str = "trial_started", user: str = "u1") -> str:
    return body("contact.goal", user, integration="myapp", call_name=call_name, event_id=event_id)


def note(event_id: str, title: str = "Upgraded", user: str = "u1") -> str:
    return body("contact.note", user, title=title, body="Moved to the Pro plan", event_id=event_id)


def test_goals_are_achieved_once_per_event_id_through_duplicates_and_redelivery(connected, sandbox) -> None:  # noqa: F811
    sandbox.control("POST", "goals", json={"integration": "myapp", "call_name": "trial_started"})
    send(connected, signup("u1", "ada@example.com"))
    drain(connected, handler)
    send(connected, goal("e1"), goal("e1"))  # a duplicate in the same batch
    drain(connected, handler)
    send(connected, goal("e1"))  # a redelivery, later
    drain(connected, handler)
    send(connected, goal("e2"))
    drain(connected, handler)
    achieved = sandbox.control("GET", "state")["goals_achieved"]
    assert len(achieved) == 2 and {a["call_name"] for a in achieved} == {"trial_started"}
    assert dlq_messages(connected) == [] and sandbox.contract_violations() == []


def test_an_unpublished_goal_is_dead_lettered_with_keaps_message_and_redriven_once_fixed(connected, sandbox) -> None:  # noqa: F811
    send(connected, signup("u1", "ada@example.com"))
    drain(connected, handler)
    send(connected, goal("e1", call_name="trial_ended"))
    drain(connected, handler)
    [dead] = dlq_messages(connected)
    reason = dead["MessageAttributes"]["keaplink-reason"]["StringValue"]
    assert "No goals were configured for myapp.trial_ended" in reason
    sandbox.control("POST", "goals", json={"integration": "myapp", "call_name": "trial_ended"})
    send(connected, dead["Body"], dead["Body"])  # redriven (twice, by mistake)
    drain(connected, handler)
    assert len(sandbox.control("GET", "state")["goals_achieved"]) == 1
    assert sandbox.contract_violations() == []


def test_notes_are_written_once_per_event_id_as_the_connections_user(connected, sandbox) -> None:  # noqa: F811
    send(connected, signup("u1", "ada@example.com"))
    drain(connected, handler)
    send(connected, note("n1"), note("n1"), note("n2", title="Renewed"))
    drain(connected, handler)
    send(connected, note("n1"))
    drain(connected, handler)
    notes = sandbox.control("GET", "state")["notes"]
    assert sorted(n["title"] for n in notes) == ["Renewed", "Upgraded"]
    assert {n["created_by_user_id"] for n in notes} == {"1"}
    [contact] = contacts(sandbox)
    assert {n["contact_id"] for n in notes} == {contact["id"]}
    user_info = [r for r in keap_api_calls(sandbox) if r["path"].endswith("/userinfo")]
    assert len(user_info) <= 2  # once per container (the connect flow may ask once too)
    assert dlq_messages(connected) == [] and sandbox.contract_violations() == []


def test_a_goal_before_the_signup_with_an_email_finds_the_contact(connected, sandbox) -> None:  # noqa: F811
    sandbox.control("POST", "goals", json={"integration": "myapp", "call_name": "trial_started"})
    send(connected, body("contact.goal", "u1", integration="myapp", call_name="trial_started", event_id="e1",
                         email="ada@example.com"))
    drain(connected, handler)
    [contact] = contacts(sandbox)
    assert [a["contact_id"] for a in sandbox.control("GET", "state")["goals_achieved"]] == [contact["id"]]


# --- custom fields -------------------------------------------------------------------------------------------
def fields_of(sandbox) -> dict[str, object]:  # type: ignore[no-untyped-def]
    state = sandbox.control("GET", "state")
    labels = {f["id"]: f["label"] for f in state["custom_fields"]}
    [contact] = state["contacts"]
    return {labels[v["id"]]: v["content"] for v in contact.get("custom_fields") or []}


def test_custom_fields_by_label_or_api_name_keep_the_contacts_other_fields(connected, sandbox) -> None:  # noqa: F811
    plan = sandbox.control("POST", "custom_fields", json={"label": "Plan name", "field_type": "DROPDOWN",
                                                          "options": ["Free", "Pro"]})
    staff = sandbox.control("POST", "custom_fields", json={"label": "Account manager", "field_type": "TEXT"})
    sandbox.control("POST", "custom_fields", json={"label": "Signup date", "field_type": "DATE"})
    sandbox.control("POST", "contacts", json={"email_addresses": [{"email": "ada@example.com", "field": "EMAIL1"}],
                                              "custom_fields": [{"id": staff["id"], "content": "Grace"}]})
    send(connected, signup("u1", "ada@example.com"))
    drain(connected, handler)
    send(connected, body("contact.fields", fields={"Plan name": "pro", "SignupDate": "2026-03-01"}))
    drain(connected, handler)
    assert fields_of(sandbox) == {"Account manager": "Grace", "Plan name": "Pro", "Signup date": "2026-03-01"}
    assert plan["field_name"] == "PlanName"
    send(connected, body("contact.fields", fields={"PlanName": "Free"}))  # the API name; the model is cached
    drain(connected, handler)
    assert fields_of(sandbox) == {"Account manager": "Grace", "Plan name": "Free", "Signup date": "2026-03-01"}
    models = [r for r in keap_api_calls(sandbox) if r["path"].endswith("/contacts/model")]
    assert len(models) == 1
    sandbox.control("POST", "custom_fields", json={"label": "Seats", "field_type": "WHOLE_NUMBER"})
    send(connected, body("contact.fields", fields={"Seats": 12}))  # added in Keap meanwhile: read again on the miss
    drain(connected, handler)
    assert fields_of(sandbox)["Seats"] == 12
    assert dlq_messages(connected) == [] and sandbox.contract_violations() == []


@pytest.mark.parametrize(("fields", "reason"), [
    ({"Colour": "red"}, "no custom field named 'Colour'"),
    ({"Seats": "twelve"}, "custom field 'Seats' (WHOLE_NUMBER) takes a whole number"),
    ({"Plan": "Gold"}, "custom field 'Plan' has no option 'Gold'"),
])
def test_an_unknown_field_or_a_wrong_value_is_dead_lettered_naming_the_field(
        connected, sandbox, fields: dict[str, object], reason: str) -> None:  # noqa: F811
    sandbox.control("POST", "custom_fields", json={"label": "Seats", "field_type": "WHOLE_NUMBER"})
    sandbox.control("POST", "custom_fields", json={"label": "Plan", "field_type": "RADIO", "options": ["Free"]})
    send(connected, signup("u1", "ada@example.com"))
    drain(connected, handler)
    send(connected, body("contact.fields", fields={"Plan": "Free", **fields}))
    drain(connected, handler)
    [why] = reasons(connected)
    assert reason in why
    assert not [r for r in keap_api_calls(sandbox) if r["method"] == "PATCH"]  # nothing written
