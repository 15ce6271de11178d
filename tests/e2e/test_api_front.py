"""The demo's admin URL is its API front, which renames response headers as API Gateway does."""

from __future__ import annotations

import base64
import http.client
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import LocalStack

pytestmark = pytest.mark.e2e


def get(url: str, headers: dict[str, str]) -> tuple[int, list[tuple[str, str]], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
    try:
        conn.request("GET", parts.path, headers=headers)
        answer = conn.getresponse()
        return answer.status, answer.getheaders(), answer.read()
    finally:
        conn.close()


def values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name.lower()]


def test_admin_url_is_the_front(local_stack: LocalStack) -> None:
    admin, emulator = urlsplit(local_stack["admin_url"]), urlsplit(local_stack["aws_endpoint_url"])
    assert admin.scheme == "http" and admin.hostname == "127.0.0.1" and admin.port != emulator.port
    assert admin.path == "/local/"
    assert local_stack["callback_url"] == local_stack["admin_url"] + "callback"


def test_a_scripts_401_carries_the_challenge_only_remapped(local_stack: LocalStack) -> None:
    status, headers, _ = get(local_stack["admin_url"] + "status.json", {"Accept": "application/json"})
    assert status == 401
    assert values(headers, "WWW-Authenticate") == []
    challenge = values(headers, "x-amzn-Remapped-WWW-Authenticate")
    assert len(challenge) == 1 and challenge[0].startswith("Basic ")
    assert len(values(headers, "Date")) == 1 and values(headers, "Server") == []


def test_credentials_sent_up_front_pass_the_front(local_stack: LocalStack) -> None:
    token = base64.b64encode(f"{local_stack['admin_user']}:{local_stack['admin_password']}".encode()).decode()
    status, headers, body = get(local_stack["admin_url"] + "status.json",
                                {"Accept": "application/json", "Authorization": f"Basic {token}"})
    assert status == 200, body
    assert values(headers, "Content-Type")[0].startswith("application/json")
    assert values(headers, "Content-Length") == [str(len(body))]
