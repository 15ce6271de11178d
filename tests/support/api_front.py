"""A stand-in for API Gateway on 127.0.0.1: real HTTP in, a REST proxy event to the in-process admin or
callback handler, its answer back out with the response headers renamed as API Gateway renames them
(``keaplink_dev.local.apigw``). Lets the CLI (which talks HTTP to the admin URL) be tested without the local
stack."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from keaplink_dev.local.apigw import remap_response_headers
from keaplink_dev.local.handlers import load_handler
from keaplink_dev.local.lambda_events import FakeContext, rest_event

STAGE = "prod"


class _Front(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return None

    def _serve(self) -> None:
        split = urlsplit(self.path)
        route = split.path.removeprefix(f"/{STAGE}") or "/"
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else None
        query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()} or None
        headers = {k: v for k, v in self.headers.items()}
        event = rest_event(self.command, route, query, headers, stage=STAGE, source_ip=self.client_address[0],
                           body=body)
        function = "callback" if route == "/callback" else "admin"
        answer = load_handler(function).lambda_handler(event, FakeContext())
        payload = (answer.get("body") or "").encode()
        # As API Gateway merges them: a name in multiValueHeaders replaces the same name in headers.
        multi = {k.lower(): (k, vs) for k, vs in (answer.get("multiValueHeaders") or {}).items()}
        single = [(k, [v]) for k, v in (answer.get("headers") or {}).items() if k.lower() not in multi]
        lines = [(name, value) for name, values in [*single, *multi.values()] for value in values]
        self.send_response_only(answer["statusCode"])
        self.send_header("Date", self.date_time_string())
        for name, value in remap_response_headers(lines):
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _serve


@contextmanager
def api_front() -> Iterator[str]:
    """Serve the handlers; yields the admin URL (``http://127.0.0.1:<port>/prod/``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Front)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{STAGE}/"
    finally:
        server.shutdown()
        server.server_close()
