from __future__ import annotations

import pytest

from keaplink.connection.decision import RefreshReason, next_refresh_at, refresh_margin, should_refresh
from keaplink.connection.token import Connection, Status, Token

NOW = 1_800_000_000.0


def conn(expires_in: int = 86400, age: float = 0.0, status: Status = Status.CONNECTED) -> Connection:
    token = Token("a", "r", expires_in=expires_in, expires_at=NOW - age + expires_in, issued_at=NOW - age)
    return Connection("default", status=status, token=token, version=1)


def test_margin_is_three_hours_for_a_24h_token() -> None:
    assert refresh_margin(86400) == 3 * 3600


def test_margin_follows_expires_in() -> None:
    assert refresh_margin(28800) == 3600  # an older Keap example returned 8 h tokens


@pytest.mark.parametrize(
    ("age_h", "reason"),
    [(0, RefreshReason.FRESH), (20.99, RefreshReason.FRESH), (21.01, RefreshReason.DUE), (23.9, RefreshReason.DUE),
     (24, RefreshReason.EXPIRED), (30, RefreshReason.EXPIRED)],
)
def test_should_refresh_by_age(age_h: float, reason: RefreshReason) -> None:
    assert should_refresh(conn(age=age_h * 3600), NOW) is reason


def test_needs_reauth_wins_over_expiry() -> None:
    assert should_refresh(conn(age=30 * 3600, status=Status.NEEDS_REAUTH), NOW) is RefreshReason.NEEDS_REAUTH


def test_not_connected_without_token() -> None:
    assert should_refresh(Connection("default"), NOW) is RefreshReason.NOT_CONNECTED


def test_next_refresh_at_is_21h_after_issue() -> None:
    assert next_refresh_at(conn()) == NOW + 21 * 3600
    assert next_refresh_at(Connection("default")) is None
