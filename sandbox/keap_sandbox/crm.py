"""Contacts and tags as Keap's v2 contract describes them: pure helpers, no locks, no HTTP.

Every name and limit here is taken from the vendored contract (``spec/keap-openapi-v2.yml``, schemas
``Contact``, ``CreateUpdateContactRequest``, ``Tag``, ``CreateUpdateTagRequest``, the ``filter``/``fields``
/``update_mask`` parameters of ``listContacts``, ``createContact``, ``updateContact`` and ``listTags``);
``tests/sandbox/test_sandbox_spec_model.py`` pins these tables to the spec, so they cannot drift.
The spec is not read at run time: the sandbox stays stdlib-only (PyYAML is not).

:class:`keap_sandbox.state.SandboxState` calls these under its lock. Errors are raised as
:class:`InvalidInput` (a 400 ``INVALID_ARGUMENT`` in v2's ``Error`` shape).
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]

# ---------------------------------------------------------------------------------------------- tables
#: ``fields`` query parameter: "Available fields are: ..." (createContact/getContact/listContacts/...).
#: ``notes`` is listed there although ``Contact`` has no such property.
CONTACT_FIELDS = [
    "addresses",
    "anniversary_date",
    "birth_date",
    "company",
    "contact_type",
    "create_time",
    "custom_fields",
    "email_addresses",
    "family_name",
    "fax_numbers",
    "given_name",
    "id",
    "job_title",
    "leadsource_id",
    "links",
    "middle_name",
    "notes",
    "origin",
    "owner_id",
    "phone_numbers",
    "preferred_locale",
    "preferred_name",
    "prefix",
    "referral_code",
    "score_value",
    "social_accounts",
    "source_type",
    "spouse_name",
    "suffix",
    "tag_ids",
    "time_zone",
    "update_time",
    "utm_parameters",
    "website",
    "account_id",
    "assistant_name",
    "assistant_phone",
    "billing_information",
    "created_by",
    "groups",
    "last_updated_by",
]

#: ``CreateUpdateContactRequest`` string properties and their ``maxLength`` (None: no limit given).
CONTACT_SCALARS: dict[str, int | None] = {
    "prefix": None,
    "suffix": None,
    "website": 100,
    "anniversary_date": None,
    "birth_date": None,
    "contact_type": None,
    "family_name": 40,
    "given_name": 40,
    "job_title": 255,
    "leadsource_id": None,
    "middle_name": 100,
    "owner_id": None,
    "preferred_locale": None,
    "preferred_name": 100,
    "referral_code": None,
    "source_type": None,
    "spouse_name": 100,
    "time_zone": None,
    "assistant_name": 20,
    "assistant_phone": 15,
    "billing_information": 100,
}

#: ``CreateUpdateContactRequest`` array properties: "Any item not listed here will be removed if it
#: already exists. If an empty array is specified, all existing values will be removed."
CONTACT_LISTS = ("addresses", "custom_fields", "email_addresses", "fax_numbers", "phone_numbers", "social_accounts")

#: ``CreateUpdateContactRequest`` object properties.
CONTACT_OBJECTS = ("company", "origin", "utm_parameters")

#: Set by Keap, never by a request.
CONTACT_SERVER_FIELDS = ("id", "create_time", "update_time", "tag_ids")

#: ``updateContact``'s ``update_mask`` enum: the same names (read-only ones are ignored when masked).
UPDATE_MASK_FIELDS = tuple(CONTACT_FIELDS)

SOURCE_TYPES = [
    "SOURCE_TYPE_UNSPECIFIED",
    "API",
    "APPOINTMENT",
    "FORM_API_HOSTED",
    "FORM_API_INTERNAL",
    "IMPORT",
    "INTERNAL_FORM",
    "LANDING_PAGE",
    "MANUAL",
    "OTHER",
    "UNKNOWN",
    "WEBFORM",
]
EMAIL_FIELDS = ("EMAIL1", "EMAIL2", "EMAIL3")
EMAIL_MAX = {"EMAIL1": 75, "EMAIL2": 100, "EMAIL3": 100}
PHONE_FIELDS = ("PHONE1", "PHONE2", "PHONE3", "PHONE4", "PHONE5")
PHONE_MAX = {"PHONE1": 40, "PHONE2": 40, "PHONE3": 40, "PHONE4": 20, "PHONE5": 20}
FAX_FIELDS = ("FAX1", "FAX2")
ADDRESS_FIELDS = ("BILLING", "SHIPPING", "OTHER")
SOCIAL_TYPES = ["FACEBOOK", "LINKED_IN", "TWITTER", "INSTAGRAM", "SNAPCHAT", "YOUTUBE", "PINTEREST"]
DUPLICATE_OPTIONS = ("Email", "EmailAndName", "EmailAndNameAndCompany")

#: ``listContacts`` ``filter``: the fields the sandbox models, and those documented but not modelled.
CONTACT_FILTERS_MODELLED = (
    "email",
    "given_name",
    "family_name",
    "middle_name",
    "ids",
    "contact_ids",
    "contact_id",
    "company_id",
    "start_update_time",
    "end_update_time",
)
CONTACT_FILTERS_DOCUMENTED = (
    *CONTACT_FILTERS_MODELLED,
    "phone_number",
    "phone_fields",
    "billing_address_line1",
    "billing_address_locality",
    "billing_address_region",
    "billing_address_postal_code",
    "billing_address_country_code",
    "shipping_address_line1",
    "shipping_address_locality",
    "shipping_address_region",
    "shipping_address_postal_code",
    "shipping_address_country_code",
    "other_address_line1",
    "other_address_locality",
    "other_address_region",
    "other_address_postal_code",
    "other_address_country_code",
    "city",
    "state",
    "website",
    "lead_source_name",
)
#: Contact filters documented to take a trailing ``*`` (prefix match).
CONTACT_WILDCARD_FILTERS = ("email", "given_name", "family_name", "middle_name")
#: Filters whose value is a comma-separated set.
SET_FILTERS = ("ids", "contact_ids", "tag_ids")
#: ``listTags`` ``filter``: all documented, all modelled; ``==`` only, no wildcard documented.
TAG_FILTERS = (
    "name",
    "description",
    "category_id",
    "tag_ids",
    "since_create_time",
    "until_create_time",
    "since_update_time",
    "until_update_time",
)
CONTACT_ORDER_FIELDS = ("id", "create_time", "email", "update_time")
TAG_ORDER_FIELDS = ("name", "create_time", "update_time")

TAG_NAME_MAX = 255
MAX_PAGE_SIZE = 1000

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
TERM_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(==|>=|<=|>|<)(.*)$", re.DOTALL)


class InvalidInput(ValueError):
    """The request is refused with 400 INVALID_ARGUMENT; the message is the answer's ``message``."""


# ---------------------------------------------------------------------------------------------- contacts
def _expect_str(value: Any, where: str, max_len: int | None = None) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{where} must be a string")
    if max_len is not None and len(value) > max_len:
        raise InvalidInput(f"{where} must be at most {max_len} characters")
    return value


def _expect_objects(value: Any, where: str) -> list[JSON]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise InvalidInput(f"{where} must be a list of objects")
    return [dict(v) for v in value]


def _slots(items: list[JSON], where: str, slots: tuple[str, ...], unspecified: str) -> list[JSON]:
    """Give every item a distinct ``field`` slot (an unspecified slot takes the first free one)."""
    used: set[str] = set()
    for item in items:
        slot = item.get("field")
        if slot is None or slot == unspecified:
            continue
        if slot not in slots:
            raise InvalidInput(f"{where}: invalid field {slot!r}")
        if slot in used:
            raise InvalidInput(f"{where}: duplicate field {slot}")
        used.add(slot)
    for item in items:
        if item.get("field") in (None, unspecified):
            free = [s for s in slots if s not in used]
            if not free:
                raise InvalidInput(f"{where}: more items than slots ({', '.join(slots)})")
            item["field"] = free[0]
            used.add(free[0])
    return sorted(items, key=lambda i: slots.index(i["field"]))


def _clean_emails(value: Any) -> list[JSON]:
    out: list[JSON] = []
    for i, item in enumerate(_expect_objects(value, "email_addresses")):
        email = _expect_str(item.get("email"), f"email_addresses[{i}].email").strip()
        if not EMAIL_RE.match(email):
            raise InvalidInput(f"Invalid email address: {email}")
        clean: JSON = {"email": email}
        if "field" in item:
            clean["field"] = item["field"]
        if "opt_in_reason" in item:
            clean["opt_in_reason"] = _expect_str(item["opt_in_reason"], f"email_addresses[{i}].opt_in_reason")
        out.append(clean)
    out = _slots(out, "email_addresses", EMAIL_FIELDS, "EMAIL_FIELD_UNSPECIFIED")
    for item in out:
        limit = EMAIL_MAX[item["field"]]
        if len(item["email"]) > limit:
            raise InvalidInput(f"{item['field']} must be at most {limit} characters")
    return out


def _clean_phones(value: Any) -> list[JSON]:
    out: list[JSON] = []
    for i, item in enumerate(_expect_objects(value, "phone_numbers")):
        keys = [k for k in ("number", "extension", "type") if k in item]
        clean = {k: _expect_str(item[k], f"phone_numbers[{i}].{k}") for k in keys}
        if "field" in item:
            clean["field"] = item["field"]
        out.append(clean)
    out = _slots(out, "phone_numbers", PHONE_FIELDS, "PHONE_NUMBER_FIELD_UNSPECIFIED")
    for item in out:
        if len(item.get("number", "")) > PHONE_MAX[item["field"]]:
            raise InvalidInput(f"{item['field']} must be at most {PHONE_MAX[item['field']]} characters")
    return out


def _clean_faxes(value: Any) -> list[JSON]:
    out = [
        {k: _expect_str(item[k], f"fax_numbers[{i}].{k}") for k in ("number", "type", "field") if k in item}
        for i, item in enumerate(_expect_objects(value, "fax_numbers"))
    ]
    return _slots(out, "fax_numbers", FAX_FIELDS, "FAX_NUMBER_FIELD_UNSPECIFIED")


ADDRESS_KEYS = [
    "line1",
    "line2",
    "locality",
    "region",
    "region_code",
    "country",
    "country_code",
    "postal_code",
    "zip_code",
    "zip_four",
    "field",
]


def _clean_addresses(value: Any) -> list[JSON]:
    out: list[JSON] = []
    for i, item in enumerate(_expect_objects(value, "addresses")):
        clean = {k: _expect_str(item[k], f"addresses[{i}].{k}") for k in ADDRESS_KEYS if k in item}
        # createContact: "country_code is required if region is specified"
        if ("region" in clean or "region_code" in clean) and not clean.get("country_code"):
            raise InvalidInput(f"addresses[{i}]: country_code is required if region is specified")
        out.append(clean)
    return _slots(out, "addresses", ADDRESS_FIELDS, "ADDRESS_FIELD_UNSPECIFIED")


def _clean_socials(value: Any) -> list[JSON]:
    out: list[JSON] = []
    for i, item in enumerate(_expect_objects(value, "social_accounts")):
        kind = item.get("type")  # required by SocialAccount
        if kind not in SOCIAL_TYPES:
            raise InvalidInput(f"social_accounts[{i}].type must be one of {', '.join(SOCIAL_TYPES)}")
        clean: JSON = {"type": kind}
        if "name" in item:
            clean["name"] = _expect_str(item["name"], f"social_accounts[{i}].name", 255)
        out.append(clean)
    return out


def _clean_custom_fields(value: Any) -> list[JSON]:
    out: list[JSON] = []
    for i, item in enumerate(_expect_objects(value, "custom_fields")):
        clean: JSON = {"id": _expect_str(item.get("id"), f"custom_fields[{i}].id")}
        if "content" in item:
            clean["content"] = item["content"]
        out.append(clean)
    return out


LIST_CLEANERS: dict[str, Callable[[Any], list[JSON]]] = {
    "addresses": _clean_addresses,
    "custom_fields": _clean_custom_fields,
    "email_addresses": _clean_emails,
    "fax_numbers": _clean_faxes,
    "phone_numbers": _clean_phones,
    "social_accounts": _clean_socials,
}


def _clean_object(key: str, value: Any, now: str) -> Any:
    if not isinstance(value, dict):
        raise InvalidInput(f"{key} must be an object")
    if key == "company":  # BasicCompany
        return {k: _expect_str(value[k], f"company.{k}") for k in ("id", "company_name") if k in value}
    if key == "origin":  # OriginRequest in, Origin out
        return {"date": now, **{k: _expect_str(value[k], f"origin.{k}") for k in ("ip_address",) if k in value}}
    # utm_parameters: CreateContactUtmPropertiesRequest in (keap_source_id required), ContactUtmResponse[] out
    source = _expect_str(value.get("keap_source_id"), "utm_parameters.keap_source_id")
    utm: JSON = {"id": 1, "keapSourceId": source, "dateCreated": now}
    for src, dst in (
        ("utm_source", "utmSource"),
        ("utm_medium", "utmMedium"),
        ("utm_term", "utmTerm"),
        ("utm_campaign", "utmCampaign"),
        ("utm_content", "utmContent"),
    ):
        if src in value:
            utm[dst] = _expect_str(value[src], f"utm_parameters.{src}")
    return [utm]


def clean_contact_request(body: Any, now: str) -> JSON:
    """A ``CreateUpdateContactRequest`` turned into stored contact fields (only those present).

    ``null`` for a property means "clear it" (not documented; the validator reports it). Unknown
    properties are ignored (the validator reports them).
    """
    if not isinstance(body, dict):
        raise InvalidInput("Request body must be a JSON object")
    clean: JSON = {}
    for key, value in body.items():
        if value is None and (key in CONTACT_SCALARS or key in CONTACT_LISTS or key in CONTACT_OBJECTS):
            clean[key] = None
        elif key in CONTACT_SCALARS:
            clean[key] = _expect_str(value, key, CONTACT_SCALARS[key])
            if key == "source_type" and value not in SOURCE_TYPES:
                raise InvalidInput(f"source_type must be one of {', '.join(SOURCE_TYPES)}")
        elif key in LIST_CLEANERS:
            clean[key] = LIST_CLEANERS[key](value)
        elif key in CONTACT_OBJECTS:
            clean[key] = _clean_object(key, value, now)
    return clean


def has_reachable_data(contact: JSON) -> bool:
    """createContact: "Contact must contain at least one item in email_addresses, phone_numbers, or addresses"."""
    return any(contact.get(k) for k in ("email_addresses", "phone_numbers", "addresses"))


def apply_changes(contact: JSON, changes: JSON) -> None:
    """Store ``changes`` (from :func:`clean_contact_request`): lists replace, ``None`` removes."""
    for key, value in changes.items():
        if value is None:
            contact.pop(key, None)
        else:
            contact[key] = value


def primary_email(contact: JSON) -> str | None:
    emails = contact.get("email_addresses") or []
    for item in emails:
        if item.get("field") == "EMAIL1":
            return str(item["email"])
    return str(emails[0]["email"]) if emails else None


def same_text(a: Any, b: Any) -> bool:
    return str(a or "").casefold() == str(b or "").casefold()


def matches_duplicate(contact: JSON, clean: JSON, option: str) -> bool:
    """``duplicate_option``: the body's primary e-mail among the contact's e-mails (case-insensitive);
    ``EmailAndName`` also equal given and family names, ``...AndCompany`` also the company."""
    email = primary_email(clean)
    if email is None or not any(same_text(e["email"], email) for e in contact.get("email_addresses", [])):
        return False
    if option in ("EmailAndName", "EmailAndNameAndCompany") and not all(
        same_text(contact.get(k), clean.get(k)) for k in ("given_name", "family_name")
    ):
        return False
    if option == "EmailAndNameAndCompany":
        mine, theirs = contact.get("company") or {}, clean.get("company") or {}
        if not all(same_text(mine.get(k), theirs.get(k)) for k in ("id", "company_name")):
            return False
    return True


def merge_into(primary: JSON, duplicate: JSON) -> None:
    """``mergeContacts``: the duplicate is merged into the primary (the primary's id survives).

    The spec says no more. The sandbox's guess: the primary's values win; scalars and objects the
    primary lacks are taken from the duplicate; list items of the duplicate go to free slots (items
    already present, or with no free slot, are dropped); tags are united.
    """
    for key in (*CONTACT_SCALARS, *CONTACT_OBJECTS):
        if key not in primary and key in duplicate:
            primary[key] = duplicate[key]
    slots = {
        "email_addresses": EMAIL_FIELDS,
        "phone_numbers": PHONE_FIELDS,
        "fax_numbers": FAX_FIELDS,
        "addresses": ADDRESS_FIELDS,
    }
    for key in CONTACT_LISTS:
        mine: list[JSON] = list(primary.get(key, []))
        for theirs in duplicate.get(key, []):
            if key == "email_addresses" and any(same_text(m["email"], theirs["email"]) for m in mine):
                continue
            if key in slots:
                free = [s for s in slots[key] if s not in {m.get("field") for m in mine}]
                if not free:
                    continue
                mine.append({**theirs, "field": free[0]})
            elif theirs not in mine:
                mine.append(theirs)
        if mine:
            primary[key] = sorted(mine, key=lambda m: slots[key].index(m["field"])) if key in slots else mine
    primary["tag_ids"] = sorted(set(primary.get("tag_ids", [])) | set(duplicate.get("tag_ids", [])), key=_id_key)


def parse_fields(raw: list[str]) -> list[str] | None:
    """``fields`` (``explode: false``: one comma-separated value; repeated values are joined too)."""
    if not raw:
        return None
    names = [n.strip() for value in raw for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONTACT_FIELDS]
    if unknown:
        raise InvalidInput(f"Invalid fields: {', '.join(unknown)}")
    return names


def project(contact: JSON, fields: Iterable[str] | None) -> JSON:
    """The contact as answered: only the asked ``fields`` (the spec marks no property as always
    present), or everything the sandbox holds when ``fields`` is None."""
    wanted = set(fields) if fields is not None else set(contact)
    copied: JSON = copy.deepcopy({k: v for k, v in contact.items() if k in wanted})
    return copied


def parse_update_mask(raw: list[str]) -> list[str] | None:
    """``update_mask`` (an array query parameter with default ``form``/``explode: true`` serialization:
    ``update_mask=a&update_mask=b``; a comma-joined value is accepted here but reported by the validator)."""
    if not raw:
        return None
    names = [n.strip() for value in raw for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in UPDATE_MASK_FIELDS]
    if unknown:
        raise InvalidInput(f"Invalid update_mask: {', '.join(unknown)}")
    return names


# ---------------------------------------------------------------------------------------------- tags
def clean_tag_request(body: Any, name_too_long: str) -> JSON:
    """``CreateUpdateTagRequest``: name (the spec: "up to 255 characters will be saved"), description,
    category (``CategoryReference``, ``id`` required). The spec requires none of them; the sandbox
    refuses a tag without a name."""
    if not isinstance(body, dict):
        raise InvalidInput("Request body must be a JSON object")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("name is required")
    if len(name) > TAG_NAME_MAX:
        if name_too_long == "reject_400":
            raise InvalidInput(f"name must be at most {TAG_NAME_MAX} characters")
        name = name[:TAG_NAME_MAX]
    clean: JSON = {"name": name}
    if body.get("description") is not None:
        clean["description"] = _expect_str(body["description"], "description")
    if body.get("category") is not None:
        category = body["category"]
        if not isinstance(category, dict):
            raise InvalidInput("category must be an object")
        clean["category"] = {"id": _expect_str(category.get("id"), "category.id")}
    return clean


# ---------------------------------------------------------------------------------------------- filters
@dataclass(frozen=True)
class Term:
    field: str
    op: str
    values: tuple[str, ...]  # alternatives: the term matches when any value matches


FILTER_SPLIT_MODES = ("semicolon", "semicolon_and_comma", "none")


def parse_filter(
    raw: str | None,
    documented: tuple[str, ...],
    modelled: tuple[str, ...],
    mode: str,
    operators: Callable[[str], tuple[str, ...]],
) -> list[Term]:
    """Parse ``field==value[;field==value...]``.

    ``mode`` says what a ``;`` or ``,`` inside a value means (Keap documents no escaping):
    ``semicolon`` - every ``;`` separates terms (so ``name==a;b`` is refused), a ``,`` separates values
    only in set fields (``ids==1,2``); ``semicolon_and_comma`` - also a ``,`` in any field separates
    alternative values; ``none`` - a ``;`` separates terms only when a known ``field<op>`` follows it,
    and a ``,`` only in set fields.
    """
    if not raw:
        return []
    terms: list[Term] = []
    for part in _split_terms(raw, documented, mode):
        if part == "":
            continue  # Keap's own example ends with ";"
        m = TERM_RE.match(part)
        if not m:
            raise InvalidInput(f"Invalid filter: {part}")
        field, op, value = m.group(1), m.group(2), m.group(3)
        if field not in documented:
            raise InvalidInput(f"Invalid filter field: {field}")
        if field not in modelled:
            raise InvalidInput(f"Filter field {field} is documented but not modelled by the sandbox")
        if op not in operators(field):
            raise InvalidInput(f"Invalid filter operator {op} for {field}")
        if field in SET_FILTERS or mode == "semicolon_and_comma":
            values = tuple(v for v in value.split(","))
        else:
            values = (value,)
        terms.append(Term(field, op, values))
    return terms


def _split_terms(raw: str, documented: tuple[str, ...], mode: str) -> list[str]:
    if mode != "none":
        return raw.split(";")
    parts: list[str] = []
    for piece in raw.split(";"):
        m = TERM_RE.match(piece)
        if parts and not (m and m.group(1) in documented):
            parts[-1] += ";" + piece
        else:
            parts.append(piece)
    return parts


def contact_operators(field: str) -> tuple[str, ...]:
    return ("==", ">", "<", ">=", "<=") if field == "contact_id" else ("==",)


def tag_operators(field: str) -> tuple[str, ...]:
    return ("==",)


def text_match(actual: str | None, wanted: str, wildcard: bool, case_insensitive: bool = True) -> bool:
    actual = actual or ""
    if case_insensitive:
        actual, wanted = actual.casefold(), wanted.casefold()
    if wildcard and wanted.endswith("*"):
        return actual.startswith(wanted[:-1])
    return actual == wanted


def _id_key(value: str) -> tuple[int, str]:
    return (int(value), "") if value.isdigit() else (1 << 62, value)


def _compare(left: int, op: str, right: int) -> bool:
    return {
        "==": left == right,
        ">": left > right,
        "<": left < right,
        ">=": left >= right,
        "<=": left <= right,
    }[op]


def contact_matches(contact: JSON, terms: list[Term]) -> bool:
    return all(any(_contact_term(contact, term, v) for v in term.values) for term in terms)


def _contact_term(contact: JSON, term: Term, value: str) -> bool:
    f = term.field
    if f == "email":
        return any(text_match(e["email"], value, True) for e in contact.get("email_addresses", []))
    if f in ("given_name", "family_name", "middle_name"):
        return text_match(contact.get(f), value, True)
    if f in ("ids", "contact_ids"):
        return bool(contact["id"] == value.strip())
    if f == "contact_id":
        try:
            return _compare(int(contact["id"]), term.op, int(value))
        except ValueError:
            raise InvalidInput(f"contact_id must be a number: {value}") from None
    if f == "company_id":
        return (contact.get("company") or {}).get("id") == value
    if f == "start_update_time":
        return str(contact["update_time"]) >= value
    if f == "end_update_time":
        return str(contact["update_time"]) <= value
    raise InvalidInput(f"Invalid filter field: {f}")  # pragma: no cover - parse_filter refuses it


def tag_matches(tag: JSON, terms: list[Term], name_case_insensitive: bool) -> bool:
    return all(any(_tag_term(tag, term, v, name_case_insensitive) for v in term.values) for term in terms)


def _tag_term(tag: JSON, term: Term, value: str, name_ci: bool) -> bool:
    f = term.field
    if f == "name":
        return text_match(tag["name"], value, wildcard=False, case_insensitive=name_ci)
    if f == "description":
        return "description" not in tag if value == "NONE" else tag.get("description") == value
    if f == "category_id":
        category = tag.get("category")
        return category is None if value == "NONE" else (category or {}).get("id") == value
    if f == "tag_ids":
        return bool(tag["id"] == value.strip())
    if f.endswith("_create_time") or f.endswith("_update_time"):
        stamp = str(tag["create_time" if "create" in f else "update_time"])
        return stamp >= value if f.startswith("since") else stamp <= value
    raise InvalidInput(f"Invalid filter field: {f}")  # pragma: no cover


def sort_items(items: list[JSON], order_by: str | None, allowed: tuple[str, ...]) -> list[JSON]:
    """``order_by``: ``<field>`` or ``<field> asc|desc``; default: by id."""
    if not order_by:
        return sorted(items, key=lambda i: _id_key(i["id"]))
    field, _, direction = order_by.strip().partition(" ")
    direction = direction.strip().lower() or "asc"
    if field not in allowed or direction not in ("asc", "desc"):
        raise InvalidInput(f"Invalid order_by: {order_by}")

    def key(item: JSON) -> tuple[Any, ...]:
        if field == "id":
            return (_id_key(item["id"]),)
        if field == "email":
            return (str(primary_email(item) or "").casefold(), _id_key(item["id"]))
        return (str(item.get(field) or "").casefold(), _id_key(item["id"]))

    return sorted(items, key=key, reverse=direction == "desc")


# ---------------------------------------------------------------------------------------------- paging
def _digest(scope: str) -> str:
    return hashlib.sha256(scope.encode()).hexdigest()[:12]


def encode_page_token(offset: int, scope: str) -> str:
    raw = json.dumps({"o": offset, "s": _digest(scope)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str, scope: str) -> int:
    """The offset in an opaque page token; a token from another query (filter/order) is refused."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        offset = int(data["o"])
        digest = str(data["s"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidInput("Invalid page_token") from None
    if digest != _digest(scope) or offset < 0:
        raise InvalidInput("page_token does not belong to this query")
    return offset


def page_size(raw: str | None, default: int) -> int:
    """``page_size``: integer, ``minimum: 0``, ``maximum: 1000``; 0 or absent means the default."""
    if raw is None or raw == "":
        return default
    try:
        size = int(raw)
    except ValueError:
        raise InvalidInput("Invalid page_size") from None
    if size < 0:
        raise InvalidInput("Invalid page_size")
    return min(size or default, MAX_PAGE_SIZE)


def page(
    key: str,
    items: list[JSON],
    size: int,
    offset: int,
    scope: str,
    last_token: str,
) -> JSON:
    """One page in the ``List*Response`` shape: ``{key: [...], "next_page_token": "..."}``; on the
    last page the token is ``""`` (``last_token == "empty"``) or absent (``"absent"``)."""
    chunk = items[offset : offset + size]
    body: JSON = {key: chunk}
    nxt = offset + size
    if nxt < len(items):
        body["next_page_token"] = encode_page_token(nxt, scope)
    elif last_token == "empty":
        body["next_page_token"] = ""
    return body
