from __future__ import annotations

from keaplink.http_event import public_base_url
from tests.support.apigw import rest_event


def test_api_gateway_url_includes_stage() -> None:
    event = rest_event("GET", "/status.json", stage="prod")
    assert public_base_url(event) == "https://abc123.execute-api.us-east-1.amazonaws.com/prod"


def test_root_route() -> None:
    assert public_base_url(rest_event("GET", "/")).endswith("/prod")


def test_emulator_prefix_is_kept() -> None:
    event = rest_event("GET", "/callback", host="127.0.0.1:4566")
    event["headers"].pop("X-Forwarded-Proto")
    event["requestContext"]["path"] = "/_aws/execute-api/abc/prod/callback"
    assert public_base_url(event) == "http://127.0.0.1:4566/_aws/execute-api/abc/prod"


def test_configured_url_wins() -> None:
    assert public_base_url(rest_event("GET", "/"), "https://keap.example.com/") == "https://keap.example.com"


def test_url_origin_and_path() -> None:
    from keaplink.http_event import url_origin, url_path

    url = "http://127.0.0.1:4566/_aws/execute-api/abc/local"
    assert (url_origin(url), url_path(url)) == ("http://127.0.0.1:4566", "/_aws/execute-api/abc/local")
    assert (url_origin("https://x.example"), url_path("https://x.example/")) == ("https://x.example", "")
