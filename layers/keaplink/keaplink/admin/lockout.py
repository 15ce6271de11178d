"""Failed sign-ins per source address, and when a source is locked out.

One item per source in the connection table, ``AUTHFAIL#<hash of the source IP>``: a failure count in a
fixed window of 15 minutes, with a DynamoDB TTL so that old items go away on their own. Ten failures lock
the source out until its window ends, so one address can try at most 10 passwords per 15 minutes (960 a
day, against ~864,000 a day at the stage's 10 requests/s before).

An IPv6 source counts by its /64. The source is hashed so that the key has one shape and the table lists
no raw addresses; an IPv4 hash is easily reversed, so this is tidiness, not anonymity. The address is API
Gateway's ``requestContext.identity.sourceIp`` (the TCP peer), never ``X-Forwarded-For``, which the client
writes.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keaplink.connection.table import ConnectionItem

MAX_FAILURES = 10
WINDOW_S = 900.0
KEY_PREFIX = "AUTHFAIL#"


@dataclass(frozen=True)
class Attempts:
    failures: int
    window_until: float  # absolute epoch seconds


def locked_for(attempts: Attempts | None, now: float, max_failures: int = MAX_FAILURES) -> int:
    """Seconds the source stays locked out (0: it may try). Pure."""
    if attempts is None or attempts.window_until <= now or attempts.failures < max_failures:
        return 0
    return max(1, math.ceil(attempts.window_until - now))


def source_of(source_ip: str) -> str:
    """Who counts as one source: an IPv4 address, or an IPv6 /64 — one subscriber usually gets a whole
    /64, so counting single IPv6 addresses would give a guesser 2**64 fresh starts."""
    try:
        address = ipaddress.ip_address(source_ip)
    except ValueError:
        return source_ip
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def source_key(source_ip: str) -> str:
    return KEY_PREFIX + hashlib.sha256(source_of(source_ip).encode()).hexdigest()[:32]


class FailedSignIns:
    """``table`` gives the bound pynamodb model on first use (pynamodb stays off the cold-start path)."""

    def __init__(self, table: Callable[[], type[ConnectionItem]], window_s: float = WINDOW_S) -> None:
        self._table = table
        self.window_s = window_s

    def load(self, source_ip: str) -> Attempts | None:
        from pynamodb.exceptions import DoesNotExist

        try:
            item = self._table().get(source_key(source_ip), consistent_read=True)
        except DoesNotExist:
            return None
        if item.failures is None or item.window_until is None:
            return None
        return Attempts(int(item.failures), float(item.window_until))

    def add(self, source_ip: str, now: float) -> Attempts:
        """Count one failure: in the source's current window, or in a new one when there is none."""
        from pynamodb.exceptions import UpdateError

        from keaplink.aws import conditional_failed

        m = self._table()
        item = m(source_key(source_ip))
        for _ in range(3):  # two failures racing to open a window: the loser counts in the winner's
            try:
                item.update(actions=[m.failures.add(1)], condition=m.window_until > now)
                break
            except UpdateError as exc:
                if not conditional_failed(exc):
                    raise
            until = now + self.window_s
            try:
                item.update(
                    actions=[m.failures.set(1), m.window_until.set(until), m.ttl.set(int(until + 3600))],
                    condition=m.window_until.does_not_exist() | (m.window_until <= now),
                )
                break
            except UpdateError as exc:
                if not conditional_failed(exc):
                    raise
        return Attempts(int(item.failures or 0), float(item.window_until or now))
