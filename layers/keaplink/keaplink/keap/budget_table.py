"""The shared Keap budget's item (pynamodb), ``BUDGET#<connection_id>`` in the connection table: the deployment's
next free call slot, moved by atomic conditional updates. Bound to the table by the composition root."""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import UpdateError
from pynamodb.models import Model


class BudgetItem(Model):
    class Meta:
        table_name = "unbound"

    pk = UnicodeAttribute(hash_key=True)
    next_free = NumberAttribute(null=True)


class TableBudgetStore:
    """:class:`~keaplink.keap.budget.BudgetStore` on the connection table: one GetItem or one UpdateItem."""

    def __init__(self, connection_id: str, model: Any) -> None:
        self._key = f"BUDGET#{connection_id}"
        self._model = model  # a callable returning the bound BudgetItem class (built on first use)

    def read(self) -> float | None:
        table = self._model()
        try:
            item = table.get(self._key, consistent_read=True, attributes_to_get=["next_free"])
        except table.DoesNotExist:
            return None
        return None if item.next_free is None else float(item.next_free)

    def advance(self, by_s: float, not_before: float, not_after: float) -> float | None:
        table = self._model()
        item = table(self._key)
        condition = table.next_free.between(not_before, not_after)
        if not _updated(item, [table.next_free.add(by_s)], condition):
            return None
        return float(item.next_free)

    def restart(self, next_free: float, below: float) -> bool:
        table = self._model()
        condition = table.next_free.does_not_exist() | (table.next_free < below)
        return _updated(table(self._key), [table.next_free.set(next_free)], condition)


def _updated(item: Any, actions: list[Any], condition: Any) -> bool:
    """One conditional UpdateItem; False when its condition was not met (any other error is raised)."""
    try:
        item.update(actions=actions, condition=condition)
    except UpdateError as exc:
        if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
            return False
        raise
    return True
