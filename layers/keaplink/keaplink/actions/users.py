"""Per-user progress (contact id, tags applied) and the tag-name → id cache, in the data table."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keaplink.actions.table import DataItem


@dataclass(frozen=True)
class UserRecord:
    user_id: str
    contact_id: str | None = None
    email: str | None = None
    tags: frozenset[str] = field(default_factory=frozenset)


class UserStore:
    """``table`` gives the bound pynamodb model on first use (pynamodb stays off the cold-start path)."""

    def __init__(self, table: Callable[[], type[DataItem]]) -> None:
        self._table = table

    def get(self, user_id: str) -> UserRecord:
        from pynamodb.exceptions import DoesNotExist

        m = self._table()
        try:
            item = m.get(f"USER#{user_id}", consistent_read=True)
        except DoesNotExist:
            return UserRecord(user_id)
        return UserRecord(user_id, item.contact_id, item.email, frozenset(item.tags or ()))

    def save_contact(self, user_id: str, contact_id: str, email: str) -> None:
        m = self._table()
        m(f"USER#{user_id}").update(
            actions=[m.contact_id.set(contact_id), m.email.set(email), m.updated_at.set(time.time())]
        )

    def mark_tagged(self, user_id: str, tag: str) -> None:
        m = self._table()
        m(f"USER#{user_id}").update(actions=[m.tags.add({tag}), m.updated_at.set(time.time())])

    def cached_tag_id(self, name: str) -> str | None:
        from pynamodb.exceptions import DoesNotExist

        m = self._table()
        try:
            return m.get(f"TAG#{name}").tag_id  # type: ignore[no-any-return]
        except DoesNotExist:
            return None

    def cache_tag_id(self, name: str, tag_id: str) -> None:
        m = self._table()
        m(f"TAG#{name}", tag_id=tag_id, updated_at=time.time()).save()
