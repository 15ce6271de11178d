"""Keap as customers' CRMs really are, over HTTP against the sandbox (which checks every call against Keap's
v2 contract): contacts that exist before the signup, get merged or deleted; tags deleted in Keap; a
reconnect to another Keap app; tag names with filter syntax in them — and each answer Keap's contract
leaves open, in each of its plausible forms."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from keaplink import root
from keaplink_dev.local import flows
from keaplink_dev.local.handlers import load_handler
from keaplink_dev.local.moto_server import apply_env, restore_env
from keaplink_dev.local.sqs_poller import dlq_messages, drain, send

TAG = "buttonpushed"


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result: dict[str, Any] = load_handler("actions").lambda_handler(event, context)
    return result


def signup(user: str, email: str, **names: str) -> str:
    return json.dumps({"type": "user.signed_up", "user_id": user, "email": email, **names})


def press(user: str) -> str:
    return json.dumps({"type": "button.pressed", "user_id": user})


def tag(user: str, name: str) -> str:
    return json.dumps({"type": "contact.tag", "user_id": user, "tag": name})


def state(sandbox) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    result: dict[str, Any] = sandbox.control("GET", "state")
    return result


def tag_id(sandbox, name: str) -> str:  # type: ignore[no-untyped-def]
    [found] = [t["id"] for t in state(sandbox)["tags"] if t["name"] == name]
    return str(found)


def contact_with(sandbox, email: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    [found] = [c for c in state(sandbox)["contacts"] if email in {e["email"] for e in c.get("email_addresses", [])}]
    return found


def run(aws, *bodies: str) -> None:  # type: ignore[no-untyped-def]
    send(aws, *bodies)
    drain(aws, handler)
    assert dlq_messages(aws) == []


@pytest.fixture
def connected(aws, sandbox):  # type: ignore[no-untyped-def]
    flows.connect()
    return aws


def existing_customer(sandbox, **extra: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Ada, already in the customer's Keap: two e-mail addresses, a phone, names, the tag applied."""
    created: dict[str, Any] = sandbox.control("POST", "contacts", json={
        "email_addresses": [{"email": "ada@example.com", "field": "EMAIL1"},
                            {"email": "ada@work.example.com", "field": "EMAIL2"}],
        "phone_numbers": [{"number": "+1 555 0100", "field": "PHONE1"}],
        "given_name": "Augusta", "family_name": "King", "tag_names": [TAG, "newsletter"], **extra})
    return created


@pytest.mark.parametrize("already", ["SUCCESS", "ALREADY_APPLIED", "DUPLICATE"])
def test_an_existing_contact_signs_up_and_presses_and_keeps_everything(connected, sandbox, already: str) -> None:
    sandbox.configure(apply_tags_already_applied=already)
    before = existing_customer(sandbox)
    run(connected, signup("u1", "ADA@example.com"), press("u1"))
    [after] = state(sandbox)["contacts"]
    assert after["id"] == before["id"]
    assert [e["email"] for e in after["email_addresses"]] == ["ada@example.com", "ada@work.example.com"]
    assert after["phone_numbers"] == before["phone_numbers"]
    assert (after["given_name"], after["family_name"]) == ("Augusta", "King")
    assert set(after["tag_ids"]) == set(before["tag_ids"])
    assert root.user_store().get("u1").contact_id == before["id"]
    assert root.user_store().get("u1").tags == {TAG}
    writes = [r for r in sandbox.requests_log("/crm/rest") if r["method"] != "GET"]
    assert writes == []  # it had the tag when keaplink found it: not even an applyTags


def test_an_existing_contact_keeps_its_names(connected, sandbox) -> None:
    existing_customer(sandbox)
    run(connected, signup("u1", "ada@example.com", given_name="Ada", family_name="Byron"))
    [after] = state(sandbox)["contacts"]
    assert (after["given_name"], after["family_name"]) == ("Augusta", "King")  # the customer's, not the message's
    assert len(after["email_addresses"]) == 2 and after["phone_numbers"]
    writes = [r["method"] for r in sandbox.requests_log("/crm/rest") if r["method"] != "GET"]
    assert writes == []


def test_an_existing_contact_without_a_family_name_gets_only_that(connected, sandbox) -> None:
    existing_customer(sandbox, family_name=None)
    run(connected, signup("u1", "ada@example.com", given_name="Ada", family_name="Byron"))
    [after] = state(sandbox)["contacts"]
    assert (after["given_name"], after["family_name"]) == ("Augusta", "Byron")
    writes = [r["method"] for r in sandbox.requests_log("/crm/rest") if r["method"] != "GET"]
    assert writes == ["PATCH"]  # the blank name only, with update_mask: no upsert that would replace the lists


def test_a_press_with_an_email_before_the_signup_keeps_the_existing_contact(connected, sandbox) -> None:
    existing_customer(sandbox, tag_names=["newsletter"])
    run(connected, json.dumps({"type": "button.pressed", "user_id": "u9", "email": "ada@work.example.com"}))
    [after] = state(sandbox)["contacts"]
    assert len(after["email_addresses"]) == 2 and tag_id(sandbox, TAG) in after["tag_ids"]


def test_two_signups_racing_on_one_email_give_one_contact(connected, sandbox) -> None:
    run(connected, signup("u1", "ada@example.com"), signup("u2", "ada@example.com"))
    [contact] = state(sandbox)["contacts"]
    assert root.user_store().get("u1").contact_id == root.user_store().get("u2").contact_id == contact["id"]


@pytest.mark.parametrize("missing", ["CONTACT_DOES_NOT_EXIST", "NOT_FOUND", "FAILED", "http_404", "http_400"])
def test_a_contact_deleted_in_keap_heals_on_the_next_press(connected, sandbox, missing: str) -> None:
    sandbox.configure(apply_tags_missing_contact=missing)
    run(connected, signup("u1", "ada@example.com"))
    old = root.user_store().get("u1").contact_id
    sandbox.control("DELETE", f"contacts/{old}")
    run(connected, press("u1"))
    live = contact_with(sandbox, "ada@example.com")
    assert live["id"] != old and tag_id(sandbox, TAG) in live["tag_ids"]
    assert root.user_store().get("u1").contact_id == live["id"]


def test_a_contact_merged_in_keap_heals_to_the_survivor(connected, sandbox) -> None:
    survivor = existing_customer(sandbox, tag_names=[])
    run(connected, signup("u1", "ada.l@example.com"))
    merged_away = root.user_store().get("u1").contact_id
    sandbox.control("POST", "contacts/merge", json={"contact_id": survivor["id"], "duplicate_contact_id": merged_away})
    run(connected, press("u1"))
    [contact] = state(sandbox)["contacts"]
    assert contact["id"] == survivor["id"] and tag_id(sandbox, TAG) in contact["tag_ids"]
    assert {e["email"] for e in contact["email_addresses"]} >= {"ada@example.com", "ada.l@example.com"}
    assert root.user_store().get("u1").contact_id == survivor["id"]


def test_a_tag_deleted_in_keap_is_recreated_and_later_presses_use_the_new_id(connected, sandbox) -> None:
    run(connected, signup("u1", "a@example.com"), signup("u2", "b@example.com"), signup("u3", "c@example.com"))
    run(connected, press("u1"))
    old = tag_id(sandbox, TAG)
    sandbox.control("DELETE", f"tags/{old}")
    run(connected, press("u2"))
    new = tag_id(sandbox, TAG)
    assert new != old and new in contact_with(sandbox, "b@example.com")["tag_ids"]
    sandbox.control("DELETE", "requests")
    root.reset()  # a new container: the id comes from the healed DynamoDB cache, not from memory
    run(connected, press("u3"))
    assert [r["path"] for r in sandbox.requests_log("/crm/rest")] == [f"/crm/rest/v2/tags/{new}/contacts:applyTags"]


@pytest.mark.parametrize("existing", ["conflict_409", "bad_request_400", "existing_201"])
def test_a_tag_created_meanwhile_elsewhere_is_used(connected, sandbox, existing: str) -> None:
    """Keap's answer to a create of a name that exists is undocumented; each plausible one is tolerated."""
    sandbox.configure(tag_create_existing=existing)
    run(connected, signup("u1", "a@example.com"))
    sandbox.fault(path_prefix="/crm/rest/v2/tags", method="GET", status=200, count=1,
                  body={"tags": [], "next_page_token": ""})  # the lookup misses: created by another container
    sandbox.control("POST", "tags", json={"name": TAG})
    run(connected, press("u1"))
    assert [t["name"] for t in state(sandbox)["tags"]] == [TAG]
    assert tag_id(sandbox, TAG) in contact_with(sandbox, "a@example.com")["tag_ids"]


@pytest.mark.parametrize("split", ["semicolon", "semicolon_and_comma", "none"])
@pytest.mark.parametrize("name", ["VIP; 2026", "a,b", 'say "hi"', "Größe ≥ 10 ✓", "NONE", "50% off*"])
def test_any_tag_name_is_found_and_applied_across_pages(connected, sandbox, name: str, split: str) -> None:
    sandbox.configure(filter_value_split=split, default_page_size=1000)
    sandbox.control("POST", "tags", json={"prefix": "filler-", "count": 2500})  # the tag lands on the third page
    [wanted] = [t["id"] for t in sandbox.control("POST", "tags", json={"name": name})["tags"]]
    run(connected, signup("u1", "a@example.com"), tag("u1", name))
    assert str(wanted) in contact_with(sandbox, "a@example.com")["tag_ids"]
    assert len([t for t in state(sandbox)["tags"] if t["name"] == name]) == 1  # found, not created again


def test_a_refusal_verified_on_the_contact_is_dead_lettered_with_keaps_words(connected, sandbox) -> None:
    run(connected, signup("u1", "a@example.com"))
    contact = root.user_store().get("u1").contact_id
    sandbox.fault(path_prefix="/crm/rest/v2/tags/", method="POST", status=200, count=1,
                  body={"results": {contact: "TAG_APPLICATION_DENIED"}})
    send(connected, press("u1"))
    drain(connected, handler)
    [dead] = dlq_messages(connected)
    assert "TAG_APPLICATION_DENIED" in dead["MessageAttributes"]["keaplink-reason"]["StringValue"]
    assert root.user_store().get("u1").tags == frozenset()


@pytest.fixture
def other_keap_app() -> Iterator[Any]:
    from keap_sandbox.testing import start_sandbox
    from tests.conftest import SANDBOX_CLIENT, Sandbox

    handle = start_sandbox(throttle=False, validate_contract=True, tenant="zz999.infusionsoft.com", **SANDBOX_CLIENT)
    yield Sandbox(handle)
    handle.stop()


def test_after_a_reconnect_to_another_keap_app_no_old_id_is_used(connected, sandbox, other_keap_app) -> None:
    run(connected, signup("u1", "ada@example.com"), press("u1"))
    old_contact, old_tag = root.user_store().get("u1").contact_id, tag_id(sandbox, TAG)
    # In the other Keap app the same ids name other things: were an old id used, they would be tagged.
    other_keap_app.control("POST", "contacts", json={"email_addresses": [{"email": "someone@else.example"}],
                                                     "id": old_contact})
    [decoy] = other_keap_app.control("POST", "tags", json={"name": "decoy"})["tags"]
    assert str(decoy["id"]) == old_tag
    previous = apply_env({"KEAP_AUTHORIZE_URL": f"{other_keap_app.url}/app/oauth/authorize",
                          "KEAP_TOKEN_URL": f"{other_keap_app.url}/token",
                          "KEAP_API_URL": f"{other_keap_app.url}/crm/rest"})
    try:
        root.reset()
        assert flows.connect()["tenant"] == "zz999.infusionsoft.com"
        run(connected, press("u1"))
    finally:
        restore_env(previous)
        root.reset()
    ada = contact_with(other_keap_app, "ada@example.com")
    assert ada["id"] != old_contact and ada["tag_ids"] == [tag_id(other_keap_app, TAG)]
    assert contact_with(other_keap_app, "someone@else.example").get("tag_ids", []) == []
    assert f"/tags/{old_tag}/" not in json.dumps(other_keap_app.requests_log("/crm/rest"))
    assert other_keap_app.contract_violations() == []
    assert tag_id(sandbox, TAG) == old_tag  # the first app's ids are still its own
