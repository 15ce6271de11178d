from __future__ import annotations

import base64

from keaplink.admin_auth import authenticate, parse_basic


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_right_credentials() -> None:
    assert authenticate(basic("admin", "s3cret:with:colons"), "s3cret:with:colons") == "admin"


def test_wrong_password_user_or_scheme() -> None:
    assert authenticate(basic("admin", "nope"), "s3cret") is None
    assert authenticate(basic("root", "s3cret"), "s3cret") is None
    assert authenticate("Bearer abc", "s3cret") is None
    assert authenticate(None, "s3cret") is None
    assert authenticate("Basic !!!notbase64", "s3cret") is None


def test_empty_expected_password_never_authenticates() -> None:
    assert authenticate(basic("admin", ""), "") is None


def test_parse_basic_needs_a_colon() -> None:
    assert parse_basic("Basic " + base64.b64encode(b"admin").decode()) is None
    assert parse_basic("basic " + base64.b64encode(b"a:b").decode()) == ("a", "b")
