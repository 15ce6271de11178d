"""The token pair import's pure parts and its order of steps, with in-memory fakes."""

from __future__ import annotations

import pytest

from keaplink.connection.pair import Probe, TokenImporter, pair_problem, with_tenant
from keaplink.connection.token import Connection, Status, Token
from keaplink.errors import (
    KeapUnavailable,
    RefreshTokenDead,
    TokenPairInvalid,
    TokenPairRefused,
    TokenPairUnconfirmed,
)

NOW = 1_000_000.0


def token(scope: str = "full|ab123.infusionsoft.com") -> Token:
    return Token("new-access", "new-refresh", 86400, NOW + 86400, NOW, scope)


@pytest.mark.parametrize(("access", "refresh", "problem"), [
    ("a.b-c_d~e+f/g=", "r1", None),
    ("", "r1", "the access token is missing"),
    ("a1", "", "the refresh token is missing"),
    ("a 1", "r1", "the access token contains characters a Keap token does not have"),
    ("a1", "r1\n", "the refresh token contains characters a Keap token does not have"),
    ("a" * 2049, "r1", "the access token is longer than 2048 characters"),
    ("same", "same", "the access token and the refresh token are the same"),
])
def test_pair_problem(access: str, refresh: str, problem: str | None) -> None:
    assert pair_problem(access, refresh) == problem


def test_the_tenant_comes_from_the_scope_else_the_header() -> None:
    assert with_tenant(token(), "other.infusionsoft.com").tenant == "ab123.infusionsoft.com"
    assert with_tenant(token("full"), "sb1.infusionsoft.com").scope == "full|sb1.infusionsoft.com"
    assert with_tenant(token(""), "sb1.infusionsoft.com").scope == "full|sb1.infusionsoft.com"
    assert with_tenant(token("full"), None).tenant is None


class FakeOAuth:
    def __init__(self, answer: Token | Exception) -> None:
        self.answer, self.calls = answer, 0

    def refresh(self, refresh_token: str, now: float) -> Token:
        self.calls += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class FakeStore:
    def __init__(self, fail_times: int = 0) -> None:
        self.saved: list[Token] = []
        self.fail_times = fail_times

    def store_authorized(self, tok: Token, now: float) -> Connection:
        if self.fail_times:
            self.fail_times -= 1
            raise OSError("DynamoDB hiccup")
        self.saved.append(tok)
        return Connection("default", Status.CONNECTED, tok, version=len(self.saved), connected_at=now)


ACCEPTED = Probe(True, "ab123.infusionsoft.com")


def importer(oauth: FakeOAuth, store: FakeStore, probe: Probe = ACCEPTED) -> TokenImporter:
    def fake_probe(access: str) -> Probe:
        return probe

    return TokenImporter(store=store, oauth=oauth, probe=fake_probe, clock=lambda: NOW,  # type: ignore[arg-type]
                         sleep=lambda s: None)


def test_a_good_pair_is_refreshed_once_and_stored() -> None:
    oauth, store = FakeOAuth(token()), FakeStore(fail_times=2)  # the save is retried
    conn = importer(oauth, store).import_pair(" old-access ", "old-refresh\n")
    assert oauth.calls == 1 and [t.refresh_token for t in store.saved] == ["new-refresh"]
    assert conn.status is Status.CONNECTED and conn.connected_at == NOW


@pytest.mark.parametrize(("answer", "error"), [
    (RefreshTokenDead("invalid_grant", 400), TokenPairRefused),
    (KeapUnavailable("dropped", 0), TokenPairUnconfirmed),
])
def test_a_refused_or_unanswered_refresh_stores_nothing(answer: Exception, error: type[Exception]) -> None:
    store = FakeStore()
    with pytest.raises(error):
        importer(FakeOAuth(answer), store).import_pair("old-access", "old-refresh")
    assert store.saved == []


def test_a_malformed_pair_reaches_neither_keap_nor_the_store() -> None:
    oauth, store = FakeOAuth(token()), FakeStore()
    with pytest.raises(TokenPairInvalid):
        importer(oauth, store).import_pair("old access", "old-refresh")
    assert oauth.calls == 0 and store.saved == []
