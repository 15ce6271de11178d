"""The naive baseline for ``keaplink_dev.perf.bench``: the actions the way Keap's tutorial reads.

One message at a time, the token read from the table for every message, the contact searched by e-mail
and created when missing (no ``duplicate_option``), and the tag looked up by name on every press. Plain
``requests`` and :class:`keaplink.connection.store.TokenStore`; nothing of the product's batch path.

This is part of the benchmark, not of the product.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests

from keaplink.connection.store import TokenStore

MAX_429_RETRIES = 8


@dataclass
class NaiveStats:
    events: int = 0
    keap_calls: int = 0  # every request sent, 429s included
    answered: int = 0  # requests Keap served: what each event needs
    throttled: int = 0
    token_reads: int = 0
    failed: int = 0
    calls_by_type: dict[str, int] = field(default_factory=dict)


class NaiveActions:
    """Process one action message with the tutorial's request sequence."""

    def __init__(self, api_url: str, store: TokenStore, button_tag: str = "buttonpushed",
                 timeout_s: float = 10.0) -> None:
        self.api_url = api_url.rstrip("/")
        self.store = store
        self.button_tag = button_tag
        self.timeout_s = timeout_s
        self.stats = NaiveStats()

    # --- HTTP -----------------------------------------------------------------------------------------
    def _call(self, method: str, path: str, token: str, body: dict[str, Any] | None = None) -> Any:
        """One Keap request; on 429 waits (Retry-After, else 1 s) and tries again, as any client must."""
        for _ in range(MAX_429_RETRIES):
            response = requests.request(method, self.api_url + path, json=body, timeout=self.timeout_s,
                                        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
            self.stats.keap_calls += 1
            if response.status_code == 429:
                self.stats.throttled += 1
                time.sleep(float(response.headers.get("Retry-After") or 1))
                continue
            self.stats.answered += 1
            response.raise_for_status()
            return response.json() if response.content else None
        raise RuntimeError(f"{method} {path}: still throttled after {MAX_429_RETRIES} attempts")

    def _token(self) -> str:
        self.stats.token_reads += 1
        connection = self.store.load()
        if connection.token is None:
            raise RuntimeError("Keap is not connected")
        return connection.token.access_token

    # --- the steps ------------------------------------------------------------------------------------
    def _find_contact(self, email: str, token: str) -> str | None:
        found = self._call("GET", f"/v2/contacts?filter={quote(f'email=={email}', safe='')}", token)
        contacts = found.get("contacts") or []
        return str(contacts[0]["id"]) if contacts else None

    def _create_contact(self, message: dict[str, Any], token: str) -> str:
        body: dict[str, Any] = {"email_addresses": [{"email": message["email"], "field": "EMAIL1"}]}
        for name in ("given_name", "family_name"):
            if message.get(name):
                body[name] = message[name]
        return str(self._call("POST", "/v2/contacts", token, body)["id"])

    def _tag_id(self, name: str, token: str) -> str:
        found = self._call("GET", f"/v2/tags?filter={quote(f'name=={name}', safe='')}", token)
        tags = found.get("tags") or []
        if tags:
            return str(tags[0]["id"])
        return str(self._call("POST", "/v2/tags", token, {"name": name, "description": "keaplink"})["id"])

    def handle(self, body: str) -> None:
        message = json.loads(body)
        before = self.stats.answered
        token = self._token()
        contact_id = self._find_contact(message["email"], token)
        if contact_id is None:
            contact_id = self._create_contact(message, token)
        if message["type"] == "button.pressed":
            tag_id = self._tag_id(self.button_tag, token)
            self._call("POST", f"/v2/tags/{tag_id}/contacts:applyTags", token, {"contact_ids": [contact_id]})
        self.stats.events += 1
        kind = message["type"]
        self.stats.calls_by_type[kind] = self.stats.calls_by_type.get(kind, 0) + self.stats.answered - before


def run_queue(sqs: Any, queue_url: str, actions: NaiveActions, expected: int, timeout_s: float = 1800.0) -> float:
    """Receive one message at a time, handle it, delete it; returns the elapsed seconds."""
    start = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    while actions.stats.events < expected and time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            time.sleep(0.05)
            continue
        message = messages[0]
        try:
            actions.handle(message["Body"])
        except (requests.RequestException, RuntimeError, KeyError, ValueError):
            actions.stats.failed += 1
            continue  # left on the queue: it comes back after the visibility timeout
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return time.perf_counter() - start


def run_list(bodies: list[str], actions: NaiveActions, timeout_s: float = 1800.0) -> float:
    """The same, fed from memory like keaplink's runs in the benchmark (so neither pays the emulator's SQS);
    a failed message is retried at the end of the list. Returns the elapsed seconds."""
    start = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    pending = list(bodies)
    while pending and time.monotonic() < deadline:
        body = pending.pop(0)
        try:
            actions.handle(body)
        except (requests.RequestException, RuntimeError, KeyError, ValueError):
            actions.stats.failed += 1
            pending.append(body)
    return time.perf_counter() - start
