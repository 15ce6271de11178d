from __future__ import annotations

from keaplink.actions.ordering import predecessors


def test_each_record_waits_for_the_same_users_previous_record() -> None:
    assert predecessors(["u1", "u2", "u1", None, "u2", "u1"]) == [None, None, 0, None, 1, 2]


def test_unknown_users_wait_for_nobody() -> None:
    assert predecessors([None, None]) == [None, None]
