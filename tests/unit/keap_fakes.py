"""In-memory stand-ins for the actions' collaborators: Keap's REST calls, the per-user record, Keap's HTTP
answers. Each is exercised by the unit tests of the action service, the tag-id cache and the Keap session."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import requests

from keaplink.actions.once import Claim
from keaplink.actions.users import UserRecord
from keaplink.errors import KeapRequestRejected
from keaplink.keap.client import LIFTED_BY_OPT_IN, Contact, EmailStatus
from keaplink.keap.session import Credential


class FakeKeap:
    """The KeapClient calls the service makes, against in-memory contacts and tags of one Keap app."""

    def __init__(self, tenant: str = "ab123.infusionsoft.com") -> None:
        self.tenant: str | None = tenant
        self.contacts: dict[str, Contact] = {}  # id → contact
        self.tags: dict[str, str] = {}  # name → id
        self.calls: list[str] = []
        self.apply_answer: str | None = None  # forced per-contact result, e.g. "FAILED"
        self.create_conflicts = 0  # the next N create_tag calls answer 409 (another container created it)
        self.lock = threading.Lock()
        self._ids = iter(range(1, 10_000))
        self._tag_ids = iter(range(100, 10_000))
        self.email_status: dict[str, str] = {}  # address (casefolded) → Keap's opt-in status
        self.published_goals: set[tuple[str, str]] = set()
        self.goals_achieved: list[tuple[str, str, str]] = []
        self.goal_error: Exception | None = None
        self.notes: list[tuple[str, str, str, str]] = []
        self.model: list[dict[str, Any]] = []  # retrieveContactModel's custom_fields
        self.field_values: dict[str, list[dict[str, Any]]] = {}

    def add_contact(self, *emails: str, tag_ids: frozenset[str] = frozenset(),
                    given_name: str | None = None) -> Contact:
        contact = Contact(str(next(self._ids)), tuple(emails), given_name, None, tag_ids)
        self.contacts[contact.id] = contact
        return contact

    def find_contact_by_email(self, email: str) -> Contact | None:
        self.calls.append("find_contact")
        found = [c for c in self.contacts.values() if c.has_email(email)]
        return min(found, key=lambda c: int(c.id)) if found else None

    def create_contact(self, email: str, given_name: str | None, family_name: str | None,
                       opt_in_reason: str | None = None) -> tuple[Contact, bool]:
        self.calls.append("create_contact")
        self.email_status[email.casefold()] = "SINGLE_OPT_IN" if opt_in_reason else "NON_MARKETABLE"
        contact = Contact(str(next(self._ids)), (email,), given_name, family_name)
        self.contacts[contact.id] = contact
        return contact, True

    def update_names(self, contact_id: str, given_name: str | None, family_name: str | None) -> None:
        self.calls.append("update_names")
        old = self.contacts[contact_id]
        self.contacts[contact_id] = replace(old, given_name=given_name or old.given_name,
                                            family_name=family_name or old.family_name)

    def opt_in(self, email: str, reason: str) -> EmailStatus:
        self.calls.append("opt_in")
        status = self.email_status.get(email.casefold(), "NON_MARKETABLE")
        if status in LIFTED_BY_OPT_IN:
            status = self.email_status[email.casefold()] = "SINGLE_OPT_IN"
        return EmailStatus(email, status == "SINGLE_OPT_IN", status)

    def get_contact(self, contact_id: str) -> Contact | None:
        self.calls.append("get_contact")
        return self.contacts.get(contact_id)

    def find_tag_id(self, name: str) -> str | None:
        self.calls.append("find_tag_id")
        return self.tags.get(name)

    def tag_exists(self, tag_id: str) -> bool:
        self.calls.append("tag_exists")
        return tag_id in self.tags.values()

    def create_tag(self, name: str, description: str = "") -> str:
        self.calls.append("create_tag")
        with self.lock:
            if name not in self.tags:
                self.tags[name] = str(next(self._tag_ids))
            tag_id = self.tags[name]
            if self.create_conflicts:
                self.create_conflicts -= 1
                raise KeapRequestRejected("create tag: HTTP 409 Tag with name already exists", 409)
        return tag_id

    def achieve_goal(self, contact_id: str, integration: str, call_name: str) -> list[tuple[bool, str]]:
        self.calls.append("achieve_goal")
        if self.goal_error is not None:
            raise self.goal_error
        if contact_id not in self.contacts:
            raise KeapRequestRejected("achieve goal: HTTP 404 Contact not found", 404)
        if (integration, call_name) not in self.published_goals:
            return [(False, f"No goals were configured for {integration}.{call_name}")]
        self.goals_achieved.append((contact_id, integration, call_name))
        return [(True, "Goal achieved")]

    def create_note(self, contact_id: str, user_id: str, title: str, text: str) -> str:
        self.calls.append("create_note")
        if contact_id not in self.contacts:
            raise KeapRequestRejected("create note: HTTP 404 Contact not found", 404)
        self.notes.append((contact_id, user_id, title, text))
        return str(len(self.notes))

    def contact_model(self) -> Any:
        self.calls.append("contact_model")
        return {"custom_fields": list(self.model)}

    def custom_field_values(self, contact_id: str) -> list[dict[str, Any]]:
        self.calls.append("custom_field_values")
        if contact_id not in self.contacts:
            raise KeapRequestRejected("get contact: HTTP 404 Contact not found", 404)
        return [dict(v) for v in self.field_values.get(contact_id, [])]

    def set_custom_field_values(self, contact_id: str, values: list[dict[str, Any]]) -> None:
        self.calls.append("set_custom_field_values")
        self.field_values[contact_id] = [dict(v) for v in values]

    def connection_user_id(self) -> str:
        self.calls.append("user_info")
        return "1"

    def remove_tag(self, tag_id: str, contact_ids: list[str]) -> None:
        self.calls.append("remove_tag")
        if tag_id not in self.tags.values():
            raise KeapRequestRejected("remove tag: HTTP 404 not found", 404)
        for contact_id in contact_ids:
            contact = self.contacts.get(contact_id)
            if contact is not None:
                self.contacts[contact_id] = replace(contact, tag_ids=contact.tag_ids - {tag_id})

    def apply_tag(self, tag_id: str, contact_ids: list[str]) -> dict[str, str]:
        self.calls.append("apply_tag")
        if tag_id not in self.tags.values():
            raise KeapRequestRejected("apply tag: HTTP 404 not found", 404)
        results = {}
        for contact_id in contact_ids:
            contact = self.contacts.get(contact_id)
            if contact is None:
                results[contact_id] = "CONTACT_DOES_NOT_EXIST"
                continue
            if self.apply_answer is None:
                self.contacts[contact_id] = replace(contact, tag_ids=contact.tag_ids | {tag_id})
            results[contact_id] = self.apply_answer or "SUCCESS"
        return results


class FakeUsers:
    """The UserStore and tag-id cache contract, in memory."""

    def __init__(self) -> None:
        self.users: dict[str, UserRecord] = {}
        self.tag_cache: dict[tuple[str | None, str], str] = {}
        self.cache_reads = 0
        self.reads: list[str] = []  # user ids read one at a time
        self.batch_reads: list[list[str]] = []  # user ids read together
        self.batch_read_error: Exception | None = None
        self.opt_statuses: dict[str, str] = {}
        self.events: dict[tuple[str, str], Claim] = {}

    def _stored(self, user_id: str) -> UserRecord:
        """The record as stored, without counting a read."""
        return self.users.get(user_id, UserRecord(user_id))

    def get(self, user_id: str) -> UserRecord:
        self.reads.append(user_id)
        return self._stored(user_id)

    def get_many(self, user_ids: Iterable[str]) -> dict[str, UserRecord]:
        wanted = list(dict.fromkeys(user_ids))
        self.batch_reads.append(wanted)
        if self.batch_read_error is not None:
            raise self.batch_read_error
        return {u: self._stored(u) for u in wanted}

    def save_contact(self, user_id: str, contact_id: str, email: str, tenant: str | None,
                     contact_tag_ids: frozenset[str] = frozenset(), new_tenant: bool = False) -> None:
        old = self._stored(user_id)
        self.users[user_id] = UserRecord(user_id, contact_id, email, frozenset() if new_tenant else old.tags, tenant,
                                         contact_tag_ids)

    def claim_event(self, user_id: str, event_id: str, now: float) -> Claim:
        found = self.events.get((user_id, event_id))
        if found is None:
            self.events[(user_id, event_id)] = Claim(mine=False, claimed_at=now)
            return Claim(mine=True, claimed_at=now)
        return found

    def finish_event(self, user_id: str, event_id: str, outcome: str, now: float) -> None:
        self.events[(user_id, event_id)] = Claim(mine=False, done=True, claimed_at=now, outcome=outcome)

    def release_event(self, user_id: str, event_id: str, claimed_at: float) -> None:
        if self.events.get((user_id, event_id), Claim(False)).claimed_at == claimed_at:
            del self.events[(user_id, event_id)]

    def unmark_tagged(self, user_id: str, tag: str, tag_id: str | None) -> None:
        old = self._stored(user_id)
        self.users[user_id] = replace(old, tags=old.tags - {tag},
                                      contact_tag_ids=old.contact_tag_ids - {tag_id} if tag_id else old.contact_tag_ids)

    def record_opt_status(self, user_id: str, status: str) -> None:
        self.opt_statuses[user_id] = status

    def mark_tagged(self, user_id: str, tag: str) -> None:
        old = self._stored(user_id)
        self.users[user_id] = replace(old, tags=old.tags | {tag})

    def cached_tag_id(self, tenant: str | None, name: str) -> str | None:
        self.cache_reads += 1
        return self.tag_cache.get((tenant, name))

    def cache_tag_id(self, tenant: str | None, name: str, tag_id: str) -> None:
        self.tag_cache[(tenant, name)] = tag_id

    def forget_tag_id(self, tenant: str | None, name: str, tag_id: str) -> None:
        if self.tag_cache.get((tenant, name)) == tag_id:
            del self.tag_cache[(tenant, name)]


def answer(status: int, body: Any = None, headers: dict[str, str] | None = None) -> requests.Response:
    """A Keap HTTP answer built in memory."""
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body if body is not None else {}).encode()
    response.headers.update(headers or {})
    return response


class ScriptedTransport:
    """Plays Keap's answers in order and records the Authorization header of each request."""

    def __init__(self, *answers: requests.Response) -> None:
        self.answers = list(answers)
        self.seen: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, method: str, url: str, what: str, timeout: float, **kwargs: Any) -> requests.Response:
        with self.lock:
            self.seen.append(kwargs["headers"].get("Authorization", ""))
            return self.answers.pop(0)


class CountingAuth:
    """An AuthSource whose every fresh credential is a new token, counting how often it was asked."""

    def __init__(self) -> None:
        self.version = 1
        self.refreshes = 0
        self.lock = threading.Lock()

    def current(self, deadline: object = None) -> Credential:
        return Credential({"Authorization": f"Bearer t{self.version}"}, self.version)

    def after_refused(self, refused: Credential, deadline: object = None) -> Credential:
        with self.lock:
            self.refreshes += 1
            self.version += 1
            return self.current()
