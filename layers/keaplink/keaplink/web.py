"""Glue between the admin routes (Powertools REST resolver) and the layer: admin authentication,
typed-error → HTML page mapping, and the objects a request needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from keaplink import credentials, wiring
from keaplink.admin import STATE_COOKIE, status_view
from keaplink.admin_auth import CHALLENGE, authenticate, is_cross_site
from keaplink.config import ConfigError, Settings, get_settings
from keaplink.errors import (
    CodeExchangeFailed,
    KeapClientConfigError,
    KeapError,
    LeaseBusy,
    NeedsReauth,
    NotConnected,
    OAuthDenied,
    OAuthStateInvalid,
    TokenConflict,
)
from keaplink.http_event import header, public_base_url, url_origin, url_path
from keaplink.observability import logger, metrics
from keaplink.pages import error_page, status_page

# Typed error → (HTTP status, page title, what the admin should do). Looked up along the MRO, so the most
# specific class wins; the text shown never decides anything.
ERROR_PAGES: dict[type[Exception], tuple[int, str, str]] = {
    OAuthDenied: (403, "Keap access was denied", "Nothing was changed. If you clicked Allow and still see this, "
                  "the Keap login you used may have no Keap app attached; sign in with the app's admin user."),
    OAuthStateInvalid: (400, "This connection link is not valid", "It is unknown, expired (10 minutes), already "
                        "used, or was started in another browser. Nothing was changed: start again."),
    CodeExchangeFailed: (400, "Keap did not accept the authorization", "Nothing was changed: start again."),
    KeapClientConfigError: (500, "Keap refused keaplink's client id or secret",
                            "Check the Keap client id/secret in Secrets Manager."),
    NotConnected: (409, "Keap is not connected", "Connect Keap first."),
    NeedsReauth: (409, "Keap needs to be reconnected", "The refresh token is no longer valid: reconnect."),
    LeaseBusy: (503, "A refresh is already running", "Try again in a minute."),
    TokenConflict: (409, "The connection changed meanwhile", "Reload the status page."),
    KeapError: (502, "Keap could not be reached", "Nothing was changed. Try again in a few minutes."),
    ConfigError: (500, "keaplink is misconfigured", "See the function's logs."),
}


def html(status: int, body: str, headers: Mapping[str, str] | None = None) -> Response[str]:
    return Response(
        status,
        content_types.TEXT_HTML,
        body,
        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY", **(headers or {})},
    )


@dataclass(frozen=True)
class RequestContext:
    settings: Settings
    admin: str
    base_url: str
    base_path: str
    callback_url: str
    client_id: str


def base_url(event: Mapping[str, Any]) -> str:
    """Where the admin routes are served: the one derivation every page, redirect and check uses."""
    return public_base_url(event, get_settings().public_base_url)


def request_context(event: Mapping[str, Any]) -> RequestContext:
    settings = get_settings()
    base = base_url(event)
    client_id = "" if settings.is_api_key_mode else credentials.client_credentials().client_id
    return RequestContext(
        settings=settings,
        admin=str((event.get("requestContext") or {}).get("keaplinkAdmin", "admin")),
        base_url=base,
        base_path=url_path(base),
        callback_url=f"{base}/callback",
        client_id=client_id,
    )


def status_dict(event: Mapping[str, Any]) -> dict[str, Any]:
    ctx = request_context(event)
    return status_view(wiring.token_store().load(), ctx.settings.auth_mode, ctx.callback_url)


def render_status(event: Mapping[str, Any], message: str | None) -> str:
    ctx = request_context(event)
    view = status_view(wiring.token_store().load(), ctx.settings.auth_mode, ctx.callback_url)
    return status_page(view, ctx.base_path, message)


def redirect_to_status(event: Mapping[str, Any], message: str, clear_state_cookie: bool = False) -> Response[str]:
    ctx = request_context(event)
    headers = {"Location": f"{ctx.base_path}/?message={quote(message)}"}
    if clear_state_cookie:
        headers["Set-Cookie"] = f"{STATE_COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"
    return html(303, "", headers)


def _require_admin(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[str]:
    """Every admin route needs HTTP Basic credentials; anything else gets a bare 401."""
    event = app.current_event.raw_event
    user = authenticate(header(event, "Authorization"), credentials.admin_password())
    if user is None:
        metrics.add_metric("AdminAuthRejected", "Count", 1)
        return Response(401, content_types.TEXT_PLAIN, "Unauthorized", headers={"WWW-Authenticate": CHALLENGE})
    event.setdefault("requestContext", {})["keaplinkAdmin"] = user
    if is_cross_site(str(event.get("httpMethod", "GET")), header(event, "Sec-Fetch-Site"), header(event, "Origin"),
                     url_origin(base_url(event))):
        logger.warning("cross-site request refused", extra={"path": event.get("path")})
        return Response(403, content_types.TEXT_PLAIN, "Cross-site request refused")
    return next_middleware(app)


def protect(app: APIGatewayRestResolver) -> None:
    """Install admin authentication and the typed-error pages on a resolver."""
    app.use(middlewares=[_require_admin])

    def render(exc: Exception) -> Response[str]:
        status, title, hint = next(
            (ERROR_PAGES[cls] for cls in type(exc).__mro__ if cls in ERROR_PAGES), (500, "Error", "")
        )
        detail = f"{hint} ({type(exc).__name__}: {exc})" if hint else str(exc)
        if isinstance(exc, OAuthDenied):
            detail = f"Keap said: {exc.description or exc.error}. {hint}"
        logger.warning("admin request failed", extra={"error_type": type(exc).__name__, "status": status})
        return html(status, error_page(title, detail, url_path(base_url(app.current_event.raw_event))))

    for exc_type in ERROR_PAGES:
        app.exception_handler(exc_type)(render)

