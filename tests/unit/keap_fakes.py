"""In-memory stand-ins for the actions' collaborators: Keap's REST calls, the per-user record, Keap's HTTP
answers. Each is exercised by the unit tests of the action service, the tag-id cache and the Keap session."""

from __future__ import annotations

import json
import threading
from typing import Any

import requests

from keaplink.actions.users import UserRecord
from keaplink.errors import KeapRequestRejected
from keaplink.keap.client import UpsertResult
from keaplink.keap.session import Credential


class FakeKeap:
    """The KeapClient calls the service makes, against in-memory contacts and tags."""

    def __init__(self) -> None:
        self.contacts: dict[str, str] = {}  # e-mail → id
        self.tags: dict[str, str] = {}  # name → id
        self.applied: set[tuple[str, str]] = set()  # (tag id, contact id)
        self.calls: list[str] = []
        self.apply_answer: str | None = None  # forced per-contact result, e.g. "FAILED"
        self.create_conflicts = 0  # the next N create_tag calls answer 409 (another container created it)
        self.lock = threading.Lock()

    def upsert_contact(self, email: str, given_name: str | None, family_name: str | None) -> UpsertResult:
        self.calls.append("upsert_contact")
        created = email.lower() not in self.contacts
        contact_id = self.contacts.setdefault(email.lower(), str(len(self.contacts) + 1))
        return UpsertResult(contact_id, created)

    def find_tag_id(self, name: str) -> str | None:
        self.calls.append("find_tag_id")
        return self.tags.get(name)

    def create_tag(self, name: str, description: str = "") -> str:
        self.calls.append("create_tag")
        with self.lock:
            tag_id = self.tags.setdefault(name, str(100 + len(self.tags)))
            if self.create_conflicts:
                self.create_conflicts -= 1
                raise KeapRequestRejected("create tag: HTTP 409 Tag with name already exists", 409)
        return tag_id

    def apply_tag(self, tag_id: str, contact_id: str) -> str:
        self.calls.append("apply_tag")
        if tag_id not in self.tags.values():
            raise KeapRequestRejected("apply tag: HTTP 404 not found", 404)
        self.applied.add((tag_id, contact_id))
        return self.apply_answer or "SUCCESS"


class FakeUsers:
    """The UserStore and tag-id cache contract, in memory."""

    def __init__(self) -> None:
        self.users: dict[str, UserRecord] = {}
        self.tag_cache: dict[str, str] = {}
        self.cache_reads = 0

    def get(self, user_id: str) -> UserRecord:
        return self.users.get(user_id, UserRecord(user_id))

    def save_contact(self, user_id: str, contact_id: str, email: str) -> None:
        old = self.get(user_id)
        self.users[user_id] = UserRecord(user_id, contact_id, email, old.tags)

    def mark_tagged(self, user_id: str, tag: str) -> None:
        old = self.get(user_id)
        self.users[user_id] = UserRecord(user_id, old.contact_id, old.email, old.tags | {tag})

    def cached_tag_id(self, name: str) -> str | None:
        self.cache_reads += 1
        return self.tag_cache.get(name)

    def cache_tag_id(self, name: str, tag_id: str) -> None:
        self.tag_cache[name] = tag_id


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
