"""What keaplink learns about a Keap app once per container and keeps in memory: the connection's Keap user
(notes are written as that user) and the contact model's custom fields (read again when a name is missing:
the customer adds fields). Kept per Keap app (tenant): a reconnect to another app learns again."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from keaplink.actions.fields import CustomField, parse_model

if TYPE_CHECKING:
    from keaplink.keap.client import KeapClient


class KeapFacts:
    def __init__(self) -> None:
        self._users: dict[str | None, str] = {}
        self._models: dict[str | None, tuple[CustomField, ...]] = {}
        self._lock = threading.Lock()

    def user_id(self, keap: KeapClient) -> str:
        """The connection's Keap user id (``getUserInfo``), read once per Keap app and container."""
        with self._lock:
            if keap.tenant not in self._users:
                self._users[keap.tenant] = keap.connection_user_id()
            return self._users[keap.tenant]

    def custom_fields(self, keap: KeapClient, fresh: bool = False) -> tuple[CustomField, ...]:
        """The contact custom fields (``retrieveContactModel``), cached per Keap app; ``fresh``: read again."""
        with self._lock:
            if fresh or keap.tenant not in self._models:
                self._models[keap.tenant] = parse_model(keap.contact_model())
            return self._models[keap.tenant]
