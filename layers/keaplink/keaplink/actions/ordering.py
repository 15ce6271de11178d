"""Per-user ordering inside one SQS batch (pure): a signup and a press of the same user must not race,
while different users run concurrently."""

from __future__ import annotations

from collections.abc import Sequence


def predecessors(users: Sequence[str | None]) -> list[int | None]:
    """For each record (by its user, None when unknown), the index of the same user's previous record.

    A record waits for its predecessor to finish; records without a user (unreadable bodies) wait for none.
    """
    last: dict[str, int] = {}
    result: list[int | None] = []
    for index, user in enumerate(users):
        result.append(last.get(user) if user is not None else None)
        if user is not None:
            last[user] = index
    return result
