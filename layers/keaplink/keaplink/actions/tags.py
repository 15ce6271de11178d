"""Tag name → Keap tag id, looked up once per container: memory first, then the data table, then Keap."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol

from keaplink.errors import KeapRequestRejected

if TYPE_CHECKING:
    from keaplink.keap.client import KeapClient


class TagCache(Protocol):
    def cached_tag_id(self, name: str) -> str | None: ...

    def cache_tag_id(self, name: str, tag_id: str) -> None: ...


class TagIds:
    def __init__(self, cache: TagCache) -> None:
        self._cache = cache
        self._memory: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, name: str, keap: KeapClient) -> str:
        if name in self._memory:
            return self._memory[name]
        with self._lock:  # one lookup per tag per container, even with concurrent records
            if name in self._memory:
                return self._memory[name]
            tag_id = self._cache.cached_tag_id(name)
            if tag_id is None:
                tag_id = keap.find_tag_id(name) or self._create(name, keap)
                self._cache.cache_tag_id(name, tag_id)
            self._memory[name] = tag_id
            return tag_id

    @staticmethod
    def _create(name: str, keap: KeapClient) -> str:
        try:
            return keap.create_tag(name)
        except KeapRequestRejected as exc:
            if exc.status != 409:
                raise
            found = keap.find_tag_id(name)  # created concurrently by another container: use that one
            if found is None:
                raise
            return found

    def forget(self, name: str) -> None:
        with self._lock:
            self._memory.pop(name, None)
