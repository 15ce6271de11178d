"""Admin panel: sign-in, status page, status.json, Connect Keap, Refresh now, token-pair import."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response

from keaplink import root
from keaplink.admin import web
from keaplink.observability import metrics

app = web.resolver(root.settings, root.admin_gate)  # every route but sign-in: the admin only; typed-error pages
web.add_sign_in_routes(app, root.admin_gate)  # GET/POST /signin, POST /signout


@app.get("/")
def status_page() -> Response[str]:
    return web.status_page(app, root.status_sources())


@app.get("/status.json")
def status_json() -> Response[str]:
    return web.status_document(app, root.status_sources())


@app.get("/connect")
def connect() -> Response[str]:
    return web.connect(app, root.state_store(), root.client_id)


@app.post("/refresh")
def refresh_now() -> Response[str]:
    return web.refresh_now(app, root.refresher(metrics))


@app.post("/tokens")
def import_tokens() -> Response[str]:
    return web.import_tokens(app, root.token_importer())


lambda_handler = web.lambda_handler(app, root.settings)  # logs with the request id, metrics flushed, then routed
