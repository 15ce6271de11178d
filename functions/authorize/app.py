"""Admin routes: status page, status.json, "Connect Keap" (the authorize redirect) and "Refresh now"."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths

from keaplink import web, wiring
from keaplink.admin import start_connect
from keaplink.observability import logger, metrics
from keaplink.refresh import Outcome

if TYPE_CHECKING:  # typing only: keeps Powertools' typing module off the cold-start path
    from aws_lambda_powertools.utilities.typing import LambdaContext

app = APIGatewayRestResolver()
web.protect(app)


@app.get("/")
def status_page() -> Response[str]:
    message = app.current_event.get_query_string_value("message")
    return web.html(200, web.render_status(app.current_event.raw_event, message))


@app.get("/status.json")
def status_json() -> dict[str, Any]:
    return web.status_dict(app.current_event.raw_event)


@app.get("/connect")
def connect() -> Response[str]:
    ctx = web.request_context(app.current_event.raw_event)
    start = start_connect(
        wiring.state_store(), ctx.admin, ctx.client_id, ctx.settings.keap_authorize_url, ctx.callback_url, time.time(),
        secure_cookie=ctx.base_url.startswith("https://"),
    )
    return Response(302, content_types.TEXT_HTML, "", headers={"Location": start.location, "Set-Cookie": start.cookie})


@app.post("/refresh")
def refresh_now() -> Response[str]:
    result = wiring.refresher(metrics).ensure_fresh(force=True)
    text = "Token refreshed." if result.outcome is not Outcome.FRESH else "Token is fresh."
    return web.redirect_to_status(app.current_event.raw_event, text)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
