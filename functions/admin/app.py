"""Admin panel: status page, status.json, "Connect Keap" (the authorize redirect) and "Refresh now"."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from keaplink import root
from keaplink.admin import web
from keaplink.observability import metrics

app = web.resolver(root.settings, root.admin_password)  # every route: Basic auth, typed-error pages


@app.get("/")
def status_page() -> Response[str]:
    return web.status_page(app, root.token_store(), root.queue_status)


@app.get("/status.json")
def status_json() -> dict[str, Any]:
    return web.status_json(app, root.token_store(), root.queue_status)


@app.get("/connect")
def connect() -> Response[str]:
    return web.connect(app, root.state_store(), root.client_id)


@app.post("/refresh")
def refresh_now() -> Response[str]:
    return web.refresh_now(app, root.refresher(metrics))


lambda_handler = web.lambda_handler(app)  # logs with the request id, metrics flushed, then routed
