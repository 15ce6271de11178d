"""The operator's pause: a hold like any other (``HOLD#<id>``, reason ``paused_by_operator``), written straight
into the connection table. The actions function's minute check disables the event source; its probe never lifts
this hold. ``resume`` marks it *lifting*: the minute check enables the event source and then removes the record,
as for every hold. boto3 only (the client package does not carry pynamodb)."""

from __future__ import annotations

import time
from typing import Any

REASON = "paused_by_operator"


def _key(connection_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"HOLD#{connection_id}"}}


def pause(ddb: Any, table: str, connection_id: str, why: str, now: float | None = None) -> None:
    """Hold the queue until :func:`resume`; a hold keaplink set meanwhile is replaced (it comes back by itself if
    its cause remains after the resume)."""
    at = str(now if now is not None else time.time())
    ddb.update_item(
        TableName=table, Key=_key(connection_id),
        UpdateExpression="SET #reason = :r, detail = :d, next_probe_at = :t, updated_at = :t, "
                         "since = if_not_exists(since, :t), probes = :z REMOVE lifting_at, #until",
        ExpressionAttributeNames={"#reason": "reason", "#until": "until"},
        ExpressionAttributeValues={":r": {"S": REASON}, ":d": {"S": why[:500] or REASON}, ":t": {"N": at},
                                   ":z": {"N": "0"}},
    )


def resume(ddb: Any, table: str, connection_id: str, now: float | None = None) -> bool:
    """Lift the operator's pause (False: there is none — keaplink's own holds lift themselves)."""
    at = str(now if now is not None else time.time())
    try:
        ddb.update_item(
            TableName=table, Key=_key(connection_id),
            UpdateExpression="SET lifting_at = :t, next_probe_at = :t, updated_at = :t",
            ConditionExpression="#reason = :r AND attribute_not_exists(lifting_at)",
            ExpressionAttributeNames={"#reason": "reason"},
            ExpressionAttributeValues={":r": {"S": REASON}, ":t": {"N": at}},
        )
    except ddb.exceptions.ConditionalCheckFailedException:
        return False
    return True
