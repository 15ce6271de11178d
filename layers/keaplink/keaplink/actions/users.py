"""Per-user progress (contact id, the Keap app it belongs to, tags applied) and the tag-name → id cache, in
the data table. Ids are only valid in the Keap app (tenant) they came from."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keaplink.actions.once import EVENT_MEMORY_S, Claim

if TYPE_CHECKING:
    from keaplink.actions.table import DataItem


@dataclass(frozen=True)
class UserRecord:
    user_id: str
    contact_id: str | None = None
    email: str | None = None
    tags: frozenset[str] = field(default_factory=frozenset)
    tenant: str | None = None
    contact_tag_ids: frozenset[str] = field(default_factory=frozenset)

    def in_tenant(self, tenant: str | None) -> UserRecord:
        """What of this record holds in ``tenant``: everything if it is the record's Keap app, else only the
        e-mail (a record written before tenants were kept counts as another app's)."""
        if self.tenant is not None and self.tenant == tenant:
            return self
        return UserRecord(self.user_id, email=self.email)


def _record(user_id: str, item: DataItem) -> UserRecord:
    return UserRecord(user_id, item.contact_id, item.email, frozenset(item.tags or ()), item.tenant,
                      frozenset(item.contact_tag_ids or ()))


def _event_key(user_id: str, event_id: str) -> str:
    return f"USER#{user_id}#EVENT#{event_id}"  # neither id may hold "#" (the message contract)


def _tag_key(tenant: str | None, name: str) -> str:
    return f"TAG#{tenant or '-'}#{name}"


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
        return _record(user_id, item)

    def get_many(self, user_ids: Iterable[str]) -> dict[str, UserRecord]:
        """Several users' records in one round trip per 100 (BatchGetItem, consistent reads): a batch of 100
        presses reads its users with one call instead of 100."""
        wanted = list(dict.fromkeys(user_ids))
        found = {item.pk.removeprefix("USER#"): item
                 for item in self._table().batch_get([f"USER#{u}" for u in wanted], consistent_read=True)}
        return {u: _record(u, found[u]) if u in found else UserRecord(u) for u in wanted}

    def save_contact(self, user_id: str, contact_id: str, email: str, tenant: str | None,
                     contact_tag_ids: frozenset[str] = frozenset(), new_tenant: bool = False) -> None:
        """Remember the user's contact; ``new_tenant`` forgets the tags applied in another Keap app."""
        m = self._table()
        actions: list[Any] = [m.contact_id.set(contact_id), m.email.set(email), m.updated_at.set(time.time()),
                   m.tenant.set(tenant) if tenant else m.tenant.remove(),
                   m.contact_tag_ids.set(set(contact_tag_ids)) if contact_tag_ids else m.contact_tag_ids.remove()]
        if new_tenant:
            actions.append(m.tags.remove())
        m(f"USER#{user_id}").update(actions=actions)

    def record_opt_status(self, user_id: str, status: str) -> None:
        """Keap kept the user's address out of marketing despite consent (an unsubscribe): remembered, for support."""
        m = self._table()
        m(f"USER#{user_id}").update(actions=[m.opt_status.set(status), m.updated_at.set(time.time())])

    def mark_tagged(self, user_id: str, tag: str) -> None:
        m = self._table()
        m(f"USER#{user_id}").update(actions=[m.tags.add({tag}), m.updated_at.set(time.time())])

    def unmark_tagged(self, user_id: str, tag: str, tag_id: str | None) -> None:
        """The tag is being removed: forgotten before Keap is asked, so a later tag applies it again (memory that
        misses a tag costs one idempotent applyTags; memory that claims one wrongly would skip it)."""
        m = self._table()
        actions: list[Any] = [m.tags.delete({tag}), m.updated_at.set(time.time())]
        if tag_id is not None:
            actions.append(m.contact_tag_ids.delete({tag_id}))
        m(f"USER#{user_id}").update(actions=actions)

    def claim_event(self, user_id: str, event_id: str, now: float) -> Claim:
        """Claim the event for this attempt (a conditional put), or what another attempt left."""
        from pynamodb.exceptions import DoesNotExist, PutError

        from keaplink.aws import conditional_failed

        m = self._table()
        key = _event_key(user_id, event_id)
        try:
            m(key, claimed_at=now, ttl=int(now + EVENT_MEMORY_S)).save(condition=m.pk.does_not_exist())
            return Claim(mine=True, claimed_at=now)
        except PutError as exc:
            if not conditional_failed(exc):
                raise
        try:
            item = m.get(key, consistent_read=True)
        except DoesNotExist:  # released in between: another attempt failed without acting; claim it next time
            return Claim(mine=False, claimed_at=now)
        return Claim(mine=False, done=item.event_done is not None, claimed_at=item.claimed_at, outcome=item.outcome)

    def finish_event(self, user_id: str, event_id: str, outcome: str, now: float) -> None:
        m = self._table()
        m(_event_key(user_id, event_id)).update(actions=[m.event_done.set(now), m.outcome.set(outcome[:200]),
                                                         m.ttl.set(int(now + EVENT_MEMORY_S))])

    def release_event(self, user_id: str, event_id: str, claimed_at: float) -> None:
        """Keap did not act: drop this attempt's claim (only its own), so a retry or a redrive may try again."""
        from pynamodb.exceptions import DeleteError

        from keaplink.aws import conditional_failed

        m = self._table()
        try:
            m(_event_key(user_id, event_id)).delete(condition=m.claimed_at == claimed_at)
        except DeleteError as exc:
            if not conditional_failed(exc):
                raise

    def cached_tag_id(self, tenant: str | None, name: str) -> str | None:
        from pynamodb.exceptions import DoesNotExist

        m = self._table()
        try:
            return m.get(_tag_key(tenant, name)).tag_id  # type: ignore[no-any-return]
        except DoesNotExist:
            return None

    def cache_tag_id(self, tenant: str | None, name: str, tag_id: str) -> None:
        m = self._table()
        m(_tag_key(tenant, name), tag_id=tag_id, tenant=tenant, updated_at=time.time()).save()

    def forget_tag_id(self, tenant: str | None, name: str, tag_id: str) -> None:
        """The tag is gone in Keap: drop the cached id, unless another container already cached a new one."""
        from pynamodb.exceptions import DeleteError

        m = self._table()
        try:
            m(_tag_key(tenant, name)).delete(condition=m.tag_id == tag_id)
        except DeleteError as exc:
            from keaplink.aws import conditional_failed

            if not conditional_failed(exc):
                raise  # already replaced or deleted is fine; DynamoDB failing is not
