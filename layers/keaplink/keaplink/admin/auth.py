"""HTTP Basic authentication for the admin routes (pure: no I/O)."""

from __future__ import annotations

import base64
import binascii
import hmac
import json

ADMIN_USER = "admin"
CHALLENGE = 'Basic realm="keaplink admin", charset="UTF-8"'


def password_from_secret(secret_string: str) -> str:
    """The admin password: the secret's ``password`` field (JSON, as the template writes it) or the whole
    string (a secret an installer set by hand)."""
    try:
        parsed = json.loads(secret_string)
    except ValueError:
        return secret_string
    return str(parsed.get("password", "")) if isinstance(parsed, dict) else secret_string


def parse_basic(header: str | None) -> tuple[str, str] | None:
    if not header:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def authenticate(header: str | None, expected_password: str, expected_user: str = ADMIN_USER) -> str | None:
    """The admin's user name if ``header`` carries the right credentials, else None.

    Both parts are compared in constant time, and both comparisons always run.
    """
    if not expected_password:
        return None  # never let an unset password mean "no password"
    creds = parse_basic(header)
    user, password = creds if creds else ("", "")
    user_ok = hmac.compare_digest(user.encode(), expected_user.encode())
    password_ok = hmac.compare_digest(password.encode(), expected_password.encode())
    return expected_user if (creds and user_ok and password_ok) else None


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
