"""The Keap REST v2 calls keaplink makes, each one documented in Keap's published contract
(``sandbox/keap_sandbox/spec/keap-openapi-v2.yml``) and each one request through a session (lists: one per
page).

Nothing here writes a list field of an existing contact: Keap replaces list fields on update ("any item not
listed here will be removed"), so contacts are looked up first and only created when absent, and an
existing contact's names are changed with ``update_mask``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from keaplink.errors import InvalidMessage, KeapRequestRejected
from keaplink.keap.http import parse_body

if TYPE_CHECKING:
    from keaplink.keap.session import KeapSession

CONTACT_FIELDS = "id,email_addresses,given_name,family_name,tag_ids"
MAX_PAGES = 500  # a guard against a page token that never ends, not a limit anyone should meet
# Keap documents `;` as the separator of filter terms, `,` inside list values, `*` as a wildcard and the
# operators `==` `<` `>`, and no escaping. A value holding one of these is never put into a filter: it is
# matched here instead, over every page of a broader query.
FILTER_SPECIAL = frozenset(";,*=<>!\"'\\%")


def filter_safe(value: str) -> bool:
    """Whether ``value`` can stand in a Keap ``filter`` as itself (pure)."""
    return bool(value) and value == value.strip() and not FILTER_SPECIAL.intersection(value) \
        and value.upper() != "NONE"  # NONE is the documented "field is empty" value


@dataclass(frozen=True)
class Contact:
    id: str
    emails: tuple[str, ...] = ()
    given_name: str | None = None
    family_name: str | None = None
    tag_ids: frozenset[str] = frozenset()

    @classmethod
    def from_keap(cls, body: Any, what: str, status: int) -> Contact:
        if not isinstance(body, dict) or not body.get("id"):
            raise KeapRequestRejected(f"{what}: answer without a contact id", status)
        return cls(
            id=str(body["id"]),
            emails=tuple(str(e.get("email", "")) for e in body.get("email_addresses") or [] if isinstance(e, dict)),
            given_name=body.get("given_name") or None,
            family_name=body.get("family_name") or None,
            tag_ids=frozenset(str(t) for t in body.get("tag_ids") or []),
        )

    def has_email(self, email: str) -> bool:
        return email.casefold() in (e.casefold() for e in self.emails)


#: updateEmailAddressOptStatus lifts only these states ("Unengaged Marketable", "Unengaged Non-Marketable",
#: "Non-Marketable", "Opt-Out: Manual"); any other — an unsubscribe, a bounce, spam — stays as it is.
LIFTED_BY_OPT_IN = frozenset({"UNENGAGED_MARKETABLE", "UNENGAGED_NON_MARKETABLE", "NON_MARKETABLE", "MANUAL"})


@dataclass(frozen=True)
class EmailStatus:
    """``RestEmailAddressStatus``: whether Keap may send marketing to the address, and its state."""

    email: str
    opted_in: bool
    status: str

    @classmethod
    def from_keap(cls, body: Any, email: str) -> EmailStatus:
        body = body if isinstance(body, dict) else {}
        return cls(str(body.get("email") or email), body.get("opted_in") is True, str(body.get("status") or ""))


class KeapClient:
    def __init__(self, session: KeapSession) -> None:
        self.session = session

    @property
    def tenant(self) -> str | None:
        """The Keap app the session's credential belongs to: ids are only valid within it."""
        return self.session.tenant

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        return parse_body(self.session.request(method, path, what, **kwargs))

    def _pages(self, path: str, what: str, key: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every item of a listing, following ``next_page_token`` to the end."""
        token: str | None = None
        for _ in range(MAX_PAGES):
            body = self._call("GET", path, what, params={**params, **({"page_token": token} if token else {})})
            body = body if isinstance(body, dict) else {}
            yield from (item for item in body.get(key) or [] if isinstance(item, dict))
            following = body.get("next_page_token") or None
            if following is None or following == token:
                return
            token = str(following)

    # --- contacts -----------------------------------------------------------------------------------
    def find_contact_by_email(self, email: str) -> Contact | None:
        """The contact holding ``email`` in any of its e-mail fields (the oldest if several), or None. An address
        that cannot stand in a filter as itself is refused (:class:`InvalidMessage`): never a prefix scan of the
        customer's contacts (the message contract refuses such addresses before they get here)."""
        if not filter_safe(email):
            raise InvalidMessage(f"the e-mail address {email!r} cannot be looked up exactly in Keap")
        params = {"filter": f"email=={email}", "fields": CONTACT_FIELDS, "page_size": 100}
        matches = [Contact.from_keap(c, "find contact", 200) for c in self._pages("/v2/contacts", "find contact",
                                                                                  "contacts", params)]
        exact = sorted((c for c in matches if c.has_email(email)), key=lambda c: (len(c.id), c.id))
        return exact[0] if exact else None

    def create_contact(self, email: str, given_name: str | None, family_name: str | None,
                       opt_in_reason: str | None = None) -> tuple[Contact, bool]:
        """Create a contact for an e-mail no contact holds; returns it and whether Keap created it.

        ``duplicate_option=Email``: two signups racing on one e-mail still give one contact (the second
        request finds the first's contact, whose only e-mail is this one). ``opt_in_reason``: the person's
        consent, sent with the address (without it Keap makes the contact non-marketable).
        """
        address: dict[str, Any] = {"email": email, "field": "EMAIL1"}
        if opt_in_reason:
            address["opt_in_reason"] = opt_in_reason
        body: dict[str, Any] = {"email_addresses": [address]}
        if given_name:
            body["given_name"] = given_name
        if family_name:
            body["family_name"] = family_name
        response = self.session.request("POST", "/v2/contacts", "create contact", json=body,
                                        params={"duplicate_option": "Email", "fields": CONTACT_FIELDS})
        return Contact.from_keap(parse_body(response), "create contact", response.status_code), \
            response.status_code == 201

    def update_names(self, contact_id: str, given_name: str | None, family_name: str | None) -> None:
        """Set the names the message carries, and nothing else (``update_mask``)."""
        names = {k: v for k, v in (("given_name", given_name), ("family_name", family_name)) if v}
        if names:
            self._call("PATCH", f"/v2/contacts/{quote(contact_id, safe='')}", "update contact", json=names,
                       params={"update_mask": sorted(names), "fields": "id"})

    def opt_in(self, email: str, reason: str) -> EmailStatus:
        """Opt an address in with the person's reason (``updateEmailAddressOptStatus``); Keap's status after it.
        Keap keeps an unsubscribed address as it is: answered with the unchanged status, or refused — then
        the address's status (``getEmailAddressStatus``) is the answer, unless it is one Keap would have lifted
        (then the refusal was about the request, and is raised)."""
        path = f"/v2/emailAddresses/{quote(email, safe='')}/status"
        try:
            body = self._call("PATCH", path, "opt in", json={"opted_in": True, "reason": reason})
        except KeapRequestRejected as exc:
            if exc.status not in (400, 409):
                raise
            status = EmailStatus.from_keap(self._call("GET", path, "e-mail status"), email)
            if status.opted_in or status.status in LIFTED_BY_OPT_IN:
                raise
            return status
        return EmailStatus.from_keap(body, email)

    def get_contact(self, contact_id: str) -> Contact | None:
        """The contact, or None when Keap has no contact with this id (deleted, or merged into another)."""
        try:
            body = self._call("GET", f"/v2/contacts/{quote(contact_id, safe='')}", "get contact",
                              params={"fields": CONTACT_FIELDS})
        except KeapRequestRejected as exc:
            if exc.status == 404:
                return None
            raise
        return Contact.from_keap(body, "get contact", 200)

    # --- tags -----------------------------------------------------------------------------------------
    def find_tag_id(self, name: str) -> str | None:
        """The id of the tag named ``name``, over every page; an exact match wins over one that differs
        only in case (in case Keap treats names case-insensitively)."""
        params: dict[str, Any] = {"page_size": 1000}
        if filter_safe(name):
            params["filter"] = f"name=={name}"
        folded: str | None = None
        for tag in self._pages("/v2/tags", "find tag", "tags", params):
            if tag.get("name") == name and tag.get("id"):
                return str(tag["id"])
            if folded is None and str(tag.get("name", "")).casefold() == name.casefold() and tag.get("id"):
                folded = str(tag["id"])
        return folded

    def tag_exists(self, tag_id: str) -> bool:
        try:
            self._call("GET", f"/v2/tags/{quote(tag_id, safe='')}", "get tag")
        except KeapRequestRejected as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def create_tag(self, name: str, description: str = "Applied by keaplink") -> str:
        body = self._call("POST", "/v2/tags", "create tag", json={"name": name, "description": description})
        if not isinstance(body, dict) or not body.get("id"):
            raise KeapRequestRejected("create tag: answer without a tag id", 200)
        return str(body["id"])

    def apply_tag(self, tag_id: str, contact_ids: list[str]) -> dict[str, str]:
        """Apply one tag to contacts; Keap's result string per contact id (absent ones are not in the map)."""
        body = self._call("POST", f"/v2/tags/{quote(tag_id, safe='')}/contacts:applyTags", "apply tag",
                          json={"contact_ids": list(dict.fromkeys(contact_ids))})
        results = body.get("results") if isinstance(body, dict) else None
        return {str(k): str(v) for k, v in results.items()} if isinstance(results, dict) else {}

    def remove_tag(self, tag_id: str, contact_ids: list[str]) -> None:
        """Remove one tag from contacts (``removeTags``: 204, no per-contact result; contacts without the tag are
        passed over)."""
        self._call("POST", f"/v2/tags/{quote(tag_id, safe='')}/contacts:removeTags", "remove tag",
                   json={"contact_ids": list(dict.fromkeys(contact_ids))})

    # --- custom fields --------------------------------------------------------------------------------
    def contact_model(self) -> Any:
        """``retrieveContactModel``: the contact custom fields' ids, labels, API names, types and options."""
        return self._call("GET", "/v2/contacts/model", "contact model")

    def custom_field_values(self, contact_id: str) -> list[dict[str, Any]]:
        """The contact's custom field values (``[{"id", "content"}]``); 404 when the contact is gone."""
        body = self._call("GET", f"/v2/contacts/{quote(contact_id, safe='')}", "get custom fields",
                          params={"fields": "id,custom_fields"})
        values = body.get("custom_fields") if isinstance(body, dict) else None
        return [dict(v) for v in values or [] if isinstance(v, dict) and v.get("id") is not None]

    def set_custom_field_values(self, contact_id: str, values: list[dict[str, Any]]) -> None:
        """Write the contact's whole custom field list (``update_mask=custom_fields``: nothing else changes;
        Keap removes any custom field value not listed, so ``values`` is the merged list)."""
        self._call("PATCH", f"/v2/contacts/{quote(contact_id, safe='')}", "update custom fields",
                   json={"custom_fields": values}, params={"update_mask": "custom_fields", "fields": "id"})

    # --- goals, notes, the connection's user --------------------------------------------------------
    def achieve_goal(self, contact_id: str, integration: str, call_name: str) -> list[tuple[bool, str]]:
        """``achieveGoal`` by integration and call name: (success, Keap's message) per goal. A 200 does not mean
        a goal fired: ``success`` is false when no published campaign listens."""
        if not contact_id.isdigit():
            raise KeapRequestRejected(f"achieve goal: contact id {contact_id!r} is not numeric", 400)
        body = self._call("POST", "/v2/automations/goals/achieve", "achieve goal", repeatable=False,
                          json={"contact_id": int(contact_id), "integration": integration, "call_name": call_name})
        results = body.get("results") if isinstance(body, dict) else None
        return [(r.get("success") is True, str(r.get("message") or "")) for r in results or []
                if isinstance(r, dict)]

    def create_note(self, contact_id: str, user_id: str, title: str, text: str) -> str:
        """``createNote`` on the contact, as the Keap user ``user_id``; the note's id."""
        body = self._call("POST", f"/v2/contacts/{quote(contact_id, safe='')}/notes", "create note",
                          repeatable=False, json={"user_id": user_id, "title": title, "text": text})
        return str(body.get("id", "")) if isinstance(body, dict) else ""

    def connection_user_id(self) -> str:
        """The Keap user the credential acts as (``getUserInfo``'s ``sub``, the user id notes take)."""
        body = self._call("GET", "/v2/oauth/connect/userinfo", "user info")
        user = (body.get("sub") or body.get("id")) if isinstance(body, dict) else None
        if not user:
            raise KeapRequestRejected("user info: answer without a user id", 200)
        return str(user)

    def credential_tenant(self) -> str | None:
        """The Keap app (tenant) the session's credential belongs to, from ``x-keap-tenant-id``, which Keap sends
        on every answer; None when it is absent. The call is ``GET /v2/oauth/connect/userinfo`` (getUserInfo in
        Keap's v2 spec): one small object about the credential's user, no listing — the cheapest documented
        call that proves a credential. A refused one raises :class:`~keaplink.errors.KeapAuthError`."""
        response = self.session.request("GET", "/v2/oauth/connect/userinfo", "user info")
        return response.headers.get("x-keap-tenant-id") or None
