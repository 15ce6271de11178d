"""Service Account Key / Personal Access Token mode: the key from Secrets Manager is sent as
X-Keap-API-Key, no OAuth token is needed or refreshed, and the status page says which mode is active."""

from __future__ import annotations

import json

import pytest

from keaplink_dev.local import flows
from keaplink_dev.local.handlers import load_handler
from keaplink_dev.local.sqs_poller import drain, send


@pytest.fixture
def api_key_mode(aws, sandbox, monkeypatch):  # type: ignore[no-untyped-def]
    from keaplink import root

    key = sandbox.control("POST", "keys", json={"kind": "sak"})["key"]
    aws.client("secretsmanager").put_secret_value(
        SecretId=aws.credentials_secret, SecretString=json.dumps({"api_key": key}))
    monkeypatch.setenv("KEAP_AUTH_MODE", "api_key")
    root.reset()
    return key


def test_actions_use_the_key_without_any_oauth(api_key_mode, aws, sandbox) -> None:
    send(aws, json.dumps({"type": "user.signed_up", "user_id": "u1", "email": "ada@example.com"}),
         json.dumps({"type": "button.pressed", "user_id": "u1"}))
    drain(aws, load_handler("actions").lambda_handler)
    [contact] = sandbox.control("GET", "state")["contacts"]
    assert contact["tag_ids"]
    calls = sandbox.requests_log("/crm/rest")
    assert calls and {c["auth"] for c in calls} == {"key"}
    assert sandbox.requests_log("/token") == []  # never an OAuth call


def test_status_page_names_the_mode(api_key_mode) -> None:
    status = flows.status_json()
    assert status["auth_mode"] == "api_key" and status["status"] == "connected"
    assert status["expires_at"] is None and status["next_refresh_at"] is None
    page = flows.call("admin", "GET", "/")["body"]
    assert "API key (Service Account Key / PAT)" in page and "Connect Keap" not in page
