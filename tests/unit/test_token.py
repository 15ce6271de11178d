from __future__ import annotations

import pytest

from keaplink.connection.token import Token
from keaplink.errors import KeapUnavailable

BODY = {"access_token": "AT", "refresh_token": "RT", "expires_in": 86400, "token_type": "bearer",
        "scope": "full|ab123.infusionsoft.com"}


def test_from_keap_stores_absolute_expiry_and_tenant() -> None:
    token = Token.from_keap(BODY, now=1000.0)
    assert token.expires_at == 1000.0 + 86400
    assert token.tenant == "ab123.infusionsoft.com"


def test_repr_hides_tokens() -> None:
    text = repr(Token.from_keap(BODY, now=0.0))
    assert "'AT'" not in text and "'RT'" not in text


@pytest.mark.parametrize("broken", [{}, {**BODY, "expires_in": "x"}, {**BODY, "access_token": ""}, "html"])
def test_malformed_answers_are_keaps_fault(broken: object) -> None:
    with pytest.raises(KeapUnavailable):
        Token.from_keap(broken, now=0.0)


def test_scope_without_tenant() -> None:
    assert Token.from_keap({**BODY, "scope": "full"}, now=0).tenant is None
