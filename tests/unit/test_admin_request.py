from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from keaplink.admin.request import cookie_value, public_base_url, url_origin, url_path
from keaplink_dev.local.lambda_events import rest_event


def base(raw: dict[str, Any], configured: str | None = None) -> str:
    return public_base_url(APIGatewayProxyEvent(raw), configured)


def test_api_gateway_url_includes_stage() -> None:
    event = rest_event("GET", "/status.json", stage="prod")
    assert base(event) == "https://abc123.execute-api.us-east-1.amazonaws.com/prod"


def test_root_route() -> None:
    assert base(rest_event("GET", "/")).endswith("/prod")


def test_emulator_prefix_is_kept_and_header_names_are_case_insensitive() -> None:
    event = rest_event("GET", "/callback", host="127.0.0.1:4566")
    event["headers"].pop("X-Forwarded-Proto")
    event["headers"]["host"] = event["headers"].pop("Host")  # emulators lowercase header names
    event["requestContext"]["path"] = "/_aws/execute-api/abc/prod/callback"
    assert base(event) == "http://127.0.0.1:4566/_aws/execute-api/abc/prod"


def test_configured_url_wins() -> None:
    assert base(rest_event("GET", "/"), "https://keap.example.com/") == "https://keap.example.com"


def test_url_origin_and_path() -> None:
    url = "http://127.0.0.1:4566/_aws/execute-api/abc/local"
    assert (url_origin(url), url_path(url)) == ("http://127.0.0.1:4566", "/_aws/execute-api/abc/local")
    assert (url_origin("https://x.example"), url_path("https://x.example/")) == ("https://x.example", "")


def test_state_cookie_is_found_among_others() -> None:
    assert cookie_value("theme=dark; keaplink_oauth_state=abc; x=1") == "abc"
    assert cookie_value(["a=1", "keaplink_oauth_state=z"]) == "z"
    assert cookie_value("keaplink_oauth_statex=1") is None and cookie_value(None) is None
