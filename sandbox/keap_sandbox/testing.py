"""Start a sandbox inside a test process and drive it through its control API.

Example::

    from keap_sandbox.testing import start_sandbox

    with start_sandbox(expires_in=3600) as sb:
        tokens = sb.control.obtain_tokens("https://example.test/callback")
        sb.control.advance_clock(3600)          # access token now expired
        sb.control.add_fault("/token", status=503, count=1)

Only the standard library is used here, so the module can be imported anywhere.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import urllib.error
import urllib.request
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from keap_sandbox.server import SandboxHTTPServer, make_server
from keap_sandbox.state import SandboxConfig, SandboxState

__all__ = ["SandboxControl", "SandboxControlError", "SandboxHandle", "describe_violations", "start_sandbox"]


class SandboxControlError(RuntimeError):
    """The control API answered with an error status."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"sandbox control API answered {status}: {body}")
        self.status = status
        self.body = body


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class SandboxControl:
    """Small client for ``/_sandbox/...`` plus OAuth helpers that skip the browser."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http(s) URL")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    # ------------------------------------------------------------------ transport
    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(  # noqa: S310 - base_url is checked to be http(s)
            self.base_url + "/_sandbox" + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            text = exc.read()
            try:
                parsed: Any = json.loads(text)
            except ValueError:
                parsed = text.decode("utf-8", "replace")
            raise SandboxControlError(exc.code, parsed) from None
        ctype = resp.headers.get("Content-Type", "")
        return json.loads(raw) if ctype.startswith("application/json") else raw.decode()

    # ------------------------------------------------------------------ control API
    def state(self) -> dict[str, Any]:
        """``{"clock", "contacts", "tags", "tokens": {live_access, live_refresh, refreshes, code_exchanges}}``."""
        result: dict[str, Any] = self._call("GET", "/state")
        return result

    def contacts(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.state()["contacts"]
        return result

    def tags(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.state()["tags"]
        return result

    def tokens(self) -> dict[str, int]:
        result: dict[str, int] = self.state()["tokens"]
        return result

    def reset(self) -> None:
        self._call("POST", "/reset", {})

    def clock(self) -> float:
        return float(self._call("GET", "/clock")["clock"])

    def advance_clock(self, seconds: float) -> float:
        return float(self._call("POST", "/clock", {"advance": seconds})["clock"])

    def set_clock(self, epoch: float) -> float:
        return float(self._call("POST", "/clock", {"set": epoch})["clock"])

    def config(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/config")
        return result

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Partial config update of any key of :attr:`SandboxConfig.MUTABLE` (see ``server.py``)."""
        result: dict[str, Any] = self._call("POST", "/config", changes)
        return result

    def add_fault(
        self,
        path_prefix: str,
        *,
        status: int | None = None,
        count: int | None = None,
        action: str | None = None,
        delay_s: float | None = None,
        failure_rate: float | None = None,
        seed: int | None = None,
        method: str | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Inject a fault; ``action`` is ``error`` (default), ``timeout`` or ``succeed_then_drop``.

        ``count`` defaults to 1, or to "until cleared" when ``failure_rate`` is given.
        """
        spec: dict[str, Any] = {"path_prefix": path_prefix}
        for key, value in (
            ("status", status),
            ("count", count),
            ("action", action),
            ("delay_s", delay_s),
            ("failure_rate", failure_rate),
            ("seed", seed),
            ("method", method),
            ("body", body),
            ("headers", headers),
        ):
            if value is not None:
                spec[key] = value
        result: dict[str, Any] = self._call("POST", "/faults", spec)
        return result

    def faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/faults")["faults"]
        return result

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def requests(self) -> list[dict[str, Any]]:
        """Log of non-control requests: method, path, query, status, auth, t, dropped[, fault, grant_type]."""
        result: list[dict[str, Any]] = self._call("GET", "/requests")
        return result

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    # ------------------------------------------------------------------ Keap's contract
    def contract_violations(self) -> list[dict[str, Any]]:
        """Requests and answers that broke Keap's contract since the last reset/clear (each: kind,
        check, method, path, query, status, operation, message, errors)."""
        result: list[dict[str, Any]] = self._call("GET", "/contract")
        return result

    def clear_contract_violations(self) -> None:
        self._call("DELETE", "/contract")

    # ------------------------------------------------------------------ the customer's CRM
    def set_email_status(self, email: str, status: str) -> dict[str, Any]:
        """An address's opt-in status as the person or the customer left it (e.g. ``LIST_UNSUBSCRIBE``)."""
        result: dict[str, Any] = self._call("POST", "/email_status", {"email": email, "status": status})
        return result

    def publish_goal(self, integration: str, call_name: str) -> dict[str, Any]:
        """A published campaign listening for an API goal."""
        result: dict[str, Any] = self._call("POST", "/goals", {"integration": integration, "call_name": call_name})
        return result

    def unpublish_goal(self, integration: str, call_name: str) -> None:
        self._call("DELETE", "/goals", {"integration": integration, "call_name": call_name})

    def create_custom_field(self, label: str, field_type: str = "TEXT", **extra: Any) -> dict[str, Any]:
        """A contact custom field (``options``: labels, ``field_name``: the API name, derived if absent)."""
        result: dict[str, Any] = self._call("POST", "/custom_fields", {"label": label, "field_type": field_type,
                                                                        **extra})
        return result

    def create_contact(self, **data: Any) -> dict[str, Any]:
        """Create a contact as the customer would in Keap (no REST, no validation): any
        ``CreateUpdateContactRequest`` property, plus ``tag_ids``, ``tag_names`` (created if missing)
        and optionally ``id``."""
        result: dict[str, Any] = self._call("POST", "/contacts", data)
        return result

    def update_contact(self, contact_id: str, **data: Any) -> dict[str, Any]:
        """Change a contact: properties given replace (lists too), ``None`` removes; ``tag_ids`` /
        ``tag_names`` replace its tags."""
        result: dict[str, Any] = self._call("PATCH", f"/contacts/{contact_id}", data)
        return result

    def delete_contact(self, contact_id: str) -> None:
        self._call("DELETE", f"/contacts/{contact_id}")

    def merge_contacts(self, contact_id: str, duplicate_contact_id: str) -> dict[str, Any]:
        """Merge ``duplicate_contact_id`` into ``contact_id`` (which survives); returns the result."""
        body = {"contact_id": contact_id, "duplicate_contact_id": duplicate_contact_id}
        result: dict[str, Any] = self._call("POST", "/contacts/merge", body)
        return result

    def create_tag(self, name: str, **extra: Any) -> dict[str, Any]:
        """One tag (``description``, ``category``, ``allow_duplicate`` optional)."""
        result: dict[str, Any] = self._call("POST", "/tags", {"name": name, **extra})["tags"][0]
        return result

    def create_tags(self, count: int, prefix: str = "tag-") -> list[dict[str, Any]]:
        """``count`` tags named ``prefix`` + a zero-padded number (e.g. 2,500 to see several pages)."""
        result: list[dict[str, Any]] = self._call("POST", "/tags", {"count": count, "prefix": prefix})["tags"]
        return result

    def update_tag(self, tag_id: str, **changes: Any) -> dict[str, Any]:
        """Rename a tag (``name``) or change its ``description``."""
        result: dict[str, Any] = self._call("PATCH", f"/tags/{tag_id}", changes)
        return result

    def delete_tag(self, tag_id: str) -> None:
        self._call("DELETE", f"/tags/{tag_id}")

    def spend_quota(
        self, limit: str = "oauth_per_day", used: int | None = None, key: str | None = None
    ) -> dict[str, Any]:
        """Set a throttle counter of the current window (default: spend it all), e.g. the OAuth client's
        daily quota; answers ``{"limit", "identity", "used", "resets_at_ms"}``."""
        body: dict[str, Any] = {"limit": limit}
        if used is not None:
            body["used"] = used
        if key is not None:
            body["key"] = key
        result: dict[str, Any] = self._call("POST", "/quota", body)
        return result

    # ------------------------------------------------------------------ keys
    def create_key(self, kind: str = "sak") -> str:
        """Create a Service Account Key (``sak``) or Personal Access Token (``pat``)."""
        return str(self._call("POST", "/keys", {"kind": kind})["key"])

    def mint_pair(self) -> dict[str, str]:
        """An access/refresh token pair as Keap's developer portal gives one (no consent page, no expiry)."""
        pair: dict[str, str] = self._call("POST", "/tokens", {})
        return pair

    def revoke(self, include_keys: bool = False) -> dict[str, Any]:
        """Kill every access and refresh token (and API keys if asked): "Keap revoked access"."""
        result: dict[str, Any] = self._call("POST", "/revoke", {"include_keys": include_keys})
        return result

    def overview_html(self) -> str:
        return str(self._call("GET", "/"))

    # ------------------------------------------------------------------ OAuth helpers
    def authorize(
        self,
        redirect_uri: str,
        *,
        state: str | None = "sandbox-state",
        client_id: str | None = None,
        decision: str = "allow",
    ) -> dict[str, str]:
        """Submit the consent form as a user would and return the redirect's query parameters
        (``code``/``state`` or ``error``/...). ``client_id`` defaults to the configured one."""
        if client_id is None:
            client_id = str(self.config()["client_id"])
        form = {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": "full",
            "decision": decision,
        }
        if state is not None:
            form["state"] = state
        req = urllib.request.Request(  # noqa: S310 - base_url is checked to be http(s)
            self.base_url + "/app/oauth/authorize",
            data=urlencode(form).encode(),
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            opener.open(req, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            if exc.code != 302:
                raise SandboxControlError(exc.code, exc.read().decode("utf-8", "replace")) from None
            location = exc.headers.get("Location", "")
        else:  # pragma: no cover - the endpoint always redirects or fails
            raise SandboxControlError(200, "authorize did not redirect")
        return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}

    def obtain_tokens(self, redirect_uri: str) -> dict[str, Any]:
        """Authorize and exchange the code: the token response (access_token, refresh_token, ...)."""
        cfg = self.config()
        code = self.authorize(redirect_uri)["code"]
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": cfg["client_id"],
            "client_secret": cfg["client_secret"],
        }
        req = urllib.request.Request(  # noqa: S310 - base_url is checked to be http(s)
            self.base_url + "/token",
            data=urlencode(form).encode(),
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                result: dict[str, Any] = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise SandboxControlError(exc.code, exc.read().decode("utf-8", "replace")) from None
        return result


class SandboxHandle:
    """A running sandbox. Use as a context manager or call :meth:`stop`."""

    def __init__(self, server: SandboxHTTPServer, thread: threading.Thread) -> None:
        self.server = server
        self._thread = thread
        self.url = server.url
        self.authorize_url = self.url + "/app/oauth/authorize"
        self.token_url = self.url + "/token"
        self.api_url = self.url + "/crm/rest"
        self.control = SandboxControl(self.url)
        cfg = server.state.config
        self.client_id = cfg.client_id
        self.client_secret = cfg.client_secret
        self.tenant = cfg.tenant

    @property
    def state(self) -> SandboxState:
        """Direct access to the in-process model (prefer :attr:`control` in tests)."""
        return self.server.state

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> SandboxHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def describe_violations(violations: list[dict[str, Any]]) -> str:
    """Contract violations as readable lines, one per violation."""
    lines = []
    for v in violations:
        target = f"{v['method']} {v['path']}" + (f"?{v['query']}" if v.get("query") else "")
        what = "request" if v["kind"] == "request" else f"response {v['status']}"
        op = f" ({v['operation']})" if v.get("operation") else ""
        lines.append(f"  - {what} {target}{op} [{v['check']}]: {v['message']}")
    return "\n".join(lines)


def start_sandbox(*, host: str = "127.0.0.1", port: int = 0, verbose: bool = False, **config: Any) -> SandboxHandle:
    """Start a sandbox in a daemon thread and return its handle.

    ``config`` takes any :class:`~keap_sandbox.state.SandboxConfig` field: client_id,
    client_secret, tenant, app_name, expires_in (86400), refresh_token_max_age (45 days),
    code_lifetime (600), latency_ms (0), throttle (False here; True in the CLI), limits (partial dict),
    send_retry_after (True), deny_all (False), revoke_access_on_refresh (False),
    validate_contract (False: True checks every REST request and answer against Keap's contract, which
    needs openapi-core), and the answers where the contract is silent (``server.py``).
    """
    cfg = SandboxConfig()
    known = {f.name for f in dataclasses.fields(cfg)}
    unknown = set(config) - known
    if unknown:
        raise TypeError(f"unknown sandbox settings: {sorted(unknown)}")
    cfg.update(config, allow_identity=True)
    server = make_server(host, port, cfg, verbose=verbose)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        daemon=True,
        name=f"keap-sandbox-{server.server_address[1]}",
    )
    thread.start()
    return SandboxHandle(server, thread)
