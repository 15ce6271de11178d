"""Drive the admin routes as a browser would, against handlers called in-process."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from keaplink_dev.local.handlers import load_handler
from keaplink_dev.local.lambda_events import FakeContext, basic, rest_event
from keaplink_dev.local.moto_server import ADMIN_PASSWORD

AUTH = {"Authorization": basic("admin", ADMIN_PASSWORD)}
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"  # what Chromium sends


def call(function: str, method: str, path: str, query: dict[str, str] | None = None,
         headers: dict[str, str] | None = None, body: str | None = None) -> dict[str, Any]:
    """One request with the admin's credentials (``headers`` may replace them)."""
    return anonymous(function, method, path, query, {**AUTH, **(headers or {})}, body=body)


def anonymous(function: str, method: str, path: str, query: dict[str, str] | None = None,
              headers: dict[str, str] | None = None, source_ip: str = "127.0.0.1",
              body: str | None = None) -> dict[str, Any]:
    """One request with exactly the given headers (no credentials unless given)."""
    event = rest_event(method, path, query, headers, source_ip=source_ip, body=body)
    result: dict[str, Any] = load_handler(function).lambda_handler(event, FakeContext())
    return result


def sign_in_form_post(password: str, user: str = "admin", source_ip: str = "127.0.0.1",
                      headers: dict[str, str] | None = None) -> dict[str, Any]:
    """The sign-in form, posted as a browser posts it."""
    from urllib.parse import urlencode

    return anonymous("admin", "POST", "/signin", headers={
        "Content-Type": "application/x-www-form-urlencoded", "Accept": BROWSER_ACCEPT, "Sec-Fetch-Site": "same-origin",
        **(headers or {})}, source_ip=source_ip, body=urlencode({"username": user, "password": password}))


def header(response: dict[str, Any], name: str) -> str | None:
    for source in (response.get("headers") or {}, response.get("multiValueHeaders") or {}):
        for key, value in source.items():
            if key.lower() == name.lower():
                return str(value[0] if isinstance(value, list) else value)
    return None


def start_connect() -> tuple[str, str]:
    """GET /connect → (Keap authorize URL, state cookie)."""
    response = call("admin", "GET", "/connect")
    assert response["statusCode"] == 302, response
    location, cookie = header(response, "Location"), header(response, "Set-Cookie")
    assert location and cookie
    return location, cookie.split(";")[0]


def consent(authorize_url: str, decision: str = "allow") -> dict[str, str]:
    """The admin clicks Allow/Deny on the (sandbox) Keap page → the callback's query parameters."""
    page = requests.get(authorize_url, timeout=10, allow_redirects=False)
    if page.status_code == 302:  # e.g. server_error for an unknown client id
        return {k: v[0] for k, v in parse_qs(urlsplit(page.headers["Location"]).query).items()}
    assert page.status_code == 200 and 'id="allow"' in page.text, page.text[:300]
    form = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
    answer = requests.post(urlsplit(authorize_url)._replace(query="").geturl(), data={**form, "decision": decision},
                           timeout=10, allow_redirects=False)
    assert answer.status_code == 302, answer.text[:300]
    return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}


def callback(params: dict[str, str], cookie: str | None) -> dict[str, Any]:
    return call("callback", "GET", "/callback", params, {"Cookie": cookie} if cookie else {})


def connect() -> dict[str, Any]:
    """The whole happy path; returns status.json."""
    location, cookie = start_connect()
    response = callback(consent(location), cookie)
    assert response["statusCode"] == 200 and "Keap connected." in response["body"], response
    return status_json()


def status_json() -> dict[str, Any]:
    response = call("admin", "GET", "/status.json")
    assert response["statusCode"] == 200, response
    result: dict[str, Any] = json.loads(response["body"])
    return result
