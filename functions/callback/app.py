"""The OAuth callback: Keap redirects the admin's browser here with ?code=…&state=… (or ?error=…)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths

from keaplink import web, wiring
from keaplink.admin import complete_connect, cookie_value
from keaplink.observability import logger, metrics

if TYPE_CHECKING:  # typing only: keeps Powertools' typing module off the cold-start path
    from aws_lambda_powertools.utilities.typing import LambdaContext

app = APIGatewayRestResolver()
web.protect(app)


@app.get("/callback")
def callback() -> Response[str]:
    event = app.current_event.raw_event
    ctx = web.request_context(event)
    params = {k: v for k, v in (app.current_event.query_string_parameters or {}).items() if v is not None}
    complete_connect(
        params,
        admin=ctx.admin,
        browser_state=cookie_value(app.current_event.headers.get("Cookie")),
        states=wiring.state_store(),
        store=wiring.token_store(),
        oauth=wiring.oauth_client,
        callback_url=ctx.callback_url,
        gate=wiring.queue_gate(),
    )
    return web.redirect_to_status(event, "Keap connected.", clear_state_cookie=True)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
