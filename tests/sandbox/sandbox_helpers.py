"""Helpers shared by the Keap sandbox tests (imported as ``tests.sandbox.sandbox_helpers``)."""

from __future__ import annotations

from typing import Any

import requests

from keap_sandbox.testing import SandboxHandle

REDIRECT_URI = "https://app.example.test/oauth/callback"


class Api:
    """Tiny REST client for tests."""

    def __init__(self, sb: SandboxHandle, token: str | None = None, key: str | None = None) -> None:
        self.base = sb.api_url
        self.s = requests.Session()
        if token:
            self.s.headers["Authorization"] = f"Bearer {token}"
        if key:
            self.s.headers["X-Keap-API-Key"] = key

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.s.get(self.base + path, timeout=5, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> requests.Response:
        return self.s.post(self.base + path, json=body, timeout=5, **kw)


def token_request(sb: SandboxHandle, data: dict[str, str], **kw: Any) -> requests.Response:
    return requests.post(sb.token_url, data=data, timeout=5, **kw)


def refresh(sb: SandboxHandle, refresh_token: str) -> requests.Response:
    return token_request(
        sb,
        {"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(sb.client_id, sb.client_secret),
    )
