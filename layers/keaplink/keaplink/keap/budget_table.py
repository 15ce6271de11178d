"""The shared Keap budget's item (pynamodb), ``BUDGET#<connection_id>`` in the connection table: the deployment's
next free call slot and a version that conditions every write. Bound to the table by the composition root."""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import UpdateError
from pynamodb.models import Model

from keaplink.keap.budget import BucketState


class BudgetItem(Model):
    class Meta:
        table_name = "unbound"

    pk = UnicodeAttribute(hash_key=True)
    next_free = NumberAttribute(null=True)
    version = NumberAttribute(null=True)


class TableBudgetStore:
    """:class:`~keaplink.keap.budget.BudgetStore` on the connection table: one GetItem or one UpdateItem."""

    def __init__(self, connection_id: str, model: Any) -> None:
        self._key = f"BUDGET#{connection_id}"
        self._model = model  # a callable returning the bound BudgetItem class (built on first use)

    def read(self) -> BucketState | None:
        table = self._model()
        try:
            item = table.get(self._key, consistent_read=True)
        except table.DoesNotExist:
            return None
        return BucketState(float(item.next_free or 0.0), int(item.version or 0))

    def write(self, seen: BucketState | None, next_free: float) -> BucketState | None:
        table = self._model()
        item = table(self._key)
        condition = table.version.does_not_exist() if seen is None else table.version == seen.version
        version = (seen.version if seen else 0) + 1
        try:
            item.update(actions=[table.next_free.set(next_free), table.version.set(version)], condition=condition)
        except UpdateError as exc:
            if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
                return None
            raise
        return BucketState(next_free, version)
