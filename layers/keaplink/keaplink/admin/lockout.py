"""Failed sign-ins per source address, and when a source is locked out.

One item per source in the connection table, ``AUTHFAIL#<hash of the source IP>``: a failure count in a
fixed window of 15 minutes, with a DynamoDB TTL so that old items go away on their own. Ten failures lock
the source out until its window ends, so one address can try at most 10 passwords per 15 minutes (960 a
day, against ~864,000 a day at the stage's 10 requests/s before). An attempt is counted before its password
is compared, by a conditional write that cannot pass the limit, and given back when the password was right:
concurrent guesses cannot outrun the count, and a right password never uses up the window.

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

    def count(self, source_ip: str, now: float, max_attempts: int = MAX_FAILURES) -> int:
        """Count one attempt before its password is compared, atomically: 0 when counted, else the seconds the
        source stays locked out (it had used its window's attempts, and this one is not counted).

        The count goes up only while it is under ``max_attempts`` (a condition DynamoDB checks in the same
        write), so however many guesses race, at most ``max_attempts`` per window get to a comparison.
        """
        from pynamodb.exceptions import UpdateError

        from keaplink.aws import conditional_failed

        m = self._table()
        item = m(source_key(source_ip))
        until = now + self.window_s
        for _ in range(3):  # two attempts racing to open a window: the loser counts in the winner's
            try:
                item.update(actions=[m.failures.add(1)],
                            condition=(m.window_until > now) & (m.failures < max_attempts))
                return 0
            except UpdateError as exc:
                if not conditional_failed(exc):
                    raise
            try:
                item.update(
                    actions=[m.failures.set(1), m.window_until.set(until), m.ttl.set(int(until + 3600))],
                    condition=m.window_until.does_not_exist() | (m.window_until <= now),
                )
                return 0
            except UpdateError as exc:
                if not conditional_failed(exc):
                    raise
            locked = locked_for(self.load(source_ip), now, max_attempts)
            if locked:
                return locked
        return max(1, math.ceil(self.window_s))  # the window keeps changing under us: refuse (fails closed)

    def give_back(self, source_ip: str) -> None:
        """Uncount an attempt whose password was right: a script that signs in often is never locked out."""
        from pynamodb.exceptions import UpdateError

        from keaplink.aws import conditional_failed

        m = self._table()
        try:
            m(source_key(source_ip)).update(actions=[m.failures.add(-1)], condition=m.failures > 0)
        except UpdateError as exc:
            if not conditional_failed(exc):  # nothing to give back: the window was reset meanwhile
                raise
