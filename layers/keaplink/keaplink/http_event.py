"""Pure helpers over API Gateway (REST) proxy events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def header(event: Mapping[str, Any], name: str) -> str | None:
    headers = event.get("headers") or {}
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return str(value)
    return None


def public_base_url(event: Mapping[str, Any], configured: str | None = None) -> str:
    """The URL under which the admin routes are served, e.g. ``https://abc.execute-api…/Prod``.

    ``PUBLIC_BASE_URL`` wins (custom domains). Otherwise it is rebuilt from the request: API Gateway's
    ``requestContext.path`` is the full path (with the stage or an emulator's prefix) and ``path`` the
    route, so their difference is the prefix. A template cannot pass the API's own URL to its functions
    (circular dependency), hence this.
    """
    if configured:
        return configured.rstrip("/")
    ctx = event.get("requestContext") or {}
    host = header(event, "Host") or ctx.get("domainName") or "localhost"
    route = str(event.get("path") or "/")
    full = str(ctx.get("path") or "")
    if full and route != "/" and full.endswith(route):
        prefix = full[: -len(route)]
    elif full and route == "/":
        prefix = full.rstrip("/")
    else:
        stage = ctx.get("stage")
        prefix = f"/{stage}" if stage and stage != "$default" else ""
    proto = header(event, "X-Forwarded-Proto")
    if not proto:
        local = host.split(":")[0] in ("localhost", "127.0.0.1")
        proto = "http" if local else "https"
    return f"{proto}://{host}{prefix}".rstrip("/")


def url_origin(url: str) -> str:
    """``https://host:port`` of a URL."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def url_path(url: str) -> str:
    """The path of a URL without a trailing slash (``""`` for the root)."""
    _, _, rest = url.partition("://")
    path = rest.partition("/")[2]
    return f"/{path}".rstrip("/")
