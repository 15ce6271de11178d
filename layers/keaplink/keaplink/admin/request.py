"""What an admin request is about: where the panel is served, who is asking, the OAuth state cookie.

Pure helpers over Powertools' event object (its headers are case-insensitive).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keaplink.config import Settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

STATE_COOKIE = "keaplink_oauth_state"
# A host name or address with an optional port; anything else in a Host header (a path, a space, CR/LF) is
# not used to build URLs.
_HOST = re.compile(r"(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")


@dataclass(frozen=True)
class RequestContext:
    """Built once per request by the admin middleware, after authentication."""

    admin: str
    base_url: str  # e.g. https://abc.execute-api.us-east-1.amazonaws.com/prod
    settings: Settings

    @property
    def base_path(self) -> str:
        return url_path(self.base_url)

    @property
    def callback_url(self) -> str:
        return f"{self.base_url}/callback"

    @property
    def is_https(self) -> bool:
        return self.base_url.startswith("https://")


def public_base_url(event: APIGatewayProxyEvent, configured: str | None = None) -> str:
    """The URL under which the admin routes are served, e.g. ``https://abc.execute-api…/Prod``.

    ``PUBLIC_BASE_URL`` wins (custom domains). Otherwise it is rebuilt from the request: API Gateway's
    ``requestContext.path`` is the full path (with the stage or an emulator's prefix) and ``path`` the
    route, so their difference is the prefix. A template cannot pass the API's own URL to its functions
    (circular dependency), hence this.
    """
    if configured:
        return configured.rstrip("/")
    ctx = event.get("requestContext") or {}
    candidates = (event.headers.get("Host"), ctx.get("domainName"))
    host = next((h for h in candidates if isinstance(h, str) and _HOST.fullmatch(h)), "localhost")
    route = event.path or "/"
    full = str(ctx.get("path") or "")
    if full and route != "/" and full.endswith(route):
        prefix = full[: -len(route)]
    elif full and route == "/":
        prefix = full.rstrip("/")
    else:
        stage = ctx.get("stage")
        prefix = f"/{stage}" if stage and stage != "$default" else ""
    proto = (event.headers.get("X-Forwarded-Proto") or "").lower()
    if proto not in ("http", "https"):
        local = host.split(":")[0] in ("localhost", "127.0.0.1")
        proto = "http" if local else "https"
    return f"{proto}://{host}{prefix}".rstrip("/")


def source_ip(event: APIGatewayProxyEvent) -> str:
    """The caller's address as API Gateway saw it (the TCP peer; never X-Forwarded-For, which the caller
    writes)."""
    identity = (event.get("requestContext") or {}).get("identity") or {}
    value = identity.get("sourceIp") if isinstance(identity, dict) else None
    return str(value)[:64] if value else "unknown"


def url_origin(url: str) -> str:
    """``https://host:port`` of a URL."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def url_path(url: str) -> str:
    """The path of a URL without a trailing slash (``""`` for the root)."""
    _, _, rest = url.partition("://")
    path = rest.partition("/")[2]
    return f"/{path}".rstrip("/")


def state_cookie(state: str, https: bool, max_age: int) -> str:
    """``Set-Cookie`` for the OAuth state: ``Lax``, so that Keap's redirect back (a top-level GET from another
    site) carries it; ``max_age=0`` with an empty value clears it."""
    return f"{STATE_COOKIE}={state}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if https else "")


def cookie_value(cookies: list[str] | str | None, name: str = STATE_COOKIE) -> str | None:
    """Find one cookie in a Cookie header (or API Gateway's list of cookies)."""
    if not cookies:
        return None
    parts = cookies if isinstance(cookies, list) else [cookies]
    for part in parts:
        for pair in part.split(";"):
            key, sep, value = pair.strip().partition("=")
            if sep and key == name:
                return value
    return None
