"""Contact and tag actions for one SQS batch: one token read per batch, records processed concurrently
under a rate limit, and every failure sorted into "never" (DLQ with reason) or "later" (returned).

Exactly-once effects on an at-least-once queue come from the operations themselves: Keap's upsert by
e-mail cannot duplicate a contact, applying a tag twice is not an error, and the per-user record makes
later presses skip Keap entirely.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from keaplink.dead_letters import send_to_dlq
from keaplink.errors import (
    InvalidMessage,
    KeapAuthError,
    KeapRateLimited,
    KeapRequestRejected,
    KeapUnavailable,
    NotReady,
)
from keaplink.keap_client import KeapClient
from keaplink.messages import ButtonPressed, ContactTag, Message, SignedUp, parse
from keaplink.observability import MetricsPort, MetricUnit, NullMetrics, logger
from keaplink.rate_limit import RateLimiter
from keaplink.user_store import UserStore

TRANSIENT_ATTEMPTS = 2
RATE_LIMITED_ATTEMPTS = 3
MAX_INLINE_WAIT_S = 5.0


class TagIds:
    """Tag name → Keap id: memory first, then the data table, then Keap (find, else create)."""

    def __init__(self, users: UserStore) -> None:
        self._users = users
        self._memory: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, name: str, keap: KeapClient) -> str:
        if name in self._memory:
            return self._memory[name]
        with self._lock:  # one lookup per tag per container, even with concurrent records
            if name in self._memory:
                return self._memory[name]
            tag_id = self._users.cached_tag_id(name)
            if tag_id is None:
                tag_id = keap.find_tag_id(name)
                if tag_id is None:
                    try:
                        tag_id = keap.create_tag(name)
                    except KeapRequestRejected as exc:
                        if exc.status != 409:  # created concurrently by another container: find it
                            raise
                        tag_id = keap.find_tag_id(name)
                        if tag_id is None:
                            raise
                self._users.cache_tag_id(name, tag_id)
            self._memory[name] = tag_id
            return tag_id

    def forget(self, name: str) -> None:
        with self._lock:
            self._memory.pop(name, None)


class KeapSession:
    """The batch's Keap client, re-created once (under a lock) when Keap answers 401."""

    def __init__(self, connect: Callable[[bool], KeapClient]) -> None:
        self._connect = connect
        self._lock = threading.Lock()
        self.client = connect(False)
        self.reauthorized = False

    def after_401(self, failed: KeapClient) -> KeapClient:
        with self._lock:
            if self.client is failed and not self.reauthorized:
                self.client = self._connect(True)
                self.reauthorized = True
            return self.client


@dataclass
class ActionService:
    users: UserStore
    tags: TagIds
    limiter: RateLimiter
    button_tag: str
    dlq_url: str
    metrics: MetricsPort = field(default_factory=NullMetrics)
    sleep: Callable[[float], None] = time.sleep

    # --- one record ---------------------------------------------------------------------------------
    def handle(self, body: str, message_id: str, session: KeapSession) -> str:
        """Process one SQS body; returns what was done (or that it was dead-lettered), raises to be retried."""
        try:
            message = parse(body)
        except InvalidMessage as exc:
            self._dead_letter(body, message_id, str(exc))
            return "invalid"
        try:
            return self._with_retries(message, session)
        except KeapRequestRejected as exc:
            self._dead_letter(body, message_id, f"Keap rejected the request: {exc}")
            return "rejected"

    def _with_retries(self, message: Message, session: KeapSession) -> str:
        client = session.client
        auth_retried, transient, throttled = False, 0, 0
        while True:
            try:
                return self._apply(message, client)
            except KeapAuthError:
                if auth_retried:
                    raise  # a fresh token was refused too: hand the record back, do not loop
                auth_retried = True
                client = session.after_401(client)
            except KeapRateLimited as exc:
                wait = exc.retry_after if exc.retry_after is not None else random.uniform(1.0, 3.0)
                self.limiter.pause(wait)  # every record of this container holds back, not just this one
                self.metrics.add_metric("KeapThrottled", MetricUnit.Count, 1)
                throttled += 1
                if wait > MAX_INLINE_WAIT_S or throttled >= RATE_LIMITED_ATTEMPTS:
                    raise  # returned to the queue: its visibility timeout is the longer backoff
                # A short wait (Keap's per-second spike limit) is cheaper here than a visibility timeout:
                # the next attempt's limiter.acquire() sleeps until the pause is over.
            except KeapUnavailable:
                transient += 1
                if transient >= TRANSIENT_ATTEMPTS:
                    raise
                self.sleep(random.uniform(0.2, 0.6) * transient)

    def _dead_letter(self, body: str, message_id: str, reason: str) -> None:
        send_to_dlq(self.dlq_url, body, reason, message_id)
        self.metrics.add_metric("MessagesDeadLettered", MetricUnit.Count, 1)
        logger.warning("message sent to the DLQ, not retried", extra={"message_id": message_id, "reason": reason})

    # --- the effects ----------------------------------------------------------------------------------
    def _apply(self, message: Message, keap: KeapClient) -> str:
        if isinstance(message, SignedUp):
            result = keap.upsert_contact(message.email, message.given_name, message.family_name)
            self.users.save_contact(message.user_id, result.contact_id, message.email)
            return "created" if result.created else "updated"
        tag = self.button_tag if isinstance(message, ButtonPressed) else message.tag
        return self._tag_once(message, tag, keap)

    def _tag_once(self, message: ButtonPressed | ContactTag, tag: str, keap: KeapClient) -> str:
        user = self.users.get(message.user_id)
        if tag in user.tags:
            return "already tagged"
        contact_id = user.contact_id
        if contact_id is None:
            if not message.email:
                # The signup has not been processed yet: come back later, do not dead-letter early.
                raise NotReady(f"user {message.user_id} has no Keap contact yet")
            contact_id = keap.upsert_contact(message.email, None, None).contact_id
            self.users.save_contact(message.user_id, contact_id, message.email)
        tag_id = self.tags.get(tag, keap)
        try:
            result = keap.apply_tag(tag_id, contact_id)
        except KeapRequestRejected as exc:
            if exc.status != 404:
                raise
            self.tags.forget(tag)  # the tag was deleted in Keap: look it up again next time
            raise KeapUnavailable(f"tag {tag!r} no longer exists in Keap", 404) from exc
        if result != "SUCCESS":
            raise KeapRequestRejected(f"Keap answered {result} applying tag {tag!r} to contact {contact_id}", 200)
        self.users.mark_tagged(message.user_id, tag)
        return "tagged"
