"""The in-process API front renames response headers as API Gateway does: a script's unauthenticated
request gets its 401, and the Basic challenge arrives only as ``x-amzn-Remapped-WWW-Authenticate``."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

from keaplink_dev.local.lambda_events import basic
from keaplink_dev.local.moto_server import ADMIN_PASSWORD
from tests.support.api_front import api_front


def get(url: str, headers: dict[str, str]) -> tuple[int, list[tuple[str, str]]]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.request("GET", parts.path, headers=headers)
        answer = conn.getresponse()
        answer.read()
        return answer.status, answer.getheaders()
    finally:
        conn.close()


def names(headers: list[tuple[str, str]]) -> list[str]:
    return [name.lower() for name, _ in headers]


def test_the_basic_challenge_is_remapped_as_api_gateway_does(aws) -> None:  # type: ignore[no-untyped-def]
    with api_front() as url:
        status, headers = get(url + "status.json", {"Accept": "application/json"})
        signed_in, _ = get(url + "status.json", {"Accept": "application/json",
                                                 "Authorization": basic("admin", ADMIN_PASSWORD)})
    assert status == 401
    assert "www-authenticate" not in names(headers)
    remapped = [value for name, value in headers if name.lower() == "x-amzn-remapped-www-authenticate"]
    assert len(remapped) == 1 and remapped[0].startswith("Basic ")
    assert "server" not in names(headers) and names(headers).count("content-length") == 1
    assert signed_in == 200  # credentials sent up front pass the gateway unchanged
