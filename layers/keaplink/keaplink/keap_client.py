"""Keap REST v2 calls keaplink needs (v1 is deprecated). Each method is one HTTP request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from keaplink.errors import KeapRequestRejected
from keaplink.keap_http import Throttle, parse_body, raise_for_status, send

if TYPE_CHECKING:
    import requests

def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


def api_key(key: str) -> dict[str, str]:
    """Service Account Keys and Personal Access Tokens use this header instead of a bearer token."""
    return {"X-Keap-API-Key": key}


@dataclass(frozen=True)
class UpsertResult:
    contact_id: str
    created: bool


class KeapClient:
    def __init__(
        self,
        api_url: str,
        auth: dict[str, str],
        timeout: float = 10.0,
        before_call: Callable[[], None] | None = None,
        after_call: Callable[[Throttle], None] | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.auth = auth
        self.timeout = timeout
        self.before_call = before_call  # e.g. a rate limiter's acquire: every request passes through it
        self.after_call = after_call  # sees Keap's throttle headers of every answer
        self.calls = 0

    def _request(self, method: str, path: str, what: str, **kwargs: Any) -> requests.Response:
        if self.before_call:
            self.before_call()
        self.calls += 1
        headers = {**self.auth, "Accept": "application/json"}
        response = send(method, f"{self.api_url}{path}", what, self.timeout, headers=headers, **kwargs)
        if self.after_call:
            self.after_call(Throttle.from_headers(response.headers))
        raise_for_status(response, what)
        return response

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        return parse_body(self._request(method, path, what, **kwargs))

    def upsert_contact(self, email: str, given_name: str | None, family_name: str | None) -> UpsertResult:
        """Create the contact, or update the one with this e-mail: one call, Keap checks duplicates."""
        body: dict[str, Any] = {"email_addresses": [{"email": email, "field": "EMAIL1"}]}
        if given_name:
            body["given_name"] = given_name
        if family_name:
            body["family_name"] = family_name
        response = self._request(
            "POST", "/v2/contacts", "upsert contact", params={"duplicate_option": "Email"}, json=body
        )
        contact = parse_body(response)
        if not isinstance(contact, dict) or not contact.get("id"):
            raise KeapRequestRejected("upsert contact: answer without an id", response.status_code)
        return UpsertResult(contact_id=str(contact["id"]), created=response.status_code == 201)

    def get_contact(self, contact_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/v2/contacts/{quote(contact_id)}", "get contact")
        return result

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
