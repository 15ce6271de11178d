"""API Gateway's header remapping (keaplink_dev.local.apigw) and the demo's front (keaplink_dev.local.apigw_front),
against a stand-in emulator over real HTTP."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from keaplink_dev.local.apigw import remap_response_headers
from keaplink_dev.local.apigw_front import ApiFront
from keaplink_dev.local.ministack import free_port


def test_remap_renames_the_listed_headers_case_insensitively_and_keeps_values() -> None:
    out = remap_response_headers([
        ("WWW-Authenticate", 'Basic realm="keaplink"'), ("www-authenticate", "Bearer"), ("Server", "x/1"),
        ("Date", "d"), ("Authorization", "a"), ("Connection", "close"), ("Content-MD5", "m"),
        ("Max-Forwards", "1"), ("User-Agent", "u"), ("Content-Length", "5"), ("Proxy-Authenticate", "p"),
        ("Expect", "e"), ("Host", "h"), ("Trailer", "t"), ("Upgrade", "g"),
    ])
    assert out == [
        ("x-amzn-Remapped-WWW-Authenticate", 'Basic realm="keaplink"'), ("x-amzn-Remapped-www-authenticate", "Bearer"),
        ("x-amzn-Remapped-Server", "x/1"), ("x-amzn-Remapped-Date", "d"), ("x-amzn-Remapped-Authorization", "a"),
        ("x-amzn-Remapped-Connection", "close"), ("x-amzn-Remapped-Content-MD5", "m"),
        ("x-amzn-Remapped-Max-Forwards", "1"), ("x-amzn-Remapped-User-Agent", "u"),
        ("x-amzn-Remapped-Content-Length", "5"), ("x-amzn-Remapped-Proxy-Authenticate", "p"),
        ("x-amzn-Remapped-Expect", "e"), ("x-amzn-Remapped-Host", "h"), ("x-amzn-Remapped-Trailer", "t"),
        ("x-amzn-Remapped-Upgrade", "g"),
    ]


def test_remap_drops_transfer_encoding_and_keeps_everything_else_in_order() -> None:
    headers = [("Set-Cookie", "a=1"), ("Transfer-Encoding", "chunked"), ("Content-Type", "text/html"),
               ("Set-Cookie", "b=2"), ("Location", "/x"), ("Cache-Control", "no-store"), ("X-Auth", "k")]
    assert remap_response_headers(headers) == [
        ("Set-Cookie", "a=1"), ("Content-Type", "text/html"), ("Set-Cookie", "b=2"), ("Location", "/x"),
        ("Cache-Control", "no-store"), ("X-Auth", "k"),
    ]
    assert remap_response_headers([]) == []


# --- the front, over a stand-in for the emulator's execute-api -------------------------------------------
class _Emulator(BaseHTTPRequestHandler):
    """Answers like the emulator would with a function's answer; echoes what it received as JSON."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return None

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        seen = {"method": self.command, "path": self.path, "host": self.headers.get("Host"),
                "cookie": self.headers.get("Cookie"), "body": self.rfile.read(length).decode(),
                "connection": self.headers.get("Connection")}
        payload = json.dumps(seen).encode()
        self.send_response_only(401 if urlsplit(self.path).path.endswith("/secret") else 302)
        for name, value in [("Content-Type", "application/json"), ("WWW-Authenticate", 'Basic realm="k"'),
                            ("Set-Cookie", "a=1; HttpOnly"), ("Set-Cookie", "b=2; Secure"), ("Location", "/elsewhere"),
                            ("Server", "function/1"), ("Date", "Wed, 02 Dec 2026 10:00:00 GMT"),
                            ("Content-Length", str(len(payload)))]:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_HEAD = _serve


@pytest.fixture
def emulator() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Emulator)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _request(url: str, method: str = "GET", body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, answer.getheaders(), answer.read()
    finally:
        conn.close()


def _named(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name.lower()]


def test_front_forwards_to_the_api_and_remaps_the_answer(emulator: str) -> None:
    with ApiFront(emulator, "abc123") as front:
        status, headers, body = _request(front.stage_url("local") + "secret?x=1&y=", headers={"Cookie": "s=1"})
    seen = json.loads(body)
    assert seen["path"] == "/_aws/execute-api/abc123/local/secret?x=1&y="
    assert seen["host"] == f"127.0.0.1:{front.port}"  # passed through, as the browser sent it
    assert seen["cookie"] == "s=1" and seen["method"] == "GET"
    assert status == 401
    assert _named(headers, "WWW-Authenticate") == []
    assert _named(headers, "x-amzn-Remapped-WWW-Authenticate") == ['Basic realm="k"']
    assert _named(headers, "x-amzn-Remapped-Server") == ["function/1"] and _named(headers, "Server") == []
    assert _named(headers, "Set-Cookie") == ["a=1; HttpOnly", "b=2; Secure"]  # two header lines, not merged
    assert _named(headers, "Date") == ["Wed, 02 Dec 2026 10:00:00 GMT"]  # the emulator's: the gateway's own
    assert _named(headers, "Content-Length") == [str(len(body))]


def test_front_passes_redirects_and_bodies_on(emulator: str) -> None:
    with ApiFront(emulator, "abc123") as front:
        status, headers, body = _request(front.stage_url("local") + "tokens", "POST", b"a=1&b=2",
                                         {"Content-Type": "application/x-www-form-urlencoded"})
        head_status, head_headers, head_body = _request(front.stage_url("local"), "HEAD")
    assert status == 302 and _named(headers, "Location") == ["/elsewhere"]  # not followed
    seen = json.loads(body)
    assert seen["method"] == "POST" and seen["body"] == "a=1&b=2"
    assert seen["connection"] is None  # a per-connection header is not passed on
    assert head_status == 302 and head_body == b""
    assert int(_named(head_headers, "Content-Length")[0]) > 0  # the length a GET would get, not the empty body's


def test_front_answers_502_when_the_emulator_is_down() -> None:
    with ApiFront(f"http://127.0.0.1:{free_port()}", "abc123", timeout=2) as front:
        status, headers, body = _request(front.stage_url("local"))
    assert status == 502
    assert _named(headers, "Content-Type") == ["text/plain"] and b"not reachable" in body


def test_front_stop_ends_every_thread_even_with_a_kept_alive_connection(emulator: str) -> None:
    before = set(threading.enumerate())
    front = ApiFront(emulator, "abc123").start()
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10)
    conn.request("GET", "/local/")
    conn.getresponse().read()  # the connection stays open, its thread waits for the next request
    front.stop()
    conn.close()
    assert set(threading.enumerate()) - before == set()
