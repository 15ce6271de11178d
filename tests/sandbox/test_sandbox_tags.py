"""Tags as Keap's v2 contract documents them (listTags filter and paging, createTag, getTag, deleteTag,
applyTags/removeTags), each answer the contract leaves open as a setting, and the customer's changes."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from keap_sandbox.testing import SandboxControlError, SandboxHandle
from tests.sandbox.sandbox_helpers import Api


def _names(api: Api, filter_: str, **params: Any) -> list[str] | int:
    r = api.get("/v2/tags", params={"filter": filter_, **params})
    return [t["name"] for t in r.json()["tags"]] if r.status_code == 200 else r.status_code


def _contact(sb: SandboxHandle, email: str = "t@example.com", **extra: Any) -> str:
    return str(sb.control.create_contact(email_addresses=[{"email": email}], **extra)["id"])


# ---------------------------------------------------------------------------------------------- filter
def test_filter_name_is_exact_without_wildcards(api: Api, sb: SandboxHandle) -> None:
    """listTags documents ``==`` only and, unlike listContacts, no wildcard: ``*`` is a character."""
    for name in ("buttonpushed", "buttonpushed-2", "button*", "ButtonPushed"):
        sb.control.create_tag(name)
    assert _names(api, "name==buttonpushed") == ["buttonpushed"]
    assert _names(api, "name==button*") == ["button*"]
    assert _names(api, "name==button") == []
    assert api.get("/v2/tags", params={"filter": "name>b"}).status_code == 400
    assert api.get("/v2/tags", params={"filter": "colour==red"}).status_code == 400


def test_tag_name_case_is_configurable(api: Api, sb: SandboxHandle) -> None:
    sb.control.create_tag("ButtonPushed")
    assert _names(api, "name==buttonpushed") == []
    assert api.post("/v2/tags", {"name": "buttonpushed"}).status_code == 201  # another name
    sb.control.configure(tag_name_match="case_insensitive")
    assert _names(api, "name==BUTTONPUSHED") == ["ButtonPushed", "buttonpushed"]
    assert api.post("/v2/tags", {"name": "BUTTONPUSHED"}).status_code == 409


def test_other_documented_tag_filters(api: Api, sb: SandboxHandle) -> None:
    a = sb.control.create_tag("a", description="first", category={"id": "9"})
    sb.control.advance_clock(10)
    b = sb.control.create_tag("b")
    sb.control.advance_clock(10)
    c = sb.control.create_tag("c", description="third")
    assert _names(api, "description==NONE") == ["b"]
    assert _names(api, "description==third") == ["c"]
    assert _names(api, "category_id==NONE") == ["b", "c"]
    assert _names(api, "category_id==9") == ["a"]
    assert _names(api, f"tag_ids=={a['id']},{c['id']}") == ["a", "c"]
    assert _names(api, f"since_create_time=={b['create_time']}") == ["b", "c"]
    assert _names(api, f"until_create_time=={b['create_time']}") == ["a", "b"]
    assert _names(api, f"since_create_time=={b['create_time']};until_create_time=={b['create_time']};") == ["b"]
    assert _names(api, "name==a;description==first") == ["a"]
    assert [t["name"] for t in api.get("/v2/tags", params={"order_by": "name desc"}).json()["tags"]] == ["c", "b", "a"]


def test_separator_inside_a_tag_name_is_configurable(api: Api, sb: SandboxHandle) -> None:
    """A tag named "a;b" or "a,b": Keap documents no escaping for filter values."""
    for name in ("a;b", "a,b", "a", "b"):
        sb.control.create_tag(name)
    # default "semicolon": ; splits terms ("b" is no term: 400), , is literal in the name filter
    assert _names(api, "name==a;b") == 400
    assert _names(api, "name==a,b") == ["a,b"]
    sb.control.configure(filter_value_split="none")
    assert _names(api, "name==a;b") == ["a;b"]
    sb.control.configure(filter_value_split="semicolon_and_comma")
    assert _names(api, "name==a,b") == ["a", "b"]
    assert _names(api, "name==a;b") == 400


# ---------------------------------------------------------------------------------------------- paging
def test_paging_over_many_tags(api: Api, sb: SandboxHandle) -> None:
    created = sb.control.create_tags(2500, prefix="bulk-")
    assert len(created) == 2500 and created[0]["name"] == "bulk-0001"
    pages: list[int] = []
    seen: list[str] = []
    params: dict[str, Any] = {}
    while True:
        body = api.get("/v2/tags", params=params).json()
        pages.append(len(body["tags"]))
        seen += [t["id"] for t in body["tags"]]
        if not body["next_page_token"]:
            break
        params = {"page_token": body["next_page_token"]}
    assert pages == [1000, 1000, 500]  # the default and maximum page size is 1000
    assert seen == [t["id"] for t in created]
    # a smaller page size, and a filter that matches one tag among them
    body = api.get("/v2/tags", params={"page_size": 300}).json()
    assert len(body["tags"]) == 300 and body["next_page_token"]
    assert _names(api, "name==bulk-2499") == ["bulk-2499"]


# ---------------------------------------------------------------------------------------------- create
def test_create_tag_shape(api: Api) -> None:
    r = api.post("/v2/tags", {"name": "vip", "description": "Very", "category": {"id": "3"}})
    assert r.status_code == 201
    tag = r.json()
    assert tag == {
        "id": tag["id"],
        "name": "vip",
        "description": "Very",
        "category": {"id": "3"},
        "create_time": tag["create_time"],
        "update_time": tag["create_time"],
    }
    assert api.get(f"/v2/tags/{tag['id']}").json() == tag
    assert api.get("/v2/tags/999").status_code == 404


@pytest.mark.parametrize(
    ("mode", "status", "same_id", "count"),
    [
        ("conflict_409", 409, None, 1),
        ("bad_request_400", 400, None, 1),
        ("existing_200", 200, True, 1),
        ("existing_201", 201, True, 1),
        ("duplicate_201", 201, False, 2),
    ],
)
def test_create_tag_whose_name_exists(
    api: Api, sb: SandboxHandle, mode: str, status: int, same_id: bool | None, count: int
) -> None:
    first = api.post("/v2/tags", {"name": "vip"}).json()
    sb.control.configure(tag_create_existing=mode)
    r = api.post("/v2/tags", {"name": "vip"})
    assert r.status_code == status
    body = r.json()
    if same_id is None:
        assert set(body) == {"code", "message", "status", "details"}  # v2's Error
    else:
        assert (body["id"] == first["id"]) is same_id and body["name"] == "vip"
    assert len(api.get("/v2/tags", params={"filter": "name==vip"}).json()["tags"]) == count
    # createTag documents only 201: existing_200 is off-spec on purpose, and not reported
    assert sb.control.contract_violations() == []


def test_tag_name_over_255_characters(api: Api, sb: SandboxHandle) -> None:
    assert api.post("/v2/tags", {"name": "t" * 300}).json()["name"] == "t" * 255
    sb.control.configure(tag_name_too_long="reject_400")
    assert api.post("/v2/tags", {"name": "u" * 256}).status_code == 400
    assert api.post("/v2/tags", {"name": "u" * 255}).status_code == 201


@pytest.mark.contract_violations_expected
def test_create_tag_off_spec_bodies(api: Api, sb: SandboxHandle) -> None:
    assert api.post("/v2/tags", {"name": "x", "category": {}}).status_code == 400  # CategoryReference.id
    assert api.post("/v2/tags", {"name": 5}).status_code == 400
    assert [v["message"] for v in sb.control.contract_violations()] == [
        "body.category: 'id' is a required property",
        "body.name: 5 is not of type 'string'",
    ]


# ---------------------------------------------------------------------------------------------- apply/remove
def test_apply_tags_results_are_configurable(api: Api, sb: SandboxHandle) -> None:
    cid = _contact(sb)
    tag = sb.control.create_tag("vip")
    path = f"/v2/tags/{tag['id']}/contacts:applyTags"
    assert api.post(path, {"contact_ids": [cid, "999"]}).json() == {
        "results": {cid: "SUCCESS", "999": "CONTACT_DOES_NOT_EXIST"}
    }
    # a contact that has the tag already
    assert api.post(path, {"contact_ids": [cid]}).json() == {"results": {cid: "SUCCESS"}}
    for value in ("ALREADY_APPLIED", "DUPLICATE"):
        sb.control.configure(apply_tags_already_applied=value)
        assert api.post(path, {"contact_ids": [cid]}).json() == {"results": {cid: value}}
    # a contact id that does not exist
    for value in ("NOT_FOUND", "FAILED"):
        sb.control.configure(apply_tags_missing_contact=value)
        assert api.post(path, {"contact_ids": ["999"]}).json() == {"results": {"999": value}}
    # ... or the whole call fails and nothing is applied
    other_tag = sb.control.create_tag("other")
    other_path = f"/v2/tags/{other_tag['id']}/contacts:applyTags"
    for value, status in (("http_404", 404), ("http_400", 400)):
        sb.control.configure(apply_tags_missing_contact=value)
        r = api.post(other_path, {"contact_ids": [cid, "999"]})
        assert r.status_code == status and r.json()["message"] == "Contact not found: 999"
        assert api.get(f"/v2/contacts/{cid}").json()["tag_ids"] == [tag["id"]]
    assert sb.control.contract_violations() == []


@pytest.mark.contract_violations_expected
def test_apply_tags_off_spec_ids(api: Api, sb: SandboxHandle) -> None:
    cid = _contact(sb)
    tag = sb.control.create_tag("vip")
    path = f"/v2/tags/{tag['id']}/contacts:applyTags"
    # tolerated by the sandbox, reported by the checker
    assert api.post(path, {"contact_ids": [cid, cid]}).json() == {"results": {cid: "SUCCESS"}}
    assert api.post(path, {"contact_ids": [int(cid)]}).status_code == 200
    assert [v["message"] for v in sb.control.contract_violations()] == [
        f"body.contact_ids: ['{cid}', '{cid}'] has non-unique elements",
        f"body.contact_ids[0]: {cid} is not of type 'string'",
    ]


def test_remove_tags(api: Api, sb: SandboxHandle) -> None:
    tag = sb.control.create_tag("vip")
    a, b = _contact(sb, "a@example.com", tag_ids=[tag["id"]]), _contact(sb, "b@example.com")
    r = api.post(f"/v2/tags/{tag['id']}/contacts:removeTags", {"contact_ids": [a, b, "999"]})
    assert r.status_code == 204 and r.content == b""
    assert api.get(f"/v2/contacts/{a}").json()["tag_ids"] == []
    assert api.post("/v2/tags/999/contacts:removeTags", {"contact_ids": [a]}).status_code == 404


# ---------------------------------------------------------------------------------------------- delete, rename
def test_tag_deleted_or_renamed_by_the_customer(api: Api, sb: SandboxHandle) -> None:
    vip = sb.control.create_tag("vip")
    cid = _contact(sb, tag_ids=[vip["id"]])
    # renamed in Keap: the old name finds nothing, the id still works
    renamed = sb.control.update_tag(vip["id"], name="VIP customers")
    assert renamed["id"] == vip["id"] and renamed["update_time"] >= vip["update_time"]
    assert _names(api, "name==vip") == []
    assert _names(api, "name==VIP customers") == ["VIP customers"]
    r = api.post(f"/v2/tags/{vip['id']}/contacts:applyTags", {"contact_ids": [cid]})
    assert r.json() == {"results": {cid: "SUCCESS"}}
    # deleted in Keap: gone from contacts, applying it is a 404
    sb.control.delete_tag(vip["id"])
    assert api.get(f"/v2/contacts/{cid}").json()["tag_ids"] == []
    assert api.post(f"/v2/tags/{vip['id']}/contacts:applyTags", {"contact_ids": [cid]}).status_code == 404
    # and through REST (deleteTag: 204)
    other = sb.control.create_tag("other")
    r = api.s.delete(f"{api.base}/v2/tags/{other['id']}", timeout=5)
    assert r.status_code == 204
    assert api.s.delete(f"{api.base}/v2/tags/{other['id']}", timeout=5).status_code == 404
    # the control API refuses a second tag of the same name unless asked
    sb.control.create_tag("dup")
    with pytest.raises(SandboxControlError) as exc:
        sb.control.create_tag("dup")
    assert exc.value.status == 400
    assert sb.control.create_tag("dup", allow_duplicate=True)["name"] == "dup"


def test_bad_settings_rejected(sb: SandboxHandle) -> None:
    for bad in (
        {"tag_create_existing": "explode"},
        {"apply_tags_missing_contact": "http_500"},
        {"apply_tags_already_applied": "http_404"},
        {"apply_tags_already_applied": ""},
        {"filter_value_split": "comma"},
        {"last_page_token": None},
        {"default_page_size": 0},
        {"default_page_size": 1001},
        {"contact_default_fields": ["shoe_size"]},
        {"upsert_omitted_scalars": "forget"},
        {"tag_name_match": "fuzzy"},
    ):
        r = requests.post(sb.url + "/_sandbox/config", json=bad, timeout=5)
        assert r.status_code == 400, bad
