"""The OAuth callback: Keap redirects the admin's browser here with ?code=…&state=… (or ?error=…)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response

from keaplink import root
from keaplink.admin import web

app = web.resolver(root.settings, gate=None)  # authenticated by the state cookie, typed-error pages


@app.get("/callback")
def callback() -> Response[str]:
    # Validates the state, exchanges the code, stores the token, then resumes the actions queue.
    return web.callback(app, root.state_store(), root.token_store(), root.oauth_client(), root.resume_queue,
                        root.timeline())


lambda_handler = web.lambda_handler(app, root.settings)  # logs with the request id, metrics flushed, then routed
