"""Who the admin is, decided without I/O: Basic credentials (scripts, the CLI), the signed session cookie
(browsers, after the sign-in form), and the cross-site check."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import re
import secrets

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


# --- the browser's session --------------------------------------------------------------------------------
# API Gateway renames a function's WWW-Authenticate header, so a browser never sees a Basic challenge there
# (docs/decisions.md, "Sign-in"): browsers sign in with a form and carry a signed, expiring cookie instead.
SESSION_LIFETIME_S = 8 * 3600  # a working day; then the admin signs in again
SESSION_COOKIE = "keaplink_session"
SECURE_SESSION_COOKIE = "__Host-keaplink_session"  # __Host-: only set over HTTPS, for this host, Path=/
_SESSION = re.compile(r"v1\.([A-Za-z0-9_-]{1,64})\.([0-9]{1,12})\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})")
_MAX_SESSION_LENGTH = 200


def session_cookie_name(https: bool) -> str:
    return SECURE_SESSION_COOKIE if https else SESSION_COOKIE


def is_session_shaped(value: str | None) -> bool:
    """A cookie value that could be a session: checked before any secret is read to verify it."""
    return bool(value) and len(value or "") <= _MAX_SESSION_LENGTH and _SESSION.fullmatch(value or "") is not None


@functools.lru_cache(maxsize=4)
def session_key(password: str, salt: str) -> bytes:
    """The key that signs sessions, derived from the admin password: a new password signs everyone out.
    scrypt, so that a stolen cookie is no cheap way to guess the password offline."""
    return hashlib.scrypt(password.encode(), salt=f"keaplink-session-v1|{salt}".encode(), n=2**14, r=8, p=1,
                          dklen=32)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _session_mac(key: bytes, user: str, expires_at: int, nonce: str) -> str:
    return _b64(hmac.new(key, f"v1|{user}|{expires_at}|{nonce}".encode(), hashlib.sha256).digest())


def issue_session(key: bytes, user: str, now: float, lifetime_s: int = SESSION_LIFETIME_S) -> str:
    """A session value: ``v1.<user>.<expires_at>.<nonce>.<mac>``."""
    expires_at = int(now) + lifetime_s
    nonce = _b64(secrets.token_bytes(16))
    return f"v1.{user}.{expires_at}.{nonce}.{_session_mac(key, user, expires_at, nonce)}"


def verify_session(value: str | None, key: bytes, now: float) -> str | None:
    """The session's user if ``value`` was signed with ``key`` and has not expired, else None."""
    if not is_session_shaped(value):
        return None
    match = _SESSION.fullmatch(value or "")
    assert match is not None
    user, expires_at, nonce, mac = match.group(1), int(match.group(2)), match.group(3), match.group(4)
    if not hmac.compare_digest(mac.encode(), _session_mac(key, user, expires_at, nonce).encode()):
        return None
    if expires_at <= now or expires_at > now + SESSION_LIFETIME_S + 60:
        return None
    return user


def session_cookie(value: str, https: bool, max_age: int = SESSION_LIFETIME_S) -> str:
    """``Set-Cookie`` for a session: never readable by scripts, never sent by another site's request."""
    name = session_cookie_name(https)
    return f"{name}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict" + ("; Secure" if https else "")


def clear_session_cookie(https: bool) -> str:
    return session_cookie("", https, max_age=0)
