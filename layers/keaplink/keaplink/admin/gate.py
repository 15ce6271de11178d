"""Who may use the admin routes, decided in an order that keeps an anonymous flood cheap and a guesser slow.

1. A session cookie of the right shape is verified with a key derived from the admin password (cached):
   a browser signed in with the form. A forged or expired one counts as no credentials.
2. No or malformed Basic credentials (and no valid session): refused before anything is read — no
   secret, no table. This is a browser's first request and the bulk of any anonymous flood.
3. Credentials (a Basic header from a script, or the sign-in form) from a source locked out for failing
   too often: refused after one table read, still without the secret and without comparing the password:
   a right guess must look exactly like a wrong one while the lock holds.
4. Otherwise the attempt is counted against its source (a conditional write that refuses past the limit:
   then locked out), and only then the password (cached by the composition root for 5 minutes) compared in
   constant time (:func:`keaplink.admin.auth.credentials_match`). A right one gives its count back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from keaplink.admin.auth import (
    credentials_match,
    is_session_shaped,
    issue_session,
    parse_basic,
    password_problem,
    session_key,
    verify_session,
)
from keaplink.admin.lockout import locked_for
from keaplink.errors import ConfigError

if TYPE_CHECKING:
    from keaplink.admin.lockout import FailedSignIns


class Refusal(str, Enum):
    NO_CREDENTIALS = "no_credentials"  # nothing usable: not a guess
    WRONG_CREDENTIALS = "wrong_credentials"  # a guess that failed


@dataclass(frozen=True)
class Admitted:
    user: str
    session: str | None = None  # a new session value, when the sign-in form admitted the admin


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
    session_salt: str = ""  # ties sessions to one deployment's admin secret

    def check(self, authorization: str | None, session: str | None, source_ip: str) -> Verdict:
        """A request to an admin route: its session cookie, else its Basic credentials."""
        if is_session_shaped(session):
            user = verify_session(session, self._session_key(), self.clock())
            if user is not None:
                return Admitted(user)
        creds = parse_basic(authorization)
        if creds is None:
            return Refused(Refusal.NO_CREDENTIALS)
        return self._try(creds, source_ip)

    def sign_in(self, user: str, password: str, source_ip: str) -> Verdict:
        """The sign-in form: the same checks as Basic credentials; admitted with a new session value."""
        if not user or not password or len(user) + len(password) > 1024:
            return Refused(Refusal.NO_CREDENTIALS)
        verdict = self._try((user, password), source_ip)
        if isinstance(verdict, Admitted):
            return Admitted(verdict.user, issue_session(self._session_key(), verdict.user, self.clock()))
        return verdict

    def _try(self, creds: tuple[str, str], source_ip: str) -> Verdict:
        failures = self.failures()
        now = self.clock()
        locked = locked_for(failures.load(source_ip), now)  # a locked source costs one read, no write
        if locked:
            return LockedOut(locked)
        password = self._usable_password()  # a broken secret fails closed before anything is counted
        locked = failures.count(source_ip, now)
        if locked:
            return LockedOut(locked)
        if credentials_match(creds, password):
            failures.give_back(source_ip)
            return Admitted(creds[0])
        return Refused(Refusal.WRONG_CREDENTIALS)

    def _usable_password(self) -> str:
        password = self.password()
        problem = password_problem(password)
        if problem:
            # Fails closed: nobody gets in until the secret holds a usable password.
            raise ConfigError(f"{problem}: put a longer one into the admin secret (ADMIN_SECRET)")
        return password

    def _session_key(self) -> bytes:
        return session_key(self._usable_password(), self.session_salt)
