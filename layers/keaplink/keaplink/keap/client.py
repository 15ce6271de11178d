"""The Keap REST v2 calls keaplink makes (v1 is deprecated). Each method is one request through a session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from keaplink.errors import KeapRequestRejected
from keaplink.keap.http import parse_body

if TYPE_CHECKING:
    from keaplink.keap.session import KeapSession


@dataclass(frozen=True)
class UpsertResult:
    contact_id: str
    created: bool


class KeapClient:
    def __init__(self, session: KeapSession) -> None:
        self.session = session

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        return parse_body(self.session.request(method, path, what, **kwargs))

    def upsert_contact(self, email: str, given_name: str | None, family_name: str | None) -> UpsertResult:
        """Create the contact, or update the one with this e-mail: one call, Keap checks duplicates."""
        body: dict[str, Any] = {"email_addresses": [{"email": email, "field": "EMAIL1"}]}
        if given_name:
            body["given_name"] = given_name
        if family_name:
            body["family_name"] = family_name
        response = self.session.request(
            "POST", "/v2/contacts", "upsert contact", params={"duplicate_option": "Email"}, json=body
        )
        contact = parse_body(response)
        if not isinstance(contact, dict) or not contact.get("id"):
            raise KeapRequestRejected("upsert contact: answer without an id", response.status_code)
        return UpsertResult(contact_id=str(contact["id"]), created=response.status_code == 201)

    def find_tag_id(self, name: str) -> str | None:
        body = self._call("GET", "/v2/tags", "find tag", params={"filter": f"name=={name}"})
        for tag in body.get("tags", []) if isinstance(body, dict) else []:
            if tag.get("name") == name:
                return str(tag["id"])
        return None

    def create_tag(self, name: str, description: str = "Applied by keaplink") -> str:
        body = self._call("POST", "/v2/tags", "create tag", json={"name": name, "description": description})
        return str(body["id"])

    def apply_tag(self, tag_id: str, contact_id: str) -> str:
        """Apply one tag to one contact; returns Keap's per-contact outcome string."""
        body = self._call(
            "POST",
            f"/v2/tags/{quote(tag_id)}/contacts:applyTags",
            "apply tag",
            json={"contact_ids": [contact_id]},
        )
        results = body.get("results", {}) if isinstance(body, dict) else {}
        return str(results.get(contact_id, "UNKNOWN"))

    def credential_tenant(self) -> str | None:
        """The Keap app (tenant) the session's credential belongs to, from ``x-keap-tenant-id``, which Keap sends
        on every answer; None when it is absent. The call is ``GET /v2/oauth/connect/userinfo`` (getUserInfo in
        Keap's v2 spec): one small object about the credential's user, no listing — the cheapest documented
        call that proves a credential. A refused one raises :class:`~keaplink.errors.KeapAuthError`."""
        response = self.session.request("GET", "/v2/oauth/connect/userinfo", "user info")
        return response.headers.get("x-keap-tenant-id") or None
