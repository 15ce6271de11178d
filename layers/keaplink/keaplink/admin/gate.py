"""Who may use the admin routes, decided in an order that keeps an anonymous flood cheap and a guesser slow.

1. No or malformed Basic credentials: refused (401 and the challenge) before anything is read — no
   secret, no table. This is every browser's first request and the bulk of any anonymous flood.
2. Well-formed credentials from a source locked out for failing too often: refused (429 and
   ``Retry-After``) after one table read, still without the secret, and without comparing the password:
   a right guess must look exactly like a wrong one while the lock holds.
3. Otherwise the password (cached by the composition root for 5 minutes, so a rotation takes effect
   within minutes and a stream of wrong guesses costs no Secrets Manager read) is compared in constant time
   (:func:`keaplink.admin.auth.credentials_match`). A wrong one counts a failure against its source.

Timing: steps 1 and 2 do not depend on the password. In step 3 a wrong password costs one table write more
than a right one; that tells the caller what the status code tells anyway.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from keaplink.admin.auth import credentials_match, parse_basic, password_problem
from keaplink.admin.lockout import locked_for
from keaplink.errors import ConfigError

if TYPE_CHECKING:
    from keaplink.admin.lockout import FailedSignIns


class Refusal(str, Enum):
    NO_CREDENTIALS = "no_credentials"  # nothing, or not a well-formed Basic header: not a guess
    WRONG_CREDENTIALS = "wrong_credentials"  # a guess that failed


@dataclass(frozen=True)
class Admitted:
    user: str


@dataclass(frozen=True)
class Refused:
    reason: Refusal


@dataclass(frozen=True)
class LockedOut:
    retry_after_s: int


Verdict = Admitted | Refused | LockedOut


@dataclass
class Gate:
    password: Callable[[], str]  # the admin secret's password, cached by the root
    failures: Callable[[], FailedSignIns]
    clock: Callable[[], float] = time.time

    def check(self, authorization: str | None, source_ip: str) -> Verdict:
        creds = parse_basic(authorization)
        if creds is None:
            return Refused(Refusal.NO_CREDENTIALS)
        failures = self.failures()
        locked = locked_for(failures.load(source_ip), self.clock())
        if locked:
            return LockedOut(locked)
        password = self.password()
        problem = password_problem(password)
        if problem:
            # Fails closed: nobody gets in until the secret holds a usable password.
            raise ConfigError(f"{problem}: put a longer one into the admin secret (ADMIN_SECRET)")
        if credentials_match(creds, password):
            return Admitted(creds[0])
        failures.add(source_ip, self.clock())
        return Refused(Refusal.WRONG_CREDENTIALS)
