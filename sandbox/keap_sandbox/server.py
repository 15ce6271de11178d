"""HTTP layer of the Keap sandbox (stdlib ``ThreadingHTTPServer``).

Routes
======
* ``GET|POST /app/oauth/authorize`` - consent page and its form (Keap's accounts.infusionsoft.com).
* ``POST /token`` - authorization-code and refresh-token grants (Keap's api.infusionsoft.com/token).
* ``/crm/rest/v2/...`` - contacts and tags (Keap REST v2), behind ``Authorization: Bearer`` or
  ``X-Keap-API-Key``.
* ``/_sandbox/...`` - the control API (no auth, no latency, no faults, not logged).

Design choices where Keap's documentation is silent or unconfirmed (see /work/shared/KEAP.md):

* ``POST /v2/tags`` with a name that already exists answers 409
  ``{"code":409,"message":"Tag with name already exists","status":"ALREADY_EXISTS"}``.
* ``applyTags`` reports ``"SUCCESS"`` for a contact that already has the tag and ``"NOT_FOUND"`` for an
  unknown contact id (still HTTP 200); an unknown tag is a 404.
* ``duplicate_option=Email`` matches the body's primary e-mail (EMAIL1, else the first one)
  case-insensitively against every e-mail of existing contacts; the lowest id wins. ``EmailAndName``
  also needs equal given and family names (case-insensitive), ``EmailAndNameAndCompany`` also an equal
  ``company`` value.
* A code exchange with a wrong ``redirect_uri`` answers ``invalid_grant`` but does not burn the code.
* Refreshing keeps the previous access token valid until its own expiry unless the config flag
  ``revoke_access_on_refresh`` is set (then the access token issued with the used refresh token dies).
* Each refresh token gets its own 45-day life from the moment it is issued.
* The spike limit (25/second) is counted per credential (client id or key); with a key the key's
  own 10/second limit applies as well.
* Throttle headers are sent on every authenticated REST response and the counters always move; 429s
  are only produced when the ``throttle`` setting is on. A 401 (no valid credential) carries no
  throttle headers because the caller is unknown.
* Pagination: ``page_size`` (default and maximum 1000) and ``page_token`` (an opaque offset).
* Injected 502/503/504 faults answer in the gateway's ``{"fault": ...}`` shape, 429 in the quota
  violation shape, 401 on REST in the invalid-token shape, other statuses on ``/token`` in the OAuth
  shape and on REST in the v2 shape. A fault's ``body`` overrides all of that, and its ``headers`` are
  added to the answer (e.g. a long ``Retry-After``).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import traceback
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit, urlunsplit

from keap_sandbox import pages
from keap_sandbox.state import (
    JSON,
    ConfigError,
    Fault,
    Outcome,
    SandboxConfig,
    SandboxState,
    invalid_access_token,
    oauth_error,
    quota_violation,
    v2_error,
)

AUTHORIZE_PATH = "/app/oauth/authorize"
TOKEN_PATH = "/token"
REST_PREFIX = "/crm/rest"
CONTROL_PREFIX = "/_sandbox"
MAX_PAGE_SIZE = 1000

ERROR_URI = "https://developer.infusionsoft.com/docs/rest/#authorization"

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

GATEWAY_ERRORCODES = {
    502: "messaging.adaptors.http.flow.BadGateway",
    503: "messaging.adaptors.http.flow.ServiceUnavailable",
    504: "messaging.adaptors.http.flow.GatewayTimeout",
}


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(body).encode(), "application/json", dict(headers or {}))


def outcome_response(outcome: Outcome) -> Response:
    return json_response(outcome.status, outcome.body, outcome.headers)


def html_response(status: int, text: str) -> Response:
    return Response(status, text.encode(), "text/html; charset=utf-8")


def redirect(location: str) -> Response:
    return Response(302, b"", "text/plain", {"Location": location})


def add_query(url: str, params: dict[str, str]) -> str:
    """``url`` with ``params`` appended to its query (existing query kept, fragment dropped)."""
    parts = urlsplit(url)
    extra = urlencode(params)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def first_values(query: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}


def status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class SandboxHTTPServer(ThreadingHTTPServer):
    """The server; ``state`` holds everything, ``verbose`` turns on per-request logging to stderr."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: SandboxState, verbose: bool = False) -> None:
        self.state = state
        self.verbose = verbose
        super().__init__(address, SandboxRequestHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"


def make_server(
    host: str = "127.0.0.1",
    port: int = 0,
    config: SandboxConfig | None = None,
    verbose: bool = False,
) -> SandboxHTTPServer:
    """Create (bind) a sandbox server; call ``serve_forever()`` on it to run it."""
    return SandboxHTTPServer((host, port), SandboxState(config), verbose=verbose)


class SandboxRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "KeapSandbox/0.1"
    timeout = 120
    # Buffer writes so headers and body leave in one segment (no Nagle/delayed-ACK 40 ms stalls).
    wbufsize = -1
    disable_nagle_algorithm = True
    server: SandboxHTTPServer

    # ------------------------------------------------------------------ plumbing
    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    @property
    def state(self) -> SandboxState:
        return self.server.state

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            n = int(length)
        except ValueError:
            return b""
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, resp: Response) -> None:
        self.send_response(resp.status)
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)
        self.wfile.flush()

    def _drop(self) -> None:
        """Close the connection without answering."""
        self.close_connection = True

    def _auth_kind(self) -> str:
        auth = self.headers.get("Authorization", "")
        scheme = auth.split(" ", 1)[0].lower()
        if scheme == "bearer":
            return "bearer"
        if self.headers.get("X-Keap-API-Key"):
            return "key"
        if scheme == "basic":
            return "basic"
        return "none"

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        path, query = split.path, split.query
        body = self._read_body()
        method = self.command
        if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
            self._send(self._safe(lambda: self._control(method, path, query, body)))
            return

        entry: JSON = {
            "method": method,
            "path": path,
            "query": query,
            "status": 0,
            "auth": self._auth_kind(),
            "t": self.state.now(),
            "dropped": False,
        }
        if path == TOKEN_PATH:
            entry["grant_type"] = first_values(body.decode("utf-8", "replace")).get("grant_type")
        fault = self.state.take_fault(method, path)
        latency = self.state.config.latency_ms
        if latency > 0:
            time.sleep(latency / 1000.0)
        if fault is not None:
            entry["fault"] = fault.action
            if fault.action == "timeout":
                time.sleep(fault.delay_s)
                entry["dropped"] = True
                self.state.log_request(entry)
                self._drop()
                return
            if fault.action == "succeed_then_drop":
                resp = self._safe(lambda: self._route(method, path, query, body))
                time.sleep(fault.delay_s)
                entry["status"] = resp.status
                entry["dropped"] = True
                self.state.log_request(entry)
                self._drop()
                return
            resp = self._fault_response(fault, path)
        else:
            resp = self._safe(lambda: self._route(method, path, query, body))
        entry["status"] = resp.status
        self.state.log_request(entry)
        self._send(resp)

    def _safe(self, fn: Any) -> Response:
        try:
            resp: Response = fn()
            return resp
        except Exception as exc:  # noqa: BLE001 - last resort, answer 500
            traceback.print_exc()
            return json_response(500, {"code": 500, "message": f"sandbox error: {exc}", "status": "INTERNAL"})

    def _fault_response(self, fault: Fault, path: str) -> Response:
        status = fault.status
        headers: dict[str, str] = {}
        if status == 429 and self.state.config.send_retry_after:
            headers["Retry-After"] = "1"
        headers.update(fault.headers)  # a fault's own headers win (e.g. Retry-After: 21600)
        if fault.body is not None:
            return json_response(status, fault.body, headers)
        body: Any
        if status == 429:
            body = quota_violation("sandbox-fault")
        elif status == 401 and path.startswith(REST_PREFIX):
            body = invalid_access_token().body
        elif status in GATEWAY_ERRORCODES:
            body = {
                "fault": {
                    "faultstring": status_phrase(status),
                    "detail": {"errorcode": GATEWAY_ERRORCODES[status]},
                }
            }
        elif path in (TOKEN_PATH, AUTHORIZE_PATH):
            error = "server_error" if status >= 500 else "invalid_request"
            body = {"error": error, "error_description": status_phrase(status)}
        else:
            body = {
                "code": status,
                "message": status_phrase(status),
                "status": STATUS_NAMES.get(status, "UNKNOWN"),
                "details": [],
            }
        return json_response(status, body, headers)

    def _route(self, method: str, path: str, query: str, body: bytes) -> Response:
        if path == AUTHORIZE_PATH:
            return self._authorize(method, query, body)
        if path == TOKEN_PATH:
            return self._token(method, body)
        if path == REST_PREFIX or path.startswith(REST_PREFIX + "/"):
            return self._rest(method, path[len(REST_PREFIX) :], query, body)
        return json_response(404, {"code": 404, "message": "Not found", "status": "NOT_FOUND"})

    # ------------------------------------------------------------------ OAuth: authorize
    def _authorize(self, method: str, query: str, body: bytes) -> Response:
        if method == "GET":
            params = first_values(query)
        elif method == "POST":
            params = first_values(body.decode("utf-8", "replace"))
        else:
            return html_response(405, pages.error_page("Method not allowed"))
        redirect_uri = params.get("redirect_uri", "")
        parts = urlsplit(redirect_uri)
        if not redirect_uri or parts.scheme not in ("http", "https") or not parts.netloc:
            return html_response(400, pages.error_page("Missing or invalid redirect_uri"))
        if params.get("response_type") != "code":
            return html_response(400, pages.error_page("response_type must be code"))
        state_param = {"state": params["state"]} if "state" in params else {}
        config = self.state.config
        if not self.state.client_known(params.get("client_id", "")):
            return redirect(
                add_query(
                    redirect_uri,
                    {
                        "error": "server_error",
                        "error_description": "Unknown client_id",
                        **state_param,
                    },
                )
            )
        if method == "GET":
            hidden = {
                k: params[k] for k in ("client_id", "redirect_uri", "response_type", "scope", "state") if k in params
            }
            return html_response(200, pages.consent_page(config.app_name, config.tenant, hidden, AUTHORIZE_PATH))
        decision = params.get("decision")
        if decision == "allow" and not config.deny_all:
            code = self.state.issue_code(params["client_id"], redirect_uri)
            return redirect(add_query(redirect_uri, {"code": code, **state_param}))
        return redirect(
            add_query(
                redirect_uri,
                {
                    **state_param,
                    "error": "access_denied",
                    "error_description": "User denied access to resource",
                    "error_uri": ERROR_URI,
                },
            )
        )

    # ------------------------------------------------------------------ OAuth: token
    def _basic_credentials(self) -> tuple[str, str] | None:
        auth = self.headers.get("Authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return ("", "")
        user, _, password = decoded.partition(":")
        return unquote(user), unquote(password)

    def _token(self, method: str, body: bytes) -> Response:
        if method != "POST":
            return json_response(405, {"error": "invalid_request", "error_description": "Use POST"})
        ctype = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            return outcome_response(
                oauth_error(
                    400,
                    "invalid_request",
                    "Content-Type must be application/x-www-form-urlencoded",
                )
            )
        form = first_values(body.decode("utf-8", "replace"))
        creds = self._basic_credentials()
        if creds is None:
            creds = (form.get("client_id", ""), form.get("client_secret", ""))
        client_id, client_secret = creds
        invalid_client = oauth_error(401, "invalid_client", "Invalid client credentials")
        if not client_id or not self.state.check_client(client_id, client_secret):
            resp = outcome_response(invalid_client)
            resp.headers["WWW-Authenticate"] = 'Basic realm="keap"'
            return resp
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return outcome_response(self.state.exchange_code(client_id, form.get("code", ""), form.get("redirect_uri")))
        if grant_type == "refresh_token":
            return outcome_response(self.state.refresh(client_id, form.get("refresh_token", "")))
        return outcome_response(oauth_error(400, "unsupported_grant_type", f"Unsupported grant_type: {grant_type}"))

    # ------------------------------------------------------------------ REST
    def _rest(self, method: str, sub: str, query: str, body: bytes) -> Response:
        auth = self.headers.get("Authorization", "")
        scheme, _, value = auth.partition(" ")
        bearer = value.strip() if scheme.lower() == "bearer" else None
        api_key = self.headers.get("X-Keap-API-Key")
        caller = self.state.authenticate(bearer, api_key)
        if caller is None:
            return outcome_response(invalid_access_token())
        result = self.state.check_throttle(caller)
        if not result.allowed:
            headers = dict(result.headers)
            if self.state.config.send_retry_after:
                headers["Retry-After"] = str(result.retry_after)
            return json_response(429, quota_violation(result.identifier), headers)
        resp = self._rest_route(method, sub, query, body)
        resp.headers.update(result.headers)
        return resp

    def _rest_route(self, method: str, sub: str, query: str, body: bytes) -> Response:  # noqa: PLR0912
        segments = [unquote(s) for s in sub.strip("/").split("/")] if sub.strip("/") else []
        params = first_values(query)
        allowed: tuple[str, ...] = ()

        def parsed_body() -> tuple[Any, Response | None]:
            if not body:
                return None, None
            try:
                return json.loads(body), None
            except ValueError:
                return None, outcome_response(v2_error(400, "Request body is not valid JSON", "INVALID_ARGUMENT"))

        if segments[:2] == ["v2", "contacts"] and len(segments) == 2:
            allowed = ("GET", "POST")
            if method == "POST":
                data, err = parsed_body()
                if err:
                    return err
                return outcome_response(self.state.upsert_contact(data, params.get("duplicate_option")))
            if method == "GET":
                page = self._paging(params)
                if isinstance(page, Response):
                    return page
                filters = self._filters(params.get("filter"), ("email", "given_name", "family_name"))
                if isinstance(filters, Response):
                    return filters
                return outcome_response(self.state.list_contacts(filters, *page))
        elif segments[:2] == ["v2", "contacts"] and len(segments) == 3:
            allowed = ("GET",)
            if method == "GET":
                return outcome_response(self.state.get_contact(segments[2]))
        elif segments[:2] == ["v2", "tags"] and len(segments) == 2:
            allowed = ("GET", "POST")
            if method == "POST":
                data, err = parsed_body()
                if err:
                    return err
                return outcome_response(self.state.create_tag(data))
            if method == "GET":
                page = self._paging(params)
                if isinstance(page, Response):
                    return page
                filters = self._filters(params.get("filter"), ("name",))
                if isinstance(filters, Response):
                    return filters
                return outcome_response(self.state.list_tags(filters.get("name"), *page))
        elif segments[:2] == ["v2", "tags"] and len(segments) == 3:
            allowed = ("GET",)
            if method == "GET":
                return outcome_response(self.state.get_tag(segments[2]))
        elif segments[:2] == ["v2", "tags"] and len(segments) == 4 and segments[3] == "contacts:applyTags":
            allowed = ("POST",)
            if method == "POST":
                data, err = parsed_body()
                if err:
                    return err
                return outcome_response(self.state.apply_tag(segments[2], data))
        if allowed:
            resp = outcome_response(v2_error(405, f"Method {method} not allowed", "METHOD_NOT_ALLOWED"))
            resp.headers["Allow"] = ", ".join(allowed)
            return resp
        return outcome_response(v2_error(404, "Not found", "NOT_FOUND"))

    @staticmethod
    def _paging(params: dict[str, str]) -> tuple[int, int] | Response:
        try:
            size = int(params.get("page_size") or MAX_PAGE_SIZE)
            offset = int(params.get("page_token") or 0)
        except ValueError:
            return outcome_response(v2_error(400, "Invalid page_size or page_token", "INVALID_ARGUMENT"))
        if size < 1 or offset < 0:
            return outcome_response(v2_error(400, "Invalid page_size or page_token", "INVALID_ARGUMENT"))
        return min(size, MAX_PAGE_SIZE), offset

    @staticmethod
    def _filters(raw: str | None, allowed: tuple[str, ...]) -> dict[str, str] | Response:
        """Parse ``field==value[;field==value...]``."""
        if not raw:
            return {}
        out: dict[str, str] = {}
        for part in raw.split(";"):
            key, sep, value = part.partition("==")
            key = key.strip()
            if not sep or key not in allowed:
                return outcome_response(v2_error(400, f"Invalid filter: {part}", "INVALID_ARGUMENT"))
            out[key] = value.strip()
        return out

    # ------------------------------------------------------------------ control API
    def _control(self, method: str, path: str, query: str, body: bytes) -> Response:  # noqa: PLR0912
        sub = path[len(CONTROL_PREFIX) :].strip("/")
        data: Any = {}
        if body:
            try:
                data = json.loads(body)
            except ValueError:
                return json_response(400, {"error": "body is not valid JSON"})
        if not isinstance(data, dict):
            return json_response(400, {"error": "body must be a JSON object"})
        state = self.state
        try:
            if sub == "" and method == "GET":
                return html_response(200, pages.overview_page(state.snapshot(), state.get_config(), self.server.url))
            if sub == "state" and method == "GET":
                return json_response(200, state.snapshot())
            if sub == "reset" and method == "POST":
                state.reset()
                return json_response(200, {"ok": True})
            if sub == "clock":
                if method == "POST":
                    if "advance" in data:
                        state.clock.advance(_number(data["advance"], "advance"))
                    elif "set" in data:
                        state.clock.set(_number(data["set"], "set"))
                    else:
                        raise ConfigError("give advance or set")
                    return json_response(200, {"clock": state.now()})
                if method == "GET":
                    return json_response(200, {"clock": state.now()})
            if sub == "config":
                if method == "POST":
                    return json_response(200, state.update_config(data))
                if method == "GET":
                    return json_response(200, state.get_config())
            if sub == "faults":
                if method == "POST":
                    return json_response(201, state.add_fault(data))
                if method == "GET":
                    return json_response(200, {"faults": state.list_faults()})
                if method == "DELETE":
                    state.clear_faults()
                    return json_response(200, {"ok": True})
            if sub == "requests":
                if method == "GET":
                    return json_response(200, state.requests())
                if method == "DELETE":
                    state.clear_requests()
                    return json_response(200, {"ok": True})
            if sub == "keys" and method == "POST":
                return json_response(201, {"key": state.create_key(str(data.get("kind", "sak")))})
            if sub == "revoke" and method == "POST":
                return json_response(200, state.revoke_all(bool(data.get("include_keys", False))))
        except ConfigError as exc:
            return json_response(400, {"error": str(exc)})
        return json_response(404, {"error": f"no control route {method} {path}"})


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number")
    return float(value)
