"""The admin panel on Powertools' REST resolver: authentication and the request context in one middleware,
typed errors mapped to HTML pages, and one adapter per route between the resolver and :mod:`routes`."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.logging import correlation_paths

from keaplink.admin import pages
from keaplink.admin.auth import CHALLENGE, authenticate, is_cross_site
from keaplink.admin.request import STATE_COOKIE, RequestContext, cookie_value, public_base_url, url_origin, url_path
from keaplink.admin.routes import complete_connect, start_connect, status_view
from keaplink.errors import (
    CodeExchangeFailed,
    ConfigError,
    KeapClientConfigError,
    KeapError,
    LeaseBusy,
    NeedsReauth,
    NotConnected,
    OAuthDenied,
    OAuthStateInvalid,
    OutOfTime,
    TokenConflict,
)
from keaplink.keap.deadline import Deadline
from keaplink.observability import logger, metrics

if TYPE_CHECKING:  # typing only: a function imports the parts of the connection it uses, when it uses them
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from keaplink.config import Settings
    from keaplink.connection.oauth import OAuthClient
    from keaplink.connection.refresh import Refresher
    from keaplink.connection.states import StateStore
    from keaplink.connection.store import TokenStore

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
    OutOfTime: (503, "Keap is slow right now", "Nothing was changed. Try again in a minute."),
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


def resolver(settings: Callable[[], Settings], admin_password: Callable[[], str]) -> APIGatewayRestResolver:
    """A REST resolver whose every route needs the admin's Basic credentials, with typed-error pages."""
    app = APIGatewayRestResolver()

    def admin_only(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[str]:
        event = app.current_event
        user = authenticate(event.headers.get("Authorization"), admin_password())
        if user is None:
            metrics.add_metric("AdminAuthRejected", "Count", 1)
            return Response(401, content_types.TEXT_PLAIN, "Unauthorized", headers={"WWW-Authenticate": CHALLENGE})
        ctx = RequestContext(admin=user, base_url=public_base_url(event, settings().public_base_url),
                             settings=settings())
        app.append_context(request=ctx)  # type: ignore[no-untyped-call]  # Powertools leaves it untyped
        if is_cross_site(event.http_method, event.headers.get("Sec-Fetch-Site"), event.headers.get("Origin"),
                         url_origin(ctx.base_url)):
            logger.warning("cross-site request refused", extra={"path": event.path})
            return Response(403, content_types.TEXT_PLAIN, "Cross-site request refused")
        return next_middleware(app)

    def error_page(exc: Exception) -> Response[str]:
        status, title, hint = next(
            (ERROR_PAGES[cls] for cls in type(exc).__mro__ if cls in ERROR_PAGES), (500, "Error", "")
        )
        detail = f"{hint} ({type(exc).__name__}: {exc})" if hint else str(exc)
        if isinstance(exc, OAuthDenied):
            detail = f"Keap said: {exc.description or exc.error}. {hint}"
        logger.warning("admin request failed", extra={"error_type": type(exc).__name__, "status": status})
        ctx = app.context.get("request")
        base = ctx.base_url if isinstance(ctx, RequestContext) else public_base_url(app.current_event)
        return html(status, pages.error_page(title, detail, url_path(base)))

    app.use(middlewares=[admin_only])
    for exc_type in ERROR_PAGES:
        app.exception_handler(exc_type)(error_page)
    return app


def lambda_handler(app: APIGatewayRestResolver) -> Callable[[dict[str, Any], LambdaContext], dict[str, Any]]:
    """The function's entry point: structured logs with API Gateway's request id, metrics flushed, routed."""

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return app.resolve(event, context)

    return handler


def request(app: APIGatewayRestResolver) -> RequestContext:
    ctx: RequestContext = app.context["request"]
    return ctx


def redirect_to_status(app: APIGatewayRestResolver, message: str, clear_state_cookie: bool = False) -> Response[str]:
    headers = {"Location": f"{request(app).base_path}/?message={quote(message)}"}
    if clear_state_cookie:
        headers["Set-Cookie"] = f"{STATE_COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"
    return html(303, "", headers)


# --- one adapter per route ----------------------------------------------------------------------------
def status_json(app: APIGatewayRestResolver, store: TokenStore,
                queue: Callable[[], Mapping[str, Any]] | None = None) -> dict[str, Any]:
    ctx = request(app)
    return status_view(store.load(), ctx.settings.auth_mode, ctx.callback_url, queue() if queue else None)


def status_page(app: APIGatewayRestResolver, store: TokenStore,
                queue: Callable[[], Mapping[str, Any]] | None = None) -> Response[str]:
    ctx = request(app)
    message = app.current_event.get_query_string_value("message")
    return html(200, pages.status_page(status_json(app, store, queue), ctx.base_path, message))


def connect(app: APIGatewayRestResolver, states: StateStore, client_id: Callable[[], str]) -> Response[str]:
    ctx = request(app)
    start = start_connect(states, ctx.admin, client_id(), ctx.settings.keap_authorize_url, ctx.callback_url,
                          time.time(), secure_cookie=ctx.is_https)
    return Response(302, content_types.TEXT_HTML, "", headers={"Location": start.location, "Set-Cookie": start.cookie})


def refresh_now(app: APIGatewayRestResolver, refresher: Refresher) -> Response[str]:
    result = refresher.ensure_fresh(force=True, deadline=Deadline.from_context(app.lambda_context))
    return redirect_to_status(app, "Token refreshed." if result.refreshed else "Token is fresh.")


def callback(app: APIGatewayRestResolver, states: StateStore, store: TokenStore, oauth: OAuthClient,
             resume_queue: Callable[[], None]) -> Response[str]:
    ctx, event = request(app), app.current_event
    params = {k: v for k, v in (event.query_string_parameters or {}).items() if v is not None}
    complete_connect(params, admin=ctx.admin, browser_state=cookie_value(event.headers.get("Cookie")), states=states,
                     store=store, oauth=oauth, callback_url=ctx.callback_url, resume_queue=resume_queue)
    return redirect_to_status(app, "Keap connected.", clear_state_cookie=True)
