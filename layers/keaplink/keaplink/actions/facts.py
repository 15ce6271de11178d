"""What keaplink learns about a Keap app once per container and keeps in memory: the connection's Keap user
(notes are written as that user). Kept per Keap app (tenant): a reconnect to another app learns again."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keaplink.keap.client import KeapClient


class KeapFacts:
    def __init__(self) -> None:
        self._users: dict[str | None, str] = {}
        self._lock = threading.Lock()

    def user_id(self, keap: KeapClient) -> str:
        """The connection's Keap user id (``getUserInfo``), read once per Keap app and container."""
        with self._lock:
            if keap.tenant not in self._users:
                self._users[keap.tenant] = keap.connection_user_id()
            return self._users[keap.tenant]
