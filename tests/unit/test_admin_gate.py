"""The sign-in gate's order of checks and the lockout decision, with in-memory fakes (no I/O)."""

from __future__ import annotations

import base64

import pytest

from keaplink.admin.gate import Admitted, Gate, LockedOut, Refusal, Refused
from keaplink.admin.lockout import Attempts, locked_for
from keaplink.errors import ConfigError
from keaplink.root import Expiring

PASSWORD = "fifteen-chars-ok"
NOW = 1_000_000.0


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class FakeFailures:
    """``attempts`` is what ``load`` reads; ``counted`` decides what ``count`` finds (by default the same)."""

    def __init__(self, attempts: Attempts | None = None, counted: Attempts | None = None) -> None:
        self.attempts = attempts
        self.at_count = counted if counted is not None else attempts
        self.loads = 0
        self.counted: list[str] = []
        self.given_back: list[str] = []

    def load(self, source_ip: str) -> Attempts | None:
        self.loads += 1
        return self.attempts

    def count(self, source_ip: str, now: float) -> int:
        locked = locked_for(self.at_count, now)
        if not locked:
            self.counted.append(source_ip)
        return locked

    def give_back(self, source_ip: str) -> None:
        self.given_back.append(source_ip)

    @property
    def added(self) -> list[str]:
        """The attempts that stay counted: the failures."""
        kept = list(self.counted)
        for source in self.given_back:
            kept.remove(source)
        return kept


class CountingPassword:
    def __init__(self, value: str = PASSWORD) -> None:
        self.value, self.reads = value, 0

    def __call__(self) -> str:
        self.reads += 1
        return self.value


def gate(failures: FakeFailures, password: CountingPassword, now: float = NOW) -> Gate:
    return Gate(password=password, failures=lambda: failures, clock=lambda: now,  # type: ignore[arg-type,return-value]
                session_salt="arn:secret:admin")


def test_no_credentials_touch_nothing() -> None:
    failures, password = FakeFailures(), CountingPassword()
    for header in (None, "", "Bearer x", "Basic ???", basic("admin", "y" * 2000)):
        assert gate(failures, password).check(header, None, "1.2.3.4") == Refused(Refusal.NO_CREDENTIALS)
    assert (failures.loads, password.reads, failures.added) == (0, 0, [])


def test_a_locked_source_is_refused_without_the_password_even_when_right() -> None:
    failures, password = FakeFailures(Attempts(10, NOW + 120.5)), CountingPassword()
    assert gate(failures, password).check(basic("admin", PASSWORD), None, "1.2.3.4") == LockedOut(121)
    assert password.reads == 0 and failures.added == []


def test_wrong_and_right_credentials() -> None:
    failures, password = FakeFailures(Attempts(9, NOW + 60)), CountingPassword()
    wrong = Refused(Refusal.WRONG_CREDENTIALS)
    assert gate(failures, password).check(basic("admin", "nope"), None, "1.2.3.4") == wrong
    assert gate(failures, password).check(basic("root", PASSWORD), None, "1.2.3.4") == wrong
    assert failures.added == ["1.2.3.4", "1.2.3.4"]
    assert gate(failures, password).check(basic("admin", PASSWORD), None, "1.2.3.4") == Admitted("admin")


def test_the_attempt_is_counted_before_the_comparison_and_a_right_one_is_given_back() -> None:
    failures, password = FakeFailures(Attempts(9, NOW + 60)), CountingPassword()
    assert gate(failures, password).check(basic("admin", PASSWORD), None, "1.2.3.4") == Admitted("admin")
    assert failures.counted == ["1.2.3.4"] and failures.given_back == ["1.2.3.4"] and failures.added == []


def test_a_source_whose_count_is_full_when_counting_is_locked_out_and_nothing_compared(monkeypatch) -> None:
    # The read said 9 (under the limit); meanwhile a concurrent guess took the 10th place.
    import keaplink.admin.gate as gate_module

    compared: list[tuple[str, str]] = []
    monkeypatch.setattr(gate_module, "credentials_match", lambda creds, _: compared.append(creds) or True)
    failures = FakeFailures(Attempts(9, NOW + 60), counted=Attempts(10, NOW + 60))
    assert gate(failures, CountingPassword()).check(basic("admin", PASSWORD), None, "1.2.3.4") == LockedOut(60)
    assert compared == [] and failures.counted == [] and failures.given_back == []


def test_a_short_password_fails_closed() -> None:
    with pytest.raises(ConfigError, match="shorter than 15 characters"):
        gate(FakeFailures(), CountingPassword("short")).check(basic("admin", "short"), None, "1.2.3.4")


@pytest.mark.parametrize(("attempts", "locked"), [
    (None, 0),
    (Attempts(9, NOW + 500), 0),
    (Attempts(10, NOW + 500), 500),
    (Attempts(25, NOW + 0.2), 1),
    (Attempts(10, NOW), 0),  # the window is over
    (Attempts(10, NOW - 1), 0),
])
def test_locked_for(attempts: Attempts | None, locked: int) -> None:
    assert locked_for(attempts, NOW) == locked


def test_expiring_reloads_after_its_ttl() -> None:
    now = [0.0]
    loads = iter(["first", "second"])
    value = Expiring(lambda: next(loads), ttl_s=300, clock=lambda: now[0])
    assert value() == "first"
    now[0] = 299.9
    assert value() == "first"
    now[0] = 300.0
    assert value() == "second"


def test_an_ipv6_source_counts_by_its_64() -> None:
    from keaplink.admin.lockout import source_key

    assert source_key("2001:db8:1:2::1") == source_key("2001:db8:1:2:ffff:ffff:ffff:ffff")
    assert source_key("2001:db8:1:2::1") != source_key("2001:db8:1:3::1")
    assert source_key("203.0.113.1") != source_key("203.0.113.2")
    assert source_key("unknown") == source_key("unknown")


# --- sessions: the sign-in form, then a signed cookie ------------------------------------------------------
def test_the_form_admits_with_a_session_that_the_gate_then_accepts_without_the_lockout() -> None:
    failures, password = FakeFailures(), CountingPassword()
    verdict = gate(failures, password).sign_in("admin", PASSWORD, "1.2.3.4")
    assert isinstance(verdict, Admitted) and verdict.session
    loads = failures.loads
    assert gate(failures, password).check(None, verdict.session, "9.9.9.9") == Admitted("admin")
    assert failures.loads == loads  # a valid session reads no lockout item


def test_the_form_counts_wrong_guesses_and_honours_the_lock() -> None:
    failures, password = FakeFailures(), CountingPassword()
    assert gate(failures, password).sign_in("admin", "nope", "1.2.3.4") == Refused(Refusal.WRONG_CREDENTIALS)
    assert failures.added == ["1.2.3.4"]
    locked = FakeFailures(Attempts(10, NOW + 60))
    assert gate(locked, password).sign_in("admin", PASSWORD, "1.2.3.4") == LockedOut(60)
    assert gate(failures, password).sign_in("", "", "1.2.3.4") == Refused(Refusal.NO_CREDENTIALS)


def test_a_session_ends_when_it_expires_or_the_password_changes() -> None:
    from keaplink.admin.auth import SESSION_LIFETIME_S

    failures = FakeFailures()
    verdict = gate(failures, CountingPassword()).sign_in("admin", PASSWORD, "1.2.3.4")
    assert isinstance(verdict, Admitted)
    later = NOW + SESSION_LIFETIME_S
    assert gate(failures, CountingPassword(), now=later - 1).check(None, verdict.session, "1.2.3.4") == Admitted(
        "admin")
    assert gate(failures, CountingPassword(), now=later).check(None, verdict.session, "1.2.3.4") == Refused(
        Refusal.NO_CREDENTIALS)
    rotated = CountingPassword("another-fifteen-chars")
    assert gate(failures, rotated).check(None, verdict.session, "1.2.3.4") == Refused(Refusal.NO_CREDENTIALS)


def test_a_forged_or_malformed_session_is_no_credentials_and_misshapen_ones_read_nothing() -> None:
    failures, password = FakeFailures(), CountingPassword()
    verdict = gate(failures, password).sign_in("admin", PASSWORD, "1.2.3.4")
    assert isinstance(verdict, Admitted) and verdict.session
    reads = password.reads
    for value in ("", "x", "v1.admin.1.2.3", "v2" + verdict.session[2:], verdict.session + "A" * 300):
        assert gate(failures, password).check(None, value, "1.2.3.4") == Refused(Refusal.NO_CREDENTIALS)
    assert password.reads == reads  # not even the password was read for these
    forged = verdict.session[:-2] + ("AA" if not verdict.session.endswith("AA") else "BB")
    longer = verdict.session.replace(".", ".", 1).split(".")
    longer[2] = str(int(longer[2]) + 3600)  # a later expiry with the old signature
    for value in (forged, ".".join(longer)):
        assert gate(failures, password).check(None, value, "1.2.3.4") == Refused(Refusal.NO_CREDENTIALS)
    assert failures.added == []  # a bad cookie is not a password guess


def test_another_deployment_s_session_is_not_accepted() -> None:
    failures, password = FakeFailures(), CountingPassword()
    verdict = gate(failures, password).sign_in("admin", PASSWORD, "1.2.3.4")
    assert isinstance(verdict, Admitted)
    other = Gate(password=password, failures=lambda: failures, clock=lambda: NOW,  # type: ignore[arg-type,return-value]
                 session_salt="arn:secret:other")
    assert other.check(None, verdict.session, "1.2.3.4") == Refused(Refusal.NO_CREDENTIALS)
