"""Tag name → Keap tag id, per Keap app (tenant), looked up once per container: memory first, then the data
table, then Keap (find over every page, else create)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol

from keaplink.errors import KeapRequestRejected

if TYPE_CHECKING:
    from keaplink.keap.client import KeapClient


class TagCache(Protocol):
    def cached_tag_id(self, tenant: str | None, name: str) -> str | None: ...

    def cache_tag_id(self, tenant: str | None, name: str, tag_id: str) -> None: ...

    def forget_tag_id(self, tenant: str | None, name: str, tag_id: str) -> None: ...


class TagIds:
    def __init__(self, cache: TagCache) -> None:
        self._cache = cache
        self._memory: dict[tuple[str | None, str], str] = {}
        self._lock = threading.Lock()

    def get(self, name: str, keap: KeapClient) -> str:
        """The tag's id, the tag created in Keap if it does not exist."""
        tag_id = self._lookup(name, keap, create=True)
        assert tag_id is not None  # created when absent
        return tag_id

    def find(self, name: str, keap: KeapClient) -> str | None:
        """The tag's id, or None when Keap has no such tag (nothing created: removing it needs no tag)."""
        return self._lookup(name, keap, create=False)

    def _lookup(self, name: str, keap: KeapClient, create: bool) -> str | None:
        key = (keap.tenant, name)
        if key in self._memory:
            return self._memory[key]
        with self._lock:  # one lookup per tag per container, even with concurrent records
            if key in self._memory:
                return self._memory[key]
            tag_id = self._cache.cached_tag_id(keap.tenant, name)
            if tag_id is None:
                tag_id = keap.find_tag_id(name) or (self._create(name, keap) if create else None)
                if tag_id is None:
                    return None
                self._cache.cache_tag_id(keap.tenant, name, tag_id)
            self._memory[key] = tag_id
            return tag_id

    @staticmethod
    def _create(name: str, keap: KeapClient) -> str:
        try:
            return keap.create_tag(name)
        except KeapRequestRejected:
            # Keap's answer to a name that exists is undocumented (409, or 400): if the tag is there now
            # (created meanwhile by another container, or differing only in case), use it.
            found = keap.find_tag_id(name)
            if found is None:
                raise
            return found

    def forget(self, name: str, tag_id: str, keap: KeapClient) -> None:
        """The tag was deleted in Keap: forget it here and in the table, so it is found or created again."""
        with self._lock:
            if self._memory.get((keap.tenant, name)) == tag_id:
                del self._memory[(keap.tenant, name)]
        self._cache.forget_tag_id(keap.tenant, name, tag_id)
