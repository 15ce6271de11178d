"""Contacts as Keap's v2 contract documents them: createContact 201/200 with duplicate_option, list
properties replacing on update, fields, filter, paging, updateContact with update_mask, deleteContact,
mergeContacts, and the customer's own changes through the control API."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from keap_sandbox.testing import SandboxControlError, SandboxHandle
from tests.sandbox.sandbox_helpers import Api

TWO_EMAILS = [
    {"email": "ada@example.com", "field": "EMAIL1"},
    {"email": "ada@work.example", "field": "EMAIL2"},
]


def _upsert(api: Api, body: dict[str, Any], **params: str) -> requests.Response:
    return api.post("/v2/contacts", body, params={"duplicate_option": "Email", **params})


def _patch(api: Api, contact_id: str, body: dict[str, Any], params: Any = None) -> requests.Response:
    return api.s.patch(f"{api.base}/v2/contacts/{contact_id}", params=params, json=body, timeout=5)


def _emails(contact: dict[str, Any]) -> list[str]:
    return [e["email"] for e in contact.get("email_addresses", [])]


# ---------------------------------------------------------------------------------------------- upsert
def test_upsert_answers_201_when_created_and_200_when_updated(api: Api, sb: SandboxHandle) -> None:
    created = _upsert(api, {"email_addresses": TWO_EMAILS[:1], "given_name": "Ada"})
    assert created.status_code == 201
    updated = _upsert(api, {"email_addresses": TWO_EMAILS[:1], "family_name": "Lovelace"})
    assert updated.status_code == 200
    assert updated.json()["id"] == created.json()["id"]
    assert updated.json()["update_time"] >= created.json()["update_time"]
    assert len(sb.control.contacts()) == 1


def test_list_properties_replace_on_update_scalars_not_sent_are_kept(api: Api, sb: SandboxHandle) -> None:
    """CreateUpdateContactRequest: "Any item not listed here will be removed if it already exists." An
    upsert by e-mail therefore drops the customer's other e-mail addresses unless they are sent too."""
    c = sb.control.create_contact(
        given_name="Ada",
        job_title="Analyst",
        email_addresses=TWO_EMAILS,
        phone_numbers=[{"number": "555-0100", "field": "PHONE1"}, {"number": "555-0101", "field": "PHONE2"}],
        fax_numbers=[{"number": "555-0199", "field": "FAX1"}],
        social_accounts=[{"type": "LINKED_IN", "name": "ada"}],
        tag_names=["customer"],
    )
    r = _upsert(api, {"email_addresses": [{"email": "ADA@example.com", "field": "EMAIL1"}], "family_name": "L"})
    assert r.status_code == 200 and r.json()["id"] == c["id"]
    after = r.json()
    assert _emails(after) == ["ADA@example.com"]  # EMAIL2 is gone
    assert after["given_name"] == "Ada" and after["job_title"] == "Analyst" and after["family_name"] == "L"
    # lists not sent are kept; an empty list removes them all
    assert len(after["phone_numbers"]) == 2 and after["fax_numbers"] and after["social_accounts"]
    assert after["tag_ids"] == c["tag_ids"]
    after = _upsert(api, {"email_addresses": after["email_addresses"], "phone_numbers": []}).json()
    assert after["phone_numbers"] == []
    after = _upsert(
        api, {"email_addresses": after["email_addresses"], "phone_numbers": [{"number": "555-0102"}]}
    ).json()
    assert after["phone_numbers"] == [{"number": "555-0102", "field": "PHONE1"}]  # a free slot is assigned


def test_scalars_not_sent_can_be_cleared_instead(api: Api, sb: SandboxHandle) -> None:
    """The spec is silent on an omitted given_name: ``upsert_omitted_scalars: clear`` is the other reading."""
    sb.control.configure(upsert_omitted_scalars="clear")
    sb.control.create_contact(given_name="Ada", family_name="Lovelace", email_addresses=TWO_EMAILS[:1])
    after = _upsert(api, {"email_addresses": TWO_EMAILS[:1], "family_name": "King"}).json()
    assert "given_name" not in after and after["family_name"] == "King"


def test_duplicate_matching(api: Api, sb: SandboxHandle) -> None:
    ada = sb.control.create_contact(given_name="Ada", email_addresses=TWO_EMAILS)
    # the body's primary e-mail matches any e-mail of a contact, case-insensitively (a sandbox choice)
    r = _upsert(api, {"email_addresses": [{"email": "Ada@Work.Example", "field": "EMAIL1"}]})
    assert r.status_code == 200 and r.json()["id"] == ada["id"]
    # EmailAndName also needs the names; a mismatch creates a new contact
    body = {"email_addresses": TWO_EMAILS[:1], "given_name": "Augusta"}
    r = api.post("/v2/contacts", body, params={"duplicate_option": "EmailAndName"})
    assert r.status_code == 201
    # without duplicate_option a new contact is always created
    assert api.post("/v2/contacts", {"email_addresses": TWO_EMAILS[:1]}).status_code == 201
    assert len(sb.control.contacts()) == 3


def test_contact_answer_has_only_documented_non_null_properties(api: Api) -> None:
    c = api.post("/v2/contacts", {"email_addresses": [{"email": "x@example.com"}]}).json()
    assert set(c) == {"id", "email_addresses", "tag_ids", "create_time", "update_time"}
    assert c["email_addresses"] == [{"email": "x@example.com", "field": "EMAIL1"}]
    company = {"id": "7", "company_name": "Analytical Engines"}
    c = api.post(
        "/v2/contacts",
        {"email_addresses": [{"email": "y@example.com"}], "company": company, "origin": {"ip_address": "10.0.0.1"}},
    ).json()
    assert c["company"] == company
    assert c["origin"]["ip_address"] == "10.0.0.1" and c["origin"]["date"].endswith("Z")


# ---------------------------------------------------------------------------------------------- fields
def test_fields_choose_what_the_answer_holds(api: Api, sb: SandboxHandle) -> None:
    c = sb.control.create_contact(given_name="Ada", email_addresses=TWO_EMAILS, tag_names=["vip"])
    r = api.get(f"/v2/contacts/{c['id']}", params={"fields": "id,email_addresses,tag_ids"})
    assert r.json() == {"id": c["id"], "email_addresses": c["email_addresses"], "tag_ids": c["tag_ids"]}
    # the spec marks no property as always present: not even id comes unasked
    assert api.get(f"/v2/contacts/{c['id']}", params={"fields": "given_name"}).json() == {"given_name": "Ada"}
    # on create/upsert and on lists too
    r = _upsert(api, {"email_addresses": TWO_EMAILS[:1]}, fields="id")
    assert r.json() == {"id": c["id"]}
    page = api.get("/v2/contacts", params={"fields": "id,given_name"}).json()
    assert page["contacts"] == [{"id": c["id"], "given_name": "Ada"}]
    # a property that is not set is simply absent
    assert api.get(f"/v2/contacts/{c['id']}", params={"fields": "id,middle_name"}).json() == {"id": c["id"]}
    r = api.get(f"/v2/contacts/{c['id']}", params={"fields": "id,shoe_size"})
    assert r.status_code == 400 and r.json()["message"] == "Invalid fields: shoe_size"


def test_answer_without_fields_is_configurable(api: Api, sb: SandboxHandle) -> None:
    c = sb.control.create_contact(given_name="Ada", email_addresses=TWO_EMAILS, tag_names=["vip"])
    assert "tag_ids" in api.get(f"/v2/contacts/{c['id']}").json()
    sb.control.configure(contact_default_fields=["id", "given_name", "family_name", "email_addresses"])
    assert set(api.get(f"/v2/contacts/{c['id']}").json()) == {"id", "given_name", "email_addresses"}
    assert "tag_ids" in api.get(f"/v2/contacts/{c['id']}", params={"fields": "tag_ids"}).json()


# ---------------------------------------------------------------------------------------------- filter
def _ids(api: Api, filter_: str, **params: Any) -> list[str] | int:
    r = api.get("/v2/contacts", params={"filter": filter_, **params})
    return [c["id"] for c in r.json()["contacts"]] if r.status_code == 200 else r.status_code


def test_filter_email_is_exact_and_case_insensitive(api: Api, sb: SandboxHandle) -> None:
    a = sb.control.create_contact(email_addresses=TWO_EMAILS, given_name="Ada")["id"]
    b = sb.control.create_contact(email_addresses=[{"email": "xada@example.com"}], given_name="Xena")["id"]
    assert _ids(api, "email==ada@example.com") == [a]
    assert _ids(api, "email==ADA@EXAMPLE.COM") == [a]
    assert _ids(api, "email==ada@work.example") == [a]  # any of the contact's e-mails
    assert _ids(api, "email==da@example.com") == []
    # documented wildcard: a trailing * is a prefix match
    assert _ids(api, "email==xada*") == [b]
    assert _ids(api, "given_name==A*") == [a]
    # ; separates terms, which must all match
    assert _ids(api, "email==ada*;given_name==Xena") == []
    assert _ids(api, "email==*;given_name==xena") == [b]
    assert _ids(api, "given_name==Ada;") == [a]  # a trailing ; as in Keap's own example


def test_filter_by_ids_and_contact_id(api: Api, sb: SandboxHandle) -> None:
    ids = [sb.control.create_contact(email_addresses=[{"email": f"c{i}@example.com"}])["id"] for i in range(4)]
    assert _ids(api, f"ids=={ids[0]},{ids[2]}") == [ids[0], ids[2]]
    assert _ids(api, f"contact_ids=={ids[3]}") == [ids[3]]
    assert _ids(api, f"contact_id>{ids[1]}") == ids[2:]
    assert _ids(api, f"contact_id<={ids[1]}") == ids[:2]


def test_filter_errors(api: Api) -> None:
    for bad in ("shoe_size==9", "email", "email>a", "given_name>=A"):
        r = api.get("/v2/contacts", params={"filter": bad})
        assert r.status_code == 400 and r.json()["status"] == "INVALID_ARGUMENT", bad
    r = api.get("/v2/contacts", params={"filter": "city==Chandler"})
    assert r.status_code == 400
    assert r.json()["message"] == "Filter field city is documented but not modelled by the sandbox"


def test_separator_inside_a_filter_value_is_configurable(api: Api, sb: SandboxHandle) -> None:
    """Keap documents no escaping: does ``given_name==A;B`` look for "A;B"?"""
    semi = sb.control.create_contact(given_name="A;B", email_addresses=[{"email": "s@example.com"}])["id"]
    comma = sb.control.create_contact(given_name="A,B", email_addresses=[{"email": "c@example.com"}])["id"]
    a = sb.control.create_contact(given_name="A", email_addresses=[{"email": "a@example.com"}])["id"]
    b = sb.control.create_contact(given_name="B", email_addresses=[{"email": "b@example.com"}])["id"]
    # default "semicolon": ; always separates terms ("B" is no term: 400); , is literal in a string field
    assert _ids(api, "given_name==A;B") == 400
    assert _ids(api, "given_name==A,B") == [comma]
    sb.control.configure(filter_value_split="none")
    assert _ids(api, "given_name==A;B") == [semi]
    assert _ids(api, "given_name==A;email==a@example.com") == [a]  # a real second term still splits
    sb.control.configure(filter_value_split="semicolon_and_comma")
    assert _ids(api, "given_name==A,B") == [a, b]


# ---------------------------------------------------------------------------------------------- paging
def test_paging_through_contacts(api: Api, sb: SandboxHandle) -> None:
    ids = [sb.control.create_contact(email_addresses=[{"email": f"p{i}@example.com"}])["id"] for i in range(25)]
    seen: list[str] = []
    tokens: list[str] = []
    params: dict[str, Any] = {"page_size": 10, "filter": "email==p*"}
    while True:
        body = api.get("/v2/contacts", params=params).json()
        seen += [c["id"] for c in body["contacts"]]
        token = body["next_page_token"]
        if not token:
            break
        tokens.append(token)
        params["page_token"] = token
    assert seen == ids and len(tokens) == 2
    assert not any(t.isdigit() for t in tokens)  # opaque, not an offset to compute with
    # a token belongs to its query
    r = api.get("/v2/contacts", params={"page_size": 10, "page_token": tokens[0]})
    assert r.status_code == 400 and r.json()["message"] == "page_token does not belong to this query"
    assert api.get("/v2/contacts", params={"page_token": "garbage"}).status_code == 400
    # page_size 0 (the spec's minimum) means the default page size
    assert len(api.get("/v2/contacts", params={"page_size": 0}).json()["contacts"]) == 25


def test_last_page_and_default_page_size_are_configurable(api: Api, sb: SandboxHandle) -> None:
    for i in range(3):
        sb.control.create_contact(email_addresses=[{"email": f"q{i}@example.com"}])
    assert api.get("/v2/contacts").json()["next_page_token"] == ""
    sb.control.configure(last_page_token="absent", default_page_size=2)
    first = api.get("/v2/contacts").json()
    assert len(first["contacts"]) == 2 and first["next_page_token"]
    last = api.get("/v2/contacts", params={"page_token": first["next_page_token"]}).json()
    assert len(last["contacts"]) == 1 and "next_page_token" not in last


# ---------------------------------------------------------------------------------------------- PATCH
def test_update_contact(api: Api, sb: SandboxHandle) -> None:
    c = sb.control.create_contact(given_name="Ada", family_name="Lovelace", email_addresses=TWO_EMAILS)
    # without update_mask: what is sent changes (lists replace), the rest stays
    r = _patch(api, c["id"], {"given_name": "Augusta", "email_addresses": TWO_EMAILS[1:]})
    assert r.status_code == 200
    assert r.json()["given_name"] == "Augusta" and r.json()["family_name"] == "Lovelace"
    assert _emails(r.json()) == ["ada@work.example"]
    assert r.json()["email_addresses"][0]["field"] == "EMAIL2"
    # with update_mask (an exploded array: update_mask=a&update_mask=b): only masked properties change,
    # and a masked property the body lacks is cleared
    r = _patch(
        api,
        c["id"],
        {"given_name": "Ada", "middle_name": "Byron"},
        params=[("update_mask", "middle_name"), ("update_mask", "family_name")],
    )
    after = r.json()
    assert after["given_name"] == "Augusta" and after["middle_name"] == "Byron" and "family_name" not in after
    assert _patch(api, "999", {"given_name": "X"}).status_code == 404
    r = _patch(api, c["id"], {"given_name": "x" * 40}, params={"fields": "given_name"})
    assert r.json() == {"given_name": "x" * 40}


@pytest.mark.contract_violations_expected
def test_update_mask_comma_form_is_off_spec(api: Api, sb: SandboxHandle) -> None:
    c = sb.control.create_contact(given_name="Ada", email_addresses=TWO_EMAILS)
    # the sandbox understands it, but the spec's update_mask is exploded (no explode: false)
    r = _patch(api, c["id"], {"given_name": "B", "family_name": "C"}, params={"update_mask": "given_name,family_name"})
    assert r.status_code == 200 and r.json()["family_name"] == "C"
    found = sb.control.contract_violations()
    assert len(found) == 1 and found[0]["message"].startswith(
        "query parameter update_mask[0]: 'given_name,family_name' is not one of"
    )


# ---------------------------------------------------------------------------------------------- delete, merge
def test_delete_contact(api: Api, sb: SandboxHandle) -> None:
    c = sb.control.create_contact(email_addresses=TWO_EMAILS)
    r = api.s.delete(f"{api.base}/v2/contacts/{c['id']}", timeout=5)
    assert r.status_code == 204 and r.content == b"" and "Content-Type" not in r.headers
    assert api.get(f"/v2/contacts/{c['id']}").status_code == 404
    assert api.s.delete(f"{api.base}/v2/contacts/{c['id']}", timeout=5).status_code == 404


def test_merge_contacts(api: Api, sb: SandboxHandle) -> None:
    """mergeContacts: the duplicate is merged into the primary (contact_id survives, the other id dies)."""
    primary = sb.control.create_contact(
        given_name="Ada", email_addresses=TWO_EMAILS[:1], tag_names=["a"], phone_numbers=[{"number": "1"}]
    )
    dup = sb.control.create_contact(
        given_name="Augusta",
        family_name="King",
        email_addresses=[{"email": "ada@example.com"}, {"email": "countess@example.com", "field": "EMAIL2"}],
        tag_names=["a", "b"],
    )
    body = {"contact_id": primary["id"], "duplicate_contact_id": dup["id"]}
    r = api.post("/v2/contacts:merge", body)
    assert r.status_code == 200
    merged = r.json()
    assert merged["id"] == primary["id"]
    assert merged["given_name"] == "Ada" and merged["family_name"] == "King"  # primary wins, gaps filled
    assert _emails(merged) == ["ada@example.com", "countess@example.com"]
    assert merged["tag_ids"] == sorted(set(primary["tag_ids"]) | set(dup["tag_ids"]), key=int)
    assert api.get(f"/v2/contacts/{dup['id']}").status_code == 404  # an id keaplink stored is now stale
    assert api.post("/v2/contacts:merge", body).status_code == 404
    same = {"contact_id": primary["id"], "duplicate_contact_id": primary["id"]}
    assert api.post("/v2/contacts:merge", same).status_code == 400
    r = api.post("/v2/contacts:merge", {**body, "duplicate_contact_id": primary["id"]}, params={"fields": "id"})
    assert r.status_code == 400


# ---------------------------------------------------------------------------------------------- the customer's CRM
def test_customer_changes_through_the_control_api(api: Api, sb: SandboxHandle) -> None:
    c = sb.control.create_contact(
        given_name="Ada",
        email_addresses=[*TWO_EMAILS, {"email": "ada@home.example"}],
        phone_numbers=[{"number": "555-0100", "type": "Work"}, {"number": "555-0101"}],
        tag_names=["vip", "newsletter"],
    )
    assert [e["field"] for e in c["email_addresses"]] == ["EMAIL1", "EMAIL2", "EMAIL3"]
    assert [p["field"] for p in c["phone_numbers"]] == ["PHONE1", "PHONE2"]
    assert sorted(t["name"] for t in sb.control.tags()) == ["newsletter", "vip"]
    assert api.get(f"/v2/contacts/{c['id']}").json() == c
    # the customer edits the contact in Keap
    c2 = sb.control.update_contact(c["id"], given_name=None, email_addresses=TWO_EMAILS[1:], tag_names=["vip"])
    assert "given_name" not in c2 and _emails(c2) == ["ada@work.example"] and len(c2["tag_ids"]) == 1
    # ... merges it away, or deletes it
    other = sb.control.create_contact(email_addresses=[{"email": "o@example.com"}], id="500")
    assert other["id"] == "500"
    assert sb.control.merge_contacts(other["id"], c["id"])["id"] == "500"
    assert api.get(f"/v2/contacts/{c['id']}").status_code == 404
    sb.control.delete_contact("500")
    assert sb.control.contacts() == []
    # the next REST-created contact does not collide with an id chosen through the control API
    assert api.post("/v2/contacts", {"email_addresses": TWO_EMAILS[:1]}).json()["id"] == "501"
    for bad in ({"shoe_size": 9}, {"email_addresses": "nope"}, {"tag_ids": ["42"]}):
        with pytest.raises(SandboxControlError) as exc:
            sb.control.create_contact(**bad)
        assert exc.value.status in (400, 404)
    with pytest.raises(SandboxControlError) as exc:
        sb.control.delete_contact("12345")
    assert exc.value.status == 404
