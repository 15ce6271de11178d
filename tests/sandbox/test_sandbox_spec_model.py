"""The sandbox's tables (keap_sandbox/crm.py) pinned to the vendored contract, so the model cannot drift
from it: property names and limits, list properties, fields, update_mask, filters, enums, page size,
and every operation the sandbox serves."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from keap_sandbox import crm

SPEC = Path(__file__).resolve().parents[2] / "sandbox" / "keap_sandbox" / "spec" / "keap-openapi-v2.yml"

#: Every (method, spec path) the sandbox serves under /crm/rest.
SERVED = [
    ("get", "/rest/v2/contacts"),
    ("post", "/rest/v2/contacts"),
    ("get", "/rest/v2/contacts/{contact_id}"),
    ("patch", "/rest/v2/contacts/{contact_id}"),
    ("delete", "/rest/v2/contacts/{contact_id}"),
    ("post", "/rest/v2/contacts:merge"),
    ("get", "/rest/v2/tags"),
    ("post", "/rest/v2/tags"),
    ("get", "/rest/v2/tags/{tag_id}"),
    ("delete", "/rest/v2/tags/{tag_id}"),
    ("post", "/rest/v2/tags/{tag_id}/contacts:applyTags"),
    ("post", "/rest/v2/tags/{tag_id}/contacts:removeTags"),
]


@cache
def spec() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 10x faster
    loaded: dict[str, Any] = yaml.load(SPEC.read_text(), Loader=loader)
    return loaded


def schema(name: str) -> dict[str, Any]:
    found: dict[str, Any] = spec()["components"]["schemas"][name]
    return found


def param(method: str, path: str, name: str) -> dict[str, Any]:
    for p in spec()["paths"][path][method]["parameters"]:
        if p["name"] == name:
            return dict(p)
    raise KeyError(name)


def backticked(text: str) -> list[str]:
    """Names listed as "- (Type) `name`" in a parameter description."""
    return re.findall(r"^\s*- \([^)]*\) `([a-z_0-9]+)`", text, flags=re.MULTILINE)


def test_every_served_operation_is_in_the_spec() -> None:
    for method, path in SERVED:
        assert method in spec()["paths"][path], (method, path)


def test_contact_request_properties() -> None:
    props = schema("CreateUpdateContactRequest")["properties"]
    scalars = {k: v.get("maxLength") for k, v in props.items() if v.get("type") == "string"}
    assert scalars == crm.CONTACT_SCALARS
    lists = {k for k, v in props.items() if v.get("type") == "array"}
    assert lists == set(crm.CONTACT_LISTS)
    for name in lists:  # the replace-on-update rule the sandbox models
        assert props[name]["description"].startswith("Any item not listed here will be removed if it already exists.")
    assert set(props) - set(scalars) - lists == set(crm.CONTACT_OBJECTS)
    assert set(crm.CONTACT_SERVER_FIELDS) <= set(schema("Contact")["properties"])


def test_fields_and_update_mask() -> None:
    for method, path in [
        ("get", "/rest/v2/contacts"),
        ("post", "/rest/v2/contacts"),
        ("get", "/rest/v2/contacts/{contact_id}"),
        ("patch", "/rest/v2/contacts/{contact_id}"),
        ("post", "/rest/v2/contacts:merge"),
    ]:
        fields = param(method, path, "fields")
        assert fields["explode"] is False and fields["schema"]["type"] == "array"
        listed = fields["description"].split("Available fields are:")[1].strip().rstrip(")")
        assert [f.strip() for f in listed.split(",")] == crm.CONTACT_FIELDS
    # "notes" may be asked for, but Contact has no such property
    assert set(crm.CONTACT_FIELDS) - set(schema("Contact")["properties"]) == {"notes"}
    mask = param("patch", "/rest/v2/contacts/{contact_id}", "update_mask")
    assert "explode" not in mask  # query arrays default to form + explode: update_mask=a&update_mask=b
    assert tuple(mask["schema"]["items"]["enum"]) == crm.UPDATE_MASK_FIELDS


def test_contact_filters() -> None:
    text = param("get", "/rest/v2/contacts", "filter")["description"]
    assert set(backticked(text)) == set(crm.CONTACT_FILTERS_DOCUMENTED)
    wildcards = set(re.findall(r"^\s*- \(String\) `([a-z_]+)` — supports (?:prefix )?wildcard", text, re.MULTILINE))
    assert set(crm.CONTACT_WILDCARD_FILTERS) <= wildcards
    assert "`contact_id` — supports comparison operators: `==`, `>`, `<`, `>=`, `<=`" in text
    assert set(crm.CONTACT_FILTERS_MODELLED) <= set(crm.CONTACT_FILTERS_DOCUMENTED)


def test_tag_filters_have_no_wildcard() -> None:
    text = param("get", "/rest/v2/tags", "filter")["description"]
    assert backticked(text) == list(crm.TAG_FILTERS)
    assert "wildcard" not in text.lower() and "*" not in text


def test_enums_and_limits() -> None:
    dup = param("post", "/rest/v2/contacts", "duplicate_option")["schema"]["enum"]
    assert tuple(dup) == crm.DUPLICATE_OPTIONS
    assert schema("CreateUpdateContactRequest")["properties"]["source_type"]["enum"] == crm.SOURCE_TYPES
    email_enum = schema("EmailAddressRequest")["properties"]["field"]["enum"]
    assert email_enum == ["EMAIL_FIELD_UNSPECIFIED", *crm.EMAIL_FIELDS]
    assert schema("PhoneNumber")["properties"]["field"]["enum"] == ["PHONE_NUMBER_FIELD_UNSPECIFIED", *crm.PHONE_FIELDS]
    assert schema("FaxNumber")["properties"]["field"]["enum"] == ["FAX_NUMBER_FIELD_UNSPECIFIED", *crm.FAX_FIELDS]
    assert schema("Address")["properties"]["field"]["enum"] == ["ADDRESS_FIELD_UNSPECIFIED", *crm.ADDRESS_FIELDS]
    assert set(crm.ADDRESS_KEYS) == set(schema("Address")["properties"])
    social = schema("SocialAccount")
    assert social["properties"]["type"]["enum"] == ["SOCIAL_ACCOUNT_TYPE_UNSPECIFIED", *crm.SOCIAL_TYPES]
    assert social["required"] == ["type"]
    assert "75 characters for EMAIL1 and 100 characters for EMAIL2 and EMAIL3" in (
        schema("EmailAddressRequest")["properties"]["email"]["description"]
    )
    assert crm.EMAIL_MAX == {"EMAIL1": 75, "EMAIL2": 100, "EMAIL3": 100}
    for path in ("/rest/v2/contacts", "/rest/v2/tags"):
        size = param("get", path, "page_size")["schema"]
        assert (size["minimum"], size["maximum"]) == (0, crm.MAX_PAGE_SIZE)
    assert "up to 255 characters will be saved" in schema("CreateUpdateTagRequest")["properties"]["name"]["description"]


def test_answer_shapes() -> None:
    assert set(schema("Error")["properties"]) == {"code", "message", "status", "details"}
    assert schema("Error")["properties"]["code"]["type"] == "integer"
    assert set(schema("ListContactsResponse")["properties"]) == {"contacts", "next_page_token"}
    assert set(schema("ListTagsResponse")["properties"]) == {"tags", "next_page_token"}
    assert schema("ApplyTagsResponse")["properties"]["results"]["additionalProperties"] == {"type": "string"}
    assert schema("ApplyRemoveTagRequest")["properties"]["contact_ids"]["uniqueItems"] is True
    assert schema("MergeContactRequest")["required"] == ["contact_id", "duplicate_contact_id"]
    create = spec()["paths"]["/rest/v2/contacts"]["post"]["responses"]
    assert {"200", "201"} <= set(create)  # 200: existing contact updated, 201: created
    assert "200" not in spec()["paths"]["/rest/v2/tags"]["post"]["responses"]  # so existing_200 is off-spec
    # no schema of the spec closes its objects: undeclared properties are the checker's own strictness
    assert "additionalProperties: false" not in SPEC.read_text()
    # and no operation documents 429 or the gateway's 502/503/504
    statuses = {s for item in spec()["paths"].values() for op in item.values() for s in op.get("responses", {})}
    assert statuses.isdisjoint({"429", "502", "503", "504"})
