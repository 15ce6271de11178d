"""A full connect + refresh + actions run: no token, code or secret in any log line or log record."""

from __future__ import annotations

import json
import logging

from keaplink import root
from keaplink.connection.token import Token
from keaplink_dev.local import flows
from keaplink_dev.local.handlers import load_handler
from keaplink_dev.local.lambda_events import FakeContext
from keaplink_dev.local.moto_server import ADMIN_PASSWORD
from keaplink_dev.local.sqs_poller import drain, send
from tests.conftest import SANDBOX_CLIENT


def test_no_secret_reaches_the_logs(aws, sandbox, capsys, caplog) -> None:
    # Every logger at the deployed level (INFO), keaplink's own at DEBUG. (botocore's DEBUG wire logging
    # prints response bodies, Secrets Manager's included: never enable it in production.)
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="keaplink")
    secrets: set[str] = {SANDBOX_CLIENT["client_secret"], ADMIN_PASSWORD}

    def remember(token: Token | None) -> None:
        assert token is not None
        secrets.update({token.access_token, token.refresh_token})

    location, cookie = flows.start_connect()
    params = flows.consent(location)
    secrets.add(params["code"])
    assert flows.callback(params, cookie)["statusCode"] == 200
    remember(root.token_store().load().token)

    assert flows.call("admin", "POST", "/refresh")["statusCode"] == 303  # refresh now
    remember(root.token_store().load().token)
    assert load_handler("refresh").lambda_handler({"force": True}, FakeContext())["outcome"] == "refreshed"
    remember(root.token_store().load().token)

    sandbox.advance(86400 + 60)  # Keap answers 401 → the actions refresh on their own
    send(aws, json.dumps({"type": "user.signed_up", "user_id": "u1", "email": "ada@example.com"}),
         json.dumps({"type": "button.pressed", "user_id": "u1"}), "{broken")
    drain(aws, load_handler("actions").lambda_handler)
    remember(root.token_store().load().token)

    captured = capsys.readouterr()
    text = captured.out + captured.err + "\n".join(
        f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "token refreshed" in text and "batch done" in text  # the logs are really captured
    assert len(secrets) >= 9
    leaked = sorted(s for s in secrets if s in text)
    assert leaked == [], f"{len(leaked)} secret value(s) found in the logs"
