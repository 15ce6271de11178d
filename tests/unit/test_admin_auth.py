from __future__ import annotations

import base64

from keaplink.admin.auth import authenticate, parse_basic


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


def test_cross_site_posts_are_refused() -> None:
    from keaplink.admin.auth import is_cross_site

    own = "https://abc.execute-api.us-east-1.amazonaws.com"
    assert is_cross_site("POST", "cross-site", None, own)
    assert is_cross_site("POST", "same-site", None, own)  # a sibling subdomain is still another app
    assert not is_cross_site("POST", "same-origin", own, own)
    assert not is_cross_site("POST", "none", None, own)  # typed in the address bar / bookmarks
    assert is_cross_site("POST", None, "https://evil.example", own)
    assert not is_cross_site("POST", None, own + "/", own)
    assert not is_cross_site("POST", None, None, own)  # curl and scripts
    assert not is_cross_site("GET", "cross-site", "https://evil.example", own)  # links are fine: GETs change nothing


def test_password_problem() -> None:
    from keaplink.admin.auth import password_problem

    assert password_problem("") == "the admin password is empty"
    assert password_problem("x" * 14) == "the admin password is shorter than 15 characters"
    assert password_problem("x" * 15) is None


def test_an_oversized_or_userless_header_is_not_credentials() -> None:
    assert parse_basic(basic("admin", "x" * 1200)) is None
    assert parse_basic(basic("", "password")) is None


def test_comparison_takes_the_same_path_for_any_length() -> None:
    from keaplink.admin.auth import credentials_match

    expected = "a-long-enough-password"
    assert credentials_match(("admin", expected), expected)
    for guess in ("", "a", expected[:-1], expected + "x", "x" * 10_000):
        assert not credentials_match(("admin", guess), expected)
    assert not credentials_match(("admin", ""), "")


def test_session_cookies_are_host_only_strict_and_secure_over_https() -> None:
    from keaplink.admin.auth import clear_session_cookie, session_cookie

    secure = session_cookie("v", https=True)
    assert secure.startswith("__Host-keaplink_session=v;")
    for attribute in ("Path=/", "HttpOnly", "SameSite=Strict", "Secure", "Max-Age=28800"):
        assert attribute in secure.split("; ")
    assert "Domain" not in secure
    plain = session_cookie("v", https=False)  # the local stack over http: no __Host- prefix, no Secure
    assert plain.startswith("keaplink_session=v;") and "Secure" not in plain and "SameSite=Strict" in plain
    assert "Max-Age=0" in clear_session_cookie(https=True).split("; ")
