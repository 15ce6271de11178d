"""REST v2 behaviour (KEAP.md "REST API", checked against Keap's contract): contacts, tags, applyTags,
key auth, errors. Finer points of contacts and tags: test_sandbox_contacts.py, test_sandbox_tags.py."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from keap_sandbox.testing import SandboxHandle
from tests.sandbox.sandbox_helpers import Api


def _contact(email: str, given: str = "Ada", family: str = "Lovelace", field: str = "EMAIL1") -> dict[str, Any]:
    return {"email_addresses": [{"email": email, "field": field}], "given_name": given, "family_name": family}


def test_create_contact(api: Api) -> None:
    r = api.post("/v2/contacts", _contact("ada@example.com"), params={"duplicate_option": "Email"})
    assert r.status_code == 201
    c = r.json()
    assert c["id"] == "1"
    assert c["given_name"] == "Ada" and c["family_name"] == "Lovelace"
    assert c["email_addresses"] == [{"email": "ada@example.com", "field": "EMAIL1"}]
    assert c["tag_ids"] == []
    assert c["create_time"].endswith("Z") and c["update_time"]


def test_upsert_updates_existing_by_email_case_insensitive(api: Api, sb: SandboxHandle) -> None:
    first = api.post(
        "/v2/contacts?duplicate_option=Email",
        {
            "email_addresses": [
                {"email": "ada@example.com", "field": "EMAIL1"},
                {"email": "ada@work.example", "field": "EMAIL2"},
            ],
            "given_name": "Ada",
        },
    ).json()
    r = api.post("/v2/contacts?duplicate_option=Email", _contact("ADA@Example.com", given="Augusta"))
    assert r.status_code == 200
    c = r.json()
    assert c["id"] == first["id"]
    assert c["given_name"] == "Augusta"
    # email_addresses given on an update replaces the list
    assert c["email_addresses"] == [{"email": "ADA@Example.com", "field": "EMAIL1"}]
    assert len(sb.control.contacts()) == 1


def test_without_duplicate_option_always_creates(api: Api) -> None:
    a = api.post("/v2/contacts", _contact("x@example.com"))
    b = api.post("/v2/contacts", _contact("x@example.com"))
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["id"] != b.json()["id"]


def test_email_and_name_option(api: Api) -> None:
    a = api.post("/v2/contacts?duplicate_option=EmailAndName", _contact("y@example.com", given="A")).json()
    b = api.post("/v2/contacts?duplicate_option=EmailAndName", _contact("y@example.com", given="B"))
    assert b.status_code == 201 and b.json()["id"] != a["id"]
    c = api.post("/v2/contacts?duplicate_option=EmailAndName", _contact("y@example.com", given="a"))
    assert c.status_code == 200 and c.json()["id"] == a["id"]


def _assert_400(r: requests.Response) -> None:
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == 400 and body["status"] == "INVALID_ARGUMENT"
    assert body["message"] and body["details"] == []


def _violations(sb: SandboxHandle) -> list[str]:
    return [v["message"] for v in sb.control.contract_violations()]


@pytest.mark.contract_violations_expected
def test_contact_validation(api: Api, sb: SandboxHandle) -> None:
    # refused by Keap, yet within the contract's schema (the rule is in prose or not written down)
    _assert_400(api.post("/v2/contacts", {"given_name": "Nobody"}))  # "at least one item in email_addresses, ..."
    _assert_400(api.post("/v2/contacts", _contact("a" * 64 + "@example.com")))  # EMAIL1 > 75 chars
    _assert_400(api.post("/v2/contacts", _contact("not-an-email")))
    assert sb.control.contract_violations() == []
    # refused by Keap and off the contract: the checker names each
    _assert_400(api.post("/v2/contacts", _contact("a@example.com", given="x" * 41)))
    _assert_400(api.post("/v2/contacts", _contact("a@example.com", field="EMAIL9")))
    _assert_400(api.post("/v2/contacts?duplicate_option=Phone", _contact("a@example.com")))
    _assert_400(api.s.post(api.base + "/v2/contacts", data="{nope", timeout=5))
    found = _violations(sb)
    assert len(found) == 4
    assert "body.given_name: " in found[0] and "is too long" in found[0]
    assert "body.email_addresses[0].field: 'EMAIL9' is not one of" in found[1]
    assert "query parameter duplicate_option: 'Phone' is not one of" in found[2]
    assert "mimetype" in found[3]  # no Content-Type: application/json
    sb.control.clear_contract_violations()
    # boundaries are allowed
    assert api.post("/v2/contacts", _contact("a" * 63 + "@example.com", given="x" * 40)).status_code == 201
    # a phone number alone is enough
    assert api.post("/v2/contacts", {"phone_numbers": [{"number": "555", "field": "PHONE1"}]}).status_code == 201
    assert sb.control.contract_violations() == []


def test_get_contact(api: Api) -> None:
    c = api.post("/v2/contacts", _contact("g@example.com")).json()
    r = api.get(f"/v2/contacts/{c['id']}")
    assert r.status_code == 200 and r.json() == c
    r = api.get("/v2/contacts/999")
    assert r.status_code == 404
    assert r.json() == {"code": 404, "message": "Contact not found", "status": "NOT_FOUND", "details": []}


def test_list_contacts_with_filter_and_paging(api: Api) -> None:
    for i in range(5):
        api.post("/v2/contacts", _contact(f"p{i}@example.com"))
    r = api.get("/v2/contacts", params={"filter": "email==P3@example.com"})
    assert r.status_code == 200
    body = r.json()
    assert [c["email_addresses"][0]["email"] for c in body["contacts"]] == ["p3@example.com"]
    assert body["next_page_token"] == ""
    assert api.get("/v2/contacts?filter=email%3D%3Dnone%40example.com").json()["contacts"] == []
    page = api.get("/v2/contacts", params={"page_size": 2}).json()
    assert len(page["contacts"]) == 2 and page["next_page_token"]
    seen = [c["id"] for c in page["contacts"]]
    while page["next_page_token"]:
        page = api.get("/v2/contacts", params={"page_size": 2, "page_token": page["next_page_token"]}).json()
        seen += [c["id"] for c in page["contacts"]]
    assert seen == ["1", "2", "3", "4", "5"]
    _assert_400(api.get("/v2/contacts", params={"filter": "shoe_size==9"}))


def test_tags_create_search_conflict(api: Api) -> None:
    r = api.post("/v2/tags", {"name": "buttonpushed", "description": "Pushed the button"})
    assert r.status_code == 201
    tag = r.json()
    assert tag == {
        "id": tag["id"],
        "name": "buttonpushed",
        "description": "Pushed the button",
        "create_time": tag["create_time"],
        "update_time": tag["create_time"],
    }
    api.post("/v2/tags", {"name": "buttonpushed2"})
    r = api.get("/v2/tags?filter=name%3D%3Dbuttonpushed")
    assert r.status_code == 200
    assert r.json() == {"tags": [tag], "next_page_token": ""}
    assert api.get("/v2/tags", params={"filter": "name==missing"}).json()["tags"] == []
    assert len(api.get("/v2/tags").json()["tags"]) == 2
    dup = api.post("/v2/tags", {"name": "buttonpushed"})
    assert dup.status_code == 409
    assert dup.json() == {
        "code": 409,
        "message": "Tag with name already exists",
        "status": "ALREADY_EXISTS",
        "details": [],
    }
    _assert_400(api.post("/v2/tags", {"description": "no name"}))
    # the spec: "up to 255 characters will be saved" (tag_name_too_long: reject_400 refuses instead)
    long = api.post("/v2/tags", {"name": "t" * 256})
    assert long.status_code == 201 and long.json()["name"] == "t" * 255


def test_apply_tags(api: Api, sb: SandboxHandle) -> None:
    c = api.post("/v2/contacts", _contact("t@example.com")).json()
    tag = api.post("/v2/tags", {"name": "buttonpushed"}).json()
    path = f"/v2/tags/{tag['id']}/contacts:applyTags"
    r = api.post(path, {"contact_ids": [c["id"]]})
    assert r.status_code == 200
    assert r.json() == {"results": {c["id"]: "SUCCESS"}}
    assert api.get(f"/v2/contacts/{c['id']}").json()["tag_ids"] == [tag["id"]]
    # idempotent; an unknown contact is reported per contact (configurable, see test_sandbox_tags.py)
    r = api.post(path, {"contact_ids": [c["id"], "999"]})
    assert r.status_code == 200
    assert r.json() == {"results": {c["id"]: "SUCCESS", "999": "CONTACT_DOES_NOT_EXIST"}}
    assert api.get(f"/v2/contacts/{c['id']}").json()["tag_ids"] == [tag["id"]]
    # unknown tag
    r = api.post("/v2/tags/12345/contacts:applyTags", {"contact_ids": [c["id"]]})
    assert r.status_code == 404 and r.json()["status"] == "NOT_FOUND"
    _assert_400(api.post(path, {"contact_ids": []}))
    # the colon may arrive percent-encoded
    assert api.post(f"/v2/tags/{tag['id']}/contacts%3AapplyTags", {"contact_ids": [c["id"]]}).status_code == 200


@pytest.mark.contract_violations_expected
def test_unknown_route_and_method(api: Api, sb: SandboxHandle) -> None:
    r = api.get("/v2/nothing")
    assert r.status_code == 404 and r.json()["code"] == 404
    r = api.s.put(api.base + "/v2/contacts/1", json={}, timeout=5)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, PATCH, DELETE"
    r = requests.get(sb.url + "/no/such/thing", timeout=5)
    assert r.status_code == 404 and r.headers["Content-Type"] == "application/json"
    # neither is in Keap's contract: keaplink must only make documented calls
    assert [(v["kind"], v["method"], v["path"], v["message"]) for v in sb.control.contract_violations()] == [
        ("request", "GET", "/crm/rest/v2/nothing", "Path not found for https://api.keap.com/crm/rest/v2/nothing"),
        (
            "request",
            "PUT",
            "/crm/rest/v2/contacts/1",
            "Operation put not found for https://api.keap.com/crm/rest/v2/contacts/1",
        ),
    ]


@pytest.mark.contract_violations_expected
def test_missing_or_bogus_token_is_401_fault(sb: SandboxHandle) -> None:
    for api in (Api(sb), Api(sb, token="bogus"), Api(sb, key="bogus")):
        r = api.get("/v2/tags")
        assert r.status_code == 401
        assert r.json()["fault"]["detail"]["errorcode"] == "keymanagement.service.invalid_access_token"
    # no credential at all breaks the contract's security requirement; the 401 fault bodies are the
    # gateway's (gateway_error_shape: fault) and are not checked
    found = sb.control.contract_violations()
    assert [(v["kind"], v["message"]) for v in found] == [
        ("request", "Security not found. Schemes not valid for any requirement: [['oauth2']]")
    ]


def test_api_key_auth(sb: SandboxHandle) -> None:
    for kind in ("sak", "pat"):
        key = sb.control.create_key(kind)
        api = Api(sb, key=key)
        r = api.post("/v2/tags", {"name": f"via-{kind}"})
        assert r.status_code == 201
        assert r.headers["x-keap-product-spike-limit"] == "10ps"
        assert r.headers["x-keap-product-throttle-limit"] == "240"
        assert r.headers["x-keap-product-quota-limit"] == "30000"
    log = sb.control.requests()
    assert [e["auth"] for e in log] == ["key", "key"]
    sb.control.revoke(include_keys=True)
    assert Api(sb, key=key).get("/v2/tags").status_code == 401


def test_user_info_names_the_keap_app(sb: SandboxHandle, api: Api) -> None:
    """``GET /v2/oauth/connect/userinfo`` (getUserInfo): the spec's fields, and the tenant header."""
    r = api.get("/v2/oauth/connect/userinfo")
    assert r.status_code == 200 and r.headers["x-keap-tenant-id"] == "sb123.infusionsoft.com"
    body = r.json()
    assert set(body) <= {"email", "sub", "id", "keap_id", "family_name", "given_name", "middle_name",
                         "preferred_name", "is_admin", "tenant_id"}
    assert all(isinstance(v, str) for k, v in body.items() if k != "is_admin") and body["is_admin"] is True
    assert Api(sb, token="bogus").get("/v2/oauth/connect/userinfo").status_code == 401
