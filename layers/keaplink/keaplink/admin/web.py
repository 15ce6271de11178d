"""The admin panel on Powertools' REST resolver: the sign-in gate and the request context in one middleware,
typed errors mapped to HTML pages, security headers on every response, and one adapter per route between
the resolver and :mod:`routes`."""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.logging import correlation_paths

from keaplink.admin import pages
from keaplink.admin.auth import (
    ADMIN_USER,
    CHALLENGE,
    clear_session_cookie,
    is_cross_site,
    session_cookie,
    session_cookie_name,
)
from keaplink.admin.gate import Admitted, Gate, LockedOut, Refusal, Refused, Verdict
from keaplink.admin.request import (
    RequestContext,
    cookie_value,
    public_base_url,
    source_ip,
    state_cookie,
    url_origin,
    url_path,
)
from keaplink.admin.routes import (
    StatusSources,
    at_a_glance,
    complete_connect,
    queue_state,
    start_connect,
    status_view,
)
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
    TokenPairInvalid,
    TokenPairRefused,
    TokenPairUnconfirmed,
)
from keaplink.keap.deadline import Deadline
from keaplink.observability import logger, metrics

if TYPE_CHECKING:  # typing only: a function imports the parts of the connection it uses, when it uses them
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from keaplink.config import Settings
    from keaplink.connection.oauth import OAuthClient
    from keaplink.connection.pair import TokenImporter
    from keaplink.connection.refresh import Refresher
    from keaplink.connection.states import StateStore
    from keaplink.connection.store import TokenStore
    from keaplink.observability import TimelinePort

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
    TokenPairInvalid: (400, "These are not a Keap token pair", "Paste the access token and the refresh token "
                       "exactly as Keap's developer portal shows them. Nothing was sent to Keap; nothing was changed."),
    TokenPairRefused: (400, "Keap did not accept this token pair", "Its refresh token is unknown, used up or "
                       "expired, or was made for another developer app than keaplink's client id. Nothing was "
                       "changed: generate a new pair in Keap's developer portal."),
    TokenPairUnconfirmed: (502, "Keap did not confirm the token pair", "Nothing was stored. If Keap used the "
                           "refresh token before its answer was lost, this pair no longer works: generate a new one."),
    LeaseBusy: (503, "A refresh is already running", "Try again in a minute."),
    OutOfTime: (503, "Keap is slow right now", "Nothing was changed. Try again in a minute."),
    TokenConflict: (409, "The connection changed meanwhile", "Reload the status page."),
    KeapError: (502, "Keap could not be reached", "Nothing was changed. Try again in a few minutes."),
    ConfigError: (500, "keaplink is misconfigured", "See the function's logs."),
}


def security_headers(https: bool) -> dict[str, str]:
    """Sent with every admin response, 401s, 429s, error pages and JSON included."""
    headers = {
        "Content-Security-Policy": pages.CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",  # frame-ancestors' predecessor, for browsers without CSP level 2
        "Cache-Control": "no-store",  # every page shows connection data or answers a sign-in
    }
    if https:
        headers["Strict-Transport-Security"] = "max-age=31536000"
    return headers


def with_security_headers(result: dict[str, Any], https: bool) -> dict[str, Any]:
    """Set the security headers on a resolved response (replacing any of the same name)."""
    extra = security_headers(https)
    names = {name.lower() for name in extra}
    for key in ("headers", "multiValueHeaders"):
        if isinstance(result.get(key), dict):
            result[key] = {k: v for k, v in result[key].items() if k.lower() not in names}
    multi = result.setdefault("multiValueHeaders", {})
    multi.update({name: [value] for name, value in extra.items()})
    return result


def html(status: int, body: str, headers: Mapping[str, str] | None = None) -> Response[str]:
    return Response(status, content_types.TEXT_HTML, body, headers=dict(headers or {}))


# Reachable without being signed in: the sign-in form itself and signing out.
PUBLIC_ROUTES = frozenset({"/signin", "/signout"})


def resolver(settings: Callable[[], Settings], gate: Callable[[], Gate] | None) -> APIGatewayRestResolver:
    """A REST resolver whose routes need the admin (a session or Basic credentials), with typed-error pages.

    ``gate=None`` is the OAuth callback: Keap's cross-site redirect arrives without the SameSite=Strict
    session cookie, so the callback is authenticated by the single-use state cookie this browser was given
    when a signed-in admin pressed "Connect Keap" (:func:`keaplink.admin.routes.complete_connect`)."""
    app = APIGatewayRestResolver()

    def admin_only(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[str]:
        event = app.current_event
        base_url = public_base_url(event, settings().public_base_url)
        if is_cross_site(event.http_method, event.headers.get("Sec-Fetch-Site"), event.headers.get("Origin"),
                         url_origin(base_url)):
            logger.warning("cross-site request refused", extra={"path": event.path})
            return Response(403, content_types.TEXT_PLAIN, "Cross-site request refused")
        if gate is None or event.path in PUBLIC_ROUTES:
            user = ADMIN_USER if gate is None else ""
        else:
            session = cookie_value(event.headers.get("Cookie"), session_cookie_name(base_url.startswith("https://")))
            verdict = gate().check(event.headers.get("Authorization"), session, source_ip(event))
            if not isinstance(verdict, Admitted):
                return refusal(verdict, event, url_path(base_url))
            user = verdict.user
        app.append_context(request=RequestContext(admin=user, base_url=base_url, settings=settings()))  # type: ignore[no-untyped-call]  # Powertools leaves it untyped
        return next_middleware(app)

    def error_page(exc: Exception) -> Response[str]:
        status, title, hint = next(
            (ERROR_PAGES[cls] for cls in type(exc).__mro__ if cls in ERROR_PAGES), (500, "Error", "")
        )
        if isinstance(exc, OAuthDenied):
            # Keap's words come from the callback's query string, which anyone can write: a fixed text by
            # error code on the page, the raw values only in the log.
            logger.warning("Keap answered the authorization with an error",
                           extra={"error": exc.error[:100], "error_description": exc.description[:300]})
            detail = f"{pages.OAUTH_ERRORS.get(exc.error, pages.OAUTH_ERROR_UNKNOWN)} {hint}"
        else:
            detail = f"{hint} ({type(exc).__name__}: {exc})" if hint else str(exc)
        logger.warning("admin request failed", extra={"error_type": type(exc).__name__, "status": status})
        if wants_json(app.current_event):  # the CLI
            return Response(status, content_types.APPLICATION_JSON, json.dumps({"error": title, "detail": detail}))
        ctx = app.context.get("request")
        base = ctx.base_url if isinstance(ctx, RequestContext) else public_base_url(app.current_event)
        return html(status, pages.error_page(title, detail, url_path(base)))

    app.use(middlewares=[admin_only])
    for exc_type in ERROR_PAGES:
        app.exception_handler(exc_type)(error_page)
    return app


def record_refusal(verdict: Verdict, path: str) -> None:
    """Metrics and a log line for a lockout or a wrong guess (a missing credential is a browser's first ask)."""
    if isinstance(verdict, LockedOut):
        metrics.add_metric("AdminLockedOut", "Count", 1)
        logger.warning("admin sign-in refused: source locked out", extra={"retry_after_s": verdict.retry_after_s})
    elif isinstance(verdict, Refused) and verdict.reason is Refusal.WRONG_CREDENTIALS:
        metrics.add_metric("AdminAuthRejected", "Count", 1)
        logger.warning("admin sign-in refused: wrong credentials", extra={"path": path})


def refusal(verdict: Verdict, event: APIGatewayProxyEvent, base_path: str) -> Response[str]:
    """Not admitted: a browser is sent to the sign-in form; a script gets 401 and the Basic challenge (which
    API Gateway renames on the way out, so no browser ever relies on it)."""
    record_refusal(verdict, event.path)
    if isinstance(verdict, LockedOut):
        return html(429, pages.locked_out_page(verdict.retry_after_s), {"Retry-After": str(verdict.retry_after_s)})
    if wants_html(event):
        return html(303, "", {"Location": f"{base_path}/signin"})
    return Response(401, content_types.TEXT_PLAIN, "Unauthorized: send Basic credentials, or sign in at /signin",
                    headers={"WWW-Authenticate": CHALLENGE})


def lambda_handler(
    app: APIGatewayRestResolver, settings: Callable[[], Settings]
) -> Callable[[dict[str, Any], LambdaContext], dict[str, Any]]:
    """The function's entry point: structured logs with API Gateway's request id, metrics flushed, routed,
    and the security headers set on whatever came out (a route, the gate, an error page, a 404)."""
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        result = app.resolve(event, context)
        return with_security_headers(result, https=served_over_https(APIGatewayProxyEvent(event), settings))

    return handler


def wants_html(event: APIGatewayProxyEvent) -> bool:
    """A browser asking for a page (it sends ``Accept: text/html``; curl and the CLI do not)."""
    return "text/html" in (event.headers.get("Accept") or "").lower()


def wants_json(event: APIGatewayProxyEvent) -> bool:
    """A script (the CLI) asking for JSON rather than a browser asking for a page."""
    accept = (event.headers.get("Accept") or "").lower()
    return "application/json" in accept and "text/html" not in accept


MAX_FORM_BYTES = 16_384


class FormUnreadable(ValueError):
    """A posted form that is not a form keaplink can read; each route says what that means for it."""


def form_fields(event: APIGatewayProxyEvent) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body's fields (the first value of each), within limits."""
    if (event.headers.get("Content-Type") or "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise FormUnreadable("the form was not sent as application/x-www-form-urlencoded")
    raw = event.body or ""
    if len(raw) > MAX_FORM_BYTES:
        raise FormUnreadable(f"the form is larger than {MAX_FORM_BYTES} bytes")
    try:
        text = base64.b64decode(raw, validate=True).decode() if event.is_base64_encoded else raw
        fields = parse_qs(text, keep_blank_values=True, max_num_fields=10)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise FormUnreadable("the form could not be read") from None
    return {k: v[0] for k, v in fields.items()}


def served_over_https(event: APIGatewayProxyEvent, settings: Callable[[], Settings]) -> bool:
    try:
        configured = settings().public_base_url
    except ConfigError:
        configured = None
    return public_base_url(event, configured).startswith("https://")


def request(app: APIGatewayRestResolver) -> RequestContext:
    ctx: RequestContext = app.context["request"]
    return ctx


def redirect_to_status(app: APIGatewayRestResolver, done: str) -> Response[str]:
    """Back to the status page with a notice chosen by code (never by text from the request)."""
    assert done in pages.DONE_MESSAGES, done
    return html(303, "", {"Location": f"{request(app).base_path}/?done={done}"})


# --- one adapter per route ----------------------------------------------------------------------------
def status_json(app: APIGatewayRestResolver, sources: StatusSources) -> dict[str, Any]:
    ctx = request(app)
    return {**status_view(sources.store.load(), ctx.settings.auth_mode, ctx.callback_url, queue_state(sources)),
            **at_a_glance(sources)}


def status_document(app: APIGatewayRestResolver, sources: StatusSources) -> Response[str]:
    return Response(200, content_types.APPLICATION_JSON, json.dumps(status_json(app, sources)))


def status_page(app: APIGatewayRestResolver, sources: StatusSources) -> Response[str]:
    ctx = request(app)
    done = app.current_event.get_query_string_value("done")
    return html(200, pages.status_page(status_json(app, sources), ctx.base_path, done))


def connect(app: APIGatewayRestResolver, states: StateStore, client_id: Callable[[], str]) -> Response[str]:
    ctx = request(app)
    start = start_connect(states, ctx.admin, client_id(), ctx.settings.keap_authorize_url, ctx.callback_url,
                          time.time(), secure_cookie=ctx.is_https)
    return Response(302, content_types.TEXT_HTML, "", headers={"Location": start.location, "Set-Cookie": start.cookie})


def refresh_now(app: APIGatewayRestResolver, refresher: Refresher) -> Response[str]:
    result = refresher.ensure_fresh(force=True, deadline=Deadline.from_context(app.lambda_context))
    return redirect_to_status(app, "refreshed" if result.refreshed else "fresh")


def import_tokens(app: APIGatewayRestResolver, importer: TokenImporter) -> Response[str]:
    """A token pair from Keap's developer portal, posted by the status page's form or the CLI."""
    try:
        fields = form_fields(app.current_event)
    except FormUnreadable as exc:
        raise TokenPairInvalid(str(exc)) from None
    conn = importer.import_pair(fields.get("access_token", ""), fields.get("refresh_token", ""))
    if wants_json(app.current_event):
        tenant = conn.token.tenant if conn.token else None
        body = {"status": conn.status.value, "tenant": tenant, "version": conn.version}
        return Response(200, content_types.APPLICATION_JSON, json.dumps(body))
    return redirect_to_status(app, "imported")


def callback(app: APIGatewayRestResolver, states: StateStore, store: TokenStore, oauth: OAuthClient,
             resume_queue: Callable[[], None], timeline: TimelinePort) -> Response[str]:
    ctx, event = request(app), app.current_event
    params = {k: v for k, v in (event.query_string_parameters or {}).items() if v is not None}
    complete_connect(params, admin=ctx.admin, browser_state=cookie_value(event.headers.get("Cookie")), states=states,
                     store=store, oauth=oauth, callback_url=ctx.callback_url, resume_queue=resume_queue,
                     timeline=timeline)
    # A page that moves on by itself rather than a redirect: after Keap's cross-site redirect, the browser
    # sends the SameSite=Strict session cookie only on a navigation this site starts.
    return html(200, pages.continue_page(pages.DONE_MESSAGES["connected"], f"{ctx.base_path}/?done=connected"),
                {"Set-Cookie": state_cookie("", ctx.is_https, max_age=0)})


def sign_in_form(app: APIGatewayRestResolver) -> Response[str]:
    done = app.current_event.get_query_string_value("done")
    return html(200, pages.sign_in_page(request(app).base_path, done=done))


def sign_in(app: APIGatewayRestResolver, gate: Gate) -> Response[str]:
    """The sign-in form posted: a session cookie and the status page, or the form again with why not."""
    ctx, event = request(app), app.current_event
    try:
        fields = form_fields(event)
    except FormUnreadable:
        fields = {}
    verdict = gate.sign_in(fields.get("username", ""), fields.get("password", ""), source_ip(event))
    if isinstance(verdict, Admitted) and verdict.session:
        metrics.add_metric("AdminSignedIn", "Count", 1)
        logger.info("admin signed in")
        cookie = session_cookie(verdict.session, ctx.is_https)
        return html(303, "", {"Location": f"{ctx.base_path}/", "Set-Cookie": cookie})
    if isinstance(verdict, Refused) and verdict.reason is Refusal.NO_CREDENTIALS:
        return html(400, pages.sign_in_page(ctx.base_path, error="missing"))
    if isinstance(verdict, LockedOut):
        return refusal(verdict, event, ctx.base_path)
    record_refusal(verdict, event.path)
    return html(401, pages.sign_in_page(ctx.base_path, error="wrong"))


def sign_out(app: APIGatewayRestResolver) -> Response[str]:
    """Forget the session in this browser (a session ends by itself after 8 hours, or when the password
    changes)."""
    ctx = request(app)
    logger.info("admin signed out")
    return html(303, "", {"Location": f"{ctx.base_path}/signin?done=signed_out",
                          "Set-Cookie": clear_session_cookie(ctx.is_https)})


def add_sign_in_routes(app: APIGatewayRestResolver, gate: Callable[[], Gate]) -> None:
    """The routes a browser uses before and after a session: ``GET``/``POST /signin``, ``POST /signout``."""
    app.get("/signin")(lambda: sign_in_form(app))
    app.post("/signin")(lambda: sign_in(app, gate()))
    app.post("/signout")(lambda: sign_out(app))
