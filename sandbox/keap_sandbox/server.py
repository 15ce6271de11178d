"""HTTP layer of the Keap sandbox (stdlib ``ThreadingHTTPServer``): Keap's consent page and token endpoint, the
REST v2 routes keaplink calls (checked against ``spec/keap-openapi-v2.yml`` when ``validate_contract`` is on), and
the ``/_sandbox`` control API. What each route models, the settings for what the contract leaves open and the
other choices made: ``sandbox/README.md``; the engagement routes: ``engagement.py``.
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
from keap_sandbox.contract import Answer, ContractChecker, Exchange, Violation, log_violations
from keap_sandbox.crm import InvalidInput
from keap_sandbox.state import (
    GATEWAY_STATUSES,
    JSON,
    ConfigError,
    Fault,
    NotFound,
    Outcome,
    Query,
    SandboxConfig,
    SandboxState,
    gateway_error,
    is_gateway_fault,
    oauth_error,
    v2_error,
)

AUTHORIZE_PATH = "/app/oauth/authorize"
TOKEN_PATH = "/token"
REST_PREFIX = "/crm/rest"
CONTROL_PREFIX = "/_sandbox"

TAG_CONTACT_ACTIONS = ("contacts:applyTags", "contacts:removeTags")

ERROR_URI = "https://developer.infusionsoft.com/docs/rest/#authorization"


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    off_spec: bool = False  # deliberately off-spec by a setting: not reported by the contract checker


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(body).encode(), "application/json", dict(headers or {}))


def outcome_response(outcome: Outcome) -> Response:
    if outcome.body is None:  # 204 No Content
        return Response(outcome.status, b"", "", dict(outcome.headers), outcome.off_spec)
    resp = json_response(outcome.status, outcome.body, outcome.headers)
    resp.off_spec = outcome.off_spec
    return resp


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


def all_values(query: str) -> Query:
    return parse_qs(query, keep_blank_values=True)


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
        self.contract = ContractChecker()  # loads the spec on its first check only
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
    _arrived: float | None = None  # the current request's arrival (monotonic): what the spike window counts
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
        if resp.content_type:
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
        self._arrived = time.monotonic()
        if path == TOKEN_PATH:
            entry["grant_type"] = first_values(body.decode("utf-8", "replace")).get("grant_type")
        exchange = None
        if self.state.config.validate_contract and (path == REST_PREFIX or path.startswith(REST_PREFIX + "/")):
            exchange = Exchange(method, path, query, list(self.headers.items()), body)
            self._check_contract(entry, exchange, None)
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
                if exchange is not None:
                    self._check_contract(entry, exchange, resp)
                time.sleep(fault.delay_s)
                entry["status"] = resp.status
                entry["dropped"] = True
                self.state.log_request(entry)
                self._drop()
                return
            resp = self._fault_response(fault, path)
        else:
            resp = self._safe(lambda: self._route(method, path, query, body))
        if exchange is not None:
            self._check_contract(entry, exchange, resp)
        entry["status"] = resp.status
        self.state.log_request(entry)
        self._send(resp)

    def _check_contract(self, entry: JSON, exchange: Exchange, resp: Response | None) -> None:
        """Validate the request (``resp`` None) or the answer against Keap's contract; record and log
        what does not conform. Gateway ``fault`` bodies (when that is the configured shape) and answers
        a setting made off-spec on purpose are not the API's answers and are not validated."""
        config = self.state.config
        strict = config.contract_strict_properties
        answer = None
        if resp is not None:
            if resp.off_spec:
                return
            if config.gateway_error_shape == "fault" and resp.status in GATEWAY_STATUSES:
                try:
                    parsed = json.loads(resp.body or b"null")
                except ValueError:
                    parsed = None
                if is_gateway_fault(resp.status, parsed):
                    return
            answer = Answer(resp.status, resp.content_type, resp.body, list(resp.headers.items()))
        try:
            if answer is None:
                found = self.server.contract.check_request(exchange, strict)
            else:
                found = self.server.contract.check_response(exchange, answer, strict)
        except Exception as exc:  # noqa: BLE001 - a checker failure is reported, never silent, never fatal
            traceback.print_exc()
            kind, status = ("request", None) if answer is None else ("response", answer.status)
            ex = exchange
            found = [Violation(kind, "checker-error", ex.method, ex.path, ex.query, status, None, (repr(exc),))]
        if found:
            log_violations(found)
            self.state.record_violations([v.to_json() for v in found])
            entry["contract_violations"] = entry.get("contract_violations", 0) + len(found)

    def _safe(self, fn: Any) -> Response:
        try:
            resp: Response = fn()
            return resp
        except InvalidInput as exc:
            return outcome_response(v2_error(400, str(exc), "INVALID_ARGUMENT"))
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
        if path in (TOKEN_PATH, AUTHORIZE_PATH) and status not in (502, 503, 504, 429):
            error = "server_error" if status >= 500 else "invalid_request"
            return json_response(status, {"error": error, "error_description": status_phrase(status)}, headers)
        if status in GATEWAY_STATUSES:
            shape = "fault" if path in (TOKEN_PATH, AUTHORIZE_PATH) else self.state.config.gateway_error_shape
            outcome = gateway_error(status, shape, "sandbox-fault")
        else:
            outcome = v2_error(status, status_phrase(status))
        return json_response(status, outcome.body, headers)

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
        shape = self.state.config.gateway_error_shape
        if caller is None:
            return outcome_response(gateway_error(401, shape))
        result = self.state.check_throttle(caller, self._arrived)
        if not result.allowed:
            headers = dict(result.headers)
            if self.state.config.send_retry_after:
                headers["Retry-After"] = str(result.retry_after)
            return json_response(429, gateway_error(429, shape, result.identifier).body, headers)
        if method == "GET" and sub.rstrip("/") == "/v2/oauth/connect/userinfo":
            resp = outcome_response(self.state.user_info(caller))
        else:
            resp = self._safe(lambda: self._rest_route(method, sub, query, body))
        resp.headers.update(result.headers)
        return resp

    def _rest_route(self, method: str, sub: str, query: str, body: bytes) -> Response:  # noqa: PLR0912
        segments = [unquote(s) for s in sub.strip("/").split("/")] if sub.strip("/") else []
        params = all_values(query)
        state = self.state

        def data() -> Any:
            if not body:
                raise InvalidInput("A request body is required")
            try:
                return json.loads(body)
            except ValueError:
                raise InvalidInput("Request body is not valid JSON") from None

        routes: dict[str, Any] = {}
        if segments[:1] != ["v2"]:
            pass
        elif segments[1:] == ["contacts"]:
            routes = {
                "GET": lambda: state.list_contacts(params),
                "POST": lambda: state.upsert_contact(data(), params),
            }
        elif segments[1:] == ["contacts", "model"]:
            routes = {"GET": state.contact_model}
        elif len(segments) == 4 and segments[1] == "contacts" and segments[3] == "notes":
            note_cid = segments[2]
            routes = {"POST": lambda: state.create_note(note_cid, data())}
        elif len(segments) == 4 and segments[1] == "emailAddresses" and segments[3] == "status":
            address = segments[2]
            routes = {"GET": lambda: state.get_email_status(address),
                      "PATCH": lambda: state.update_email_status(address, data())}
        elif segments[1:] == ["automations", "goals", "achieve"]:
            routes = {"POST": lambda: state.achieve_goal(data())}
        elif segments[1:] == ["contacts:merge"]:
            routes = {"POST": lambda: state.merge_contacts(data(), params)}
        elif len(segments) == 3 and segments[1] == "contacts":
            cid = segments[2]
            routes = {
                "GET": lambda: state.get_contact(cid, params),
                "PATCH": lambda: state.update_contact(cid, data(), params),
                "DELETE": lambda: state.delete_contact(cid),
            }
        elif segments[1:] == ["tags"]:
            routes = {"GET": lambda: state.list_tags(params), "POST": lambda: state.create_tag(data())}
        elif len(segments) == 3 and segments[1] == "tags":
            tid = segments[2]
            routes = {"GET": lambda: state.get_tag(tid), "DELETE": lambda: state.delete_tag(tid)}
        elif len(segments) == 4 and segments[1] == "tags" and segments[3] in TAG_CONTACT_ACTIONS:
            tid, apply = segments[2], segments[3] == "contacts:applyTags"
            routes = {"POST": lambda: (state.apply_tag if apply else state.remove_tag)(tid, data())}
        if not routes:
            return outcome_response(v2_error(404, "Not found", "NOT_FOUND"))
        if method not in routes:
            resp = outcome_response(v2_error(405, f"Method {method} not allowed", "METHOD_NOT_ALLOWED"))
            resp.headers["Allow"] = ", ".join(routes)
            return resp
        return outcome_response(routes[method]())

    # ------------------------------------------------------------------ control API
    def _control(self, method: str, path: str, query: str, body: bytes) -> Response:  # noqa: PLR0912, PLR0915
        sub = path[len(CONTROL_PREFIX) :].strip("/")
        parts = [unquote(p) for p in sub.split("/")] if sub else []
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
            if sub == "contract":
                if method == "GET":
                    return json_response(200, state.list_violations())
                if method == "DELETE":
                    state.clear_violations()
                    return json_response(200, {"ok": True})
            if sub == "tokens" and method == "POST":
                return json_response(201, state.mint_pair())
            if sub == "keys" and method == "POST":
                return json_response(201, {"key": state.create_key(str(data.get("kind", "sak")))})
            if sub == "revoke" and method == "POST":
                return json_response(200, state.revoke_all(bool(data.get("include_keys", False))))
            if sub == "quota" and method == "POST":
                used, key = data.get("used"), data.get("key")
                return json_response(200, state.spend_quota(str(data.get("limit", "")), used, key))
            if sub == "email_status" and method == "POST":
                return json_response(200, state.control_email_status(data))
            if sub == "goals" and method == "POST":
                return json_response(201, state.control_publish_goal(data))
            if sub == "goals" and method == "DELETE":
                state.control_unpublish_goal(data)
                return json_response(200, {"ok": True})
            if sub == "custom_fields" and method == "POST":
                return json_response(201, state.control_custom_field(data))
            if parts[:1] in (["contacts"], ["tags"]):
                return self._control_crm(method, path, parts, data)
        except ConfigError as exc:
            return json_response(400, {"error": str(exc)})
        return json_response(404, {"error": f"no control route {method} {path}"})

    def _control_crm(self, method: str, path: str, parts: list[str], data: JSON) -> Response:
        """The customer's own CRM: contacts and tags changed as someone would in Keap's app."""
        state = self.state
        try:
            if parts[:1] == ["contacts"]:
                if parts == ["contacts"] and method == "POST":
                    return json_response(201, state.control_create_contact(data))
                if parts == ["contacts", "merge"] and method == "POST":
                    return json_response(200, state.control_merge_contacts(data))
                if len(parts) == 2 and method == "PATCH":
                    return json_response(200, state.control_update_contact(parts[1], data))
                if len(parts) == 2 and method == "DELETE":
                    state.control_delete_contact(parts[1])
                    return json_response(200, {"ok": True})
            if parts[:1] == ["tags"]:
                if parts == ["tags"] and method == "POST":
                    return json_response(201, state.control_create_tags(data))
                if len(parts) == 2 and method == "PATCH":
                    return json_response(200, state.control_update_tag(parts[1], data))
                if len(parts) == 2 and method == "DELETE":
                    state.control_delete_tag(parts[1])
                    return json_response(200, {"ok": True})
        except ConfigError as exc:
            return json_response(400, {"error": str(exc)})
        except NotFound as exc:
            return json_response(404, {"error": str(exc).strip("'")})
        return json_response(404, {"error": f"no control route {method} {path}"})


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number")
    return float(value)
