"""The demo's front door to its API, as API Gateway would be: ``http://127.0.0.1:<port>/<stage>/<route>``.

A small reverse proxy to the emulator's execute-api URL of one API (``/_aws/execute-api/<id>/<stage>/…``).
The emulator passes a function's response headers unchanged; this front renames and drops them as API
Gateway does (:mod:`keaplink_dev.local.apigw`), so the demo and the e2e tests see what a browser sees on AWS.
Request headers (Host included), method and body pass on unchanged, except the per-connection ones;
redirects are passed on, not followed. One thread per connection; :meth:`ApiFront.stop` closes them all
and joins them.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, cast
from urllib.parse import urlsplit

from keaplink_dev.local.apigw import remap_response_headers

UPSTREAM_TIMEOUT_S = 35.0  # connect and each read; API Gateway's own integration limit is 29 s
IDLE_TIMEOUT_S = 30.0  # a kept-alive connection with no request closes after this
# Per-connection headers (RFC 9110 7.6.1): a proxy does not pass them on.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "upgrade"})
# Written by the emulator's HTTP server (framing), or by the emulator as the gateway: its Date, when the
# function wrote none. The front writes its own framing and keeps that Date as the gateway's; a Date the
# function wrote cannot be told from it here, so locally it is not remapped.
UPSTREAM_OWN = HOP_BY_HOP | {"content-length", "date"}
NO_BODY_STATUS = frozenset({204, 304})

Answer = tuple[int, list[tuple[str, str]], bytes]


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # joined by server_close (block_on_close)
    front: ApiFront

    def __init__(self, address: tuple[str, int], front: ApiFront) -> None:
        self.front = front
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake every connection thread waiting for a request, so that it ends."""
        with self._open_lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S

    def log_message(self, format: str, *args: object) -> None:
        return None

    def _forward(self) -> None:
        front = cast(_Server, self.server).front
        if not self.path.startswith("/"):
            self._answer(400, [("Content-Type", "text/plain")], b"Bad request target\n")
            return
        if self.headers.get("Transfer-Encoding"):
            self._answer(411, [("Content-Type", "text/plain")], b"Send the body with a Content-Length\n")
            self.close_connection = True
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._answer(400, [("Content-Type", "text/plain")], b"Bad Content-Length\n")
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP]
        if not any(k.lower() == "host" for k, _ in headers):
            headers.append(("Host", f"{front.host}:{front.port}"))
        try:
            status, answer, payload = front.upstream(self.command, self.path, headers, body)
        except TimeoutError:
            status, answer, payload = 504, [("Content-Type", "text/plain")], b"The local AWS emulator timed out\n"
        except (OSError, http.client.HTTPException) as exc:
            message = f"The local AWS emulator at {front.endpoint} is not reachable ({type(exc).__name__})\n"
            status, answer, payload = 502, [("Content-Type", "text/plain")], message.encode()
        self._answer(status, answer, payload)

    def _answer(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        gateway_date = next((v for k, v in headers if k.lower() == "date"), None)
        length = next((v for k, v in headers if k.lower() == "content-length"), None)  # for HEAD
        self.send_response_only(status)  # API Gateway sends no Server header of its own
        self.send_header("Date", gateway_date or self.date_time_string())
        for name, value in remap_response_headers((k, v) for k, v in headers if k.lower() not in UPSTREAM_OWN):
            self.send_header(name, value)
        if status not in NO_BODY_STATUS:
            self.send_header("Content-Length", length if self.command == "HEAD" and length else str(len(payload)))
        self.end_headers()
        if self.command != "HEAD" and status not in NO_BODY_STATUS:
            self.wfile.write(payload)

    do_GET = do_POST = do_HEAD = _forward


class ApiFront:
    """Serve the API ``api_id`` of the emulator at ``endpoint`` on ``http://host:port``; a context manager."""

    def __init__(self, endpoint: str, api_id: str, port: int = 0, host: str = "127.0.0.1",
                 timeout: float = UPSTREAM_TIMEOUT_S) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"not an http:// endpoint: {endpoint!r}")
        self.endpoint = endpoint.rstrip("/")
        self.host = host
        self.port = port
        self.timeout = timeout
        self._upstream_host = parts.hostname
        self._upstream_port = parts.port or 80
        self._prefix = parts.path.rstrip("/") + f"/_aws/execute-api/{api_id}"
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stage_url(self, stage: str) -> str:
        """The admin URL of ``stage``, with its trailing slash."""
        return f"{self.url}/{stage}/"

    def upstream(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> Answer:
        """One request to the emulator: ``(status, headers, body)``, every header line kept in order."""
        conn = http.client.HTTPConnection(self._upstream_host, self._upstream_port, timeout=self.timeout)
        try:
            conn.putrequest(method, self._prefix + path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            conn.endheaders(body or None)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def start(self) -> Self:
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="keaplink-api-front", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()  # no new connections
        server.close_connections()
        server.server_close()  # joins every connection thread
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
