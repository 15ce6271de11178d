"""HTTP Basic authentication for the admin routes (pure: no I/O)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json

ADMIN_USER = "admin"
CHALLENGE = 'Basic realm="keaplink admin", charset="UTF-8"'
# NIST SP 800-63B-4 (2024), 3.1.1.2: a password used as the only factor is at least 15 characters long.
MIN_PASSWORD_LENGTH = 15
# Far above any real "Basic <base64(admin:password)>"; a longer header is refused unread.
MAX_AUTHORIZATION_LENGTH = 1024


def password_from_secret(secret_string: str) -> str:
    """The admin password: the secret's ``password`` field (JSON, as the template writes it) or the whole
    string (a secret an installer set by hand)."""
    try:
        parsed = json.loads(secret_string)
    except ValueError:
        return secret_string
    return str(parsed.get("password", "")) if isinstance(parsed, dict) else secret_string


def password_problem(password: str) -> str | None:
    """Why this admin password must not be used, or None. An unusable password refuses every sign-in."""
    if not password:
        return "the admin password is empty"
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the admin password is shorter than {MIN_PASSWORD_LENGTH} characters"
    return None


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """``(user, password)`` from a well-formed ``Basic`` header, else None (nothing else is looked at)."""
    if not header or len(header) > MAX_AUTHORIZATION_LENGTH:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep and user else None


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def credentials_match(creds: tuple[str, str], expected_password: str, expected_user: str = ADMIN_USER) -> bool:
    """Both parts compared in constant time, both comparisons always run, and on SHA-256 digests of equal
    length, so the time taken tells nothing about either value, not even its length."""
    if not expected_password:
        return False  # never let an unset password mean "no password"
    user, password = creds
    user_ok = hmac.compare_digest(_digest(user), _digest(expected_user))
    password_ok = hmac.compare_digest(_digest(password), _digest(expected_password))
    return user_ok and password_ok


def authenticate(header: str | None, expected_password: str, expected_user: str = ADMIN_USER) -> str | None:
    """The admin's user name if ``header`` carries the right credentials, else None."""
    creds = parse_basic(header)
    if creds is None:
        return None
    return expected_user if credentials_match(creds, expected_password, expected_user) else None


def is_cross_site(method: str, sec_fetch_site: str | None, origin: str | None, own_origin: str) -> bool:
    """A state-changing request sent by another site (CSRF)? Browsers resend Basic credentials on their
    own, so a form on any page could otherwise POST here with the admin's login.

    ``Sec-Fetch-Site`` decides when present (all current browsers send it); else ``Origin``; a request with
    neither (curl, scripts) is not a browser's cross-site request.
    """
    if method.upper() in ("GET", "HEAD", "OPTIONS"):
        return False
    if sec_fetch_site:
        return sec_fetch_site.lower() not in ("same-origin", "none")
    if origin and origin != "null":
        return origin.rstrip("/").lower() != own_origin.rstrip("/").lower()
    return origin == "null"
