"""In-memory model of one Keap developer app and one Keap app (tenant), guarded by one lock.

Holds the configuration, the sandbox clock, authorization codes, access/refresh tokens, API keys,
contacts, tags, the throttle counters, injected faults and the request log. The HTTP layer
(``server.py``) parses requests and calls the methods here; every method that touches shared data
takes ``self.lock``.
"""

from __future__ import annotations

import dataclasses
import random
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from keap_sandbox.clock import SandboxClock
from keap_sandbox.throttle import DEFAULT_LIMITS, Throttle, ThrottleResult

JSON = dict[str, Any]

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
EMAIL_FIELDS = ("EMAIL1", "EMAIL2", "EMAIL3")
DUPLICATE_OPTIONS = ("Email", "EmailAndName", "EmailAndNameAndCompany")


class ConfigError(ValueError):
    """A control-API request carried an unknown or badly typed setting."""


@dataclass
class SandboxConfig:
    """Settings; everything except the identity fields can be changed at run time (control API)."""

    client_id: str = "sandbox-client-id"
    client_secret: str = "sandbox-client-secret"
    tenant: str = "sb123.infusionsoft.com"
    app_name: str = "keaplink"
    expires_in: int = 86400
    refresh_token_max_age: float = 45 * 86400
    code_lifetime: float = 600
    latency_ms: float = 0
    throttle: bool = False
    limits: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    send_retry_after: bool = True
    deny_all: bool = False
    revoke_access_on_refresh: bool = False

    MUTABLE = (
        "expires_in",
        "refresh_token_max_age",
        "code_lifetime",
        "latency_ms",
        "throttle",
        "limits",
        "send_retry_after",
        "deny_all",
        "revoke_access_on_refresh",
    )

    def to_json(self) -> JSON:
        return dataclasses.asdict(self)

    def update(self, changes: JSON, *, allow_identity: bool = False) -> None:  # noqa: PLR0912
        """Apply a partial update; raises :class:`ConfigError` and changes nothing on bad input."""
        allowed = {f.name for f in dataclasses.fields(self)} if allow_identity else set(self.MUTABLE)
        staged: JSON = {}
        for key, value in changes.items():
            if key not in allowed:
                raise ConfigError(f"unknown or read-only setting: {key}")
            current = getattr(self, key)
            if key == "limits":
                if not isinstance(value, dict):
                    raise ConfigError("limits must be an object")
                merged = dict(self.limits)
                for name, limit in value.items():
                    if name not in DEFAULT_LIMITS:
                        raise ConfigError(f"unknown limit: {name}")
                    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                        raise ConfigError(f"limit {name} must be a non-negative integer")
                    merged[name] = limit
                staged[key] = merged
            elif isinstance(current, bool):
                if not isinstance(value, bool):
                    raise ConfigError(f"{key} must be a boolean")
                staged[key] = value
            elif isinstance(current, (int, float)):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise ConfigError(f"{key} must be a non-negative number")
                staged[key] = int(value) if isinstance(current, int) else float(value)
            else:
                if not isinstance(value, str):
                    raise ConfigError(f"{key} must be a string")
                staged[key] = value
        for key, value in staged.items():
            setattr(self, key, value)


@dataclass
class AuthCode:
    client_id: str
    redirect_uri: str
    tenant: str
    issued_at: float


@dataclass
class AccessToken:
    client_id: str
    tenant: str
    issued_at: float
    expires_at: float


@dataclass
class RefreshToken:
    client_id: str
    tenant: str
    issued_at: float
    access_token: str


@dataclass
class Fault:
    """An injected failure, see ``POST /_sandbox/faults``."""

    id: int
    path_prefix: str
    action: str = "error"  # error | timeout | succeed_then_drop
    status: int = 500
    count: int | None = 1  # None: until cleared
    failure_rate: float | None = None
    delay_s: float = 0.0
    method: str | None = None
    body: Any = None
    seed: int | None = None
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers, e.g. a long Retry-After
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "path_prefix": self.path_prefix,
            "action": self.action,
            "status": self.status,
            "count": self.count,
            "failure_rate": self.failure_rate,
            "delay_s": self.delay_s,
            "method": self.method,
            "body": self.body,
            "seed": self.seed,
            "headers": self.headers,
        }


@dataclass
class Outcome:
    """What an operation answers: status, JSON body and extra headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def v2_error(status: int, message: str, code_name: str, details: bool = True) -> Outcome:
    body: JSON = {"code": status, "message": message, "status": code_name}
    if details:
        body["details"] = []
    return Outcome(status, body)


def oauth_error(status: int, error: str, description: str) -> Outcome:
    return Outcome(status, {"error": error, "error_description": description})


def invalid_access_token() -> Outcome:
    return Outcome(
        401,
        {
            "fault": {
                "faultstring": "Invalid access token",
                "detail": {"errorcode": "keymanagement.service.invalid_access_token"},
            }
        },
    )


def quota_violation(identifier: str) -> JSON:
    return {
        "fault": {
            "faultstring": ("Rate limit quota violation. Quota limit  exceeded. Identifier : " + identifier),
            "detail": {"errorcode": "policies.ratelimit.QuotaViolation"},
        }
    }


def iso_time(epoch: float) -> str:
    dt = datetime.fromtimestamp(epoch, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


@dataclass
class Caller:
    """An authenticated REST caller."""

    kind: str  # "oauth" | "key"
    identity: str  # client id or key
    tenant: str


class SandboxState:
    """All mutable sandbox data. Public methods are thread-safe."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.lock = threading.Lock()
        self.config = config or SandboxConfig()
        self.clock = SandboxClock()
        self.throttle = Throttle()
        self._clear()

    # ------------------------------------------------------------------ housekeeping
    def _clear(self) -> None:
        self.codes: dict[str, AuthCode] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.keys: dict[str, str] = {}
        self.contacts: dict[str, JSON] = {}
        self.tags: dict[str, JSON] = {}
        self.next_contact_id = 1
        self.next_tag_id = 1
        self.refreshes = 0
        self.code_exchanges = 0
        self.faults: list[Fault] = []
        self.next_fault_id = 1
        self.request_log: list[JSON] = []
        self.throttle.reset()

    def reset(self) -> None:
        """Forget all data, tokens, keys, faults and the request log; rewind the clock."""
        with self.lock:
            self._clear()
            self.clock.reset()

    def now(self) -> float:
        return self.clock.now()

    def snapshot(self) -> JSON:
        with self.lock:
            now = self.clock.now()
            return {
                "clock": now,
                "contacts": [dict(c) for c in self.contacts.values()],
                "tags": [dict(t) for t in self.tags.values()],
                "tokens": {
                    "live_access": sum(1 for t in self.access_tokens.values() if now < t.expires_at),
                    "live_refresh": sum(
                        1 for t in self.refresh_tokens.values() if now - t.issued_at < self.config.refresh_token_max_age
                    ),
                    "refreshes": self.refreshes,
                    "code_exchanges": self.code_exchanges,
                },
            }

    def get_config(self) -> JSON:
        with self.lock:
            return self.config.to_json()

    def update_config(self, changes: JSON) -> JSON:
        with self.lock:
            self.config.update(changes)
            return self.config.to_json()

    # ------------------------------------------------------------------ request log
    def log_request(self, entry: JSON) -> None:
        with self.lock:
            self.request_log.append(entry)

    def requests(self) -> list[JSON]:
        with self.lock:
            return [dict(e) for e in self.request_log]

    def clear_requests(self) -> None:
        with self.lock:
            self.request_log.clear()

    # ------------------------------------------------------------------ faults
    def add_fault(self, spec: JSON) -> JSON:
        prefix = spec.get("path_prefix")
        if not isinstance(prefix, str) or not prefix.startswith("/"):
            raise ConfigError("path_prefix must be a path starting with /")
        action = spec.get("action", "error")
        if action not in ("error", "timeout", "succeed_then_drop"):
            raise ConfigError("action must be error, timeout or succeed_then_drop")
        status = spec.get("status", 500)
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise ConfigError("status must be an HTTP status code")
        rate = spec.get("failure_rate")
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1):
            raise ConfigError("failure_rate must be between 0 and 1")
        count = spec.get("count", None if rate is not None else 1)
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise ConfigError("count must be a positive integer or null")
        delay = spec.get("delay_s", 0)
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
            raise ConfigError("delay_s must be a non-negative number")
        method = spec.get("method")
        if method is not None and not isinstance(method, str):
            raise ConfigError("method must be a string")
        seed = spec.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ConfigError("seed must be an integer")
        headers = spec.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                    for k, v in headers.items()):
            raise ConfigError("headers must be an object of strings")
        unknown = set(spec) - {
            "path_prefix",
            "action",
            "status",
            "count",
            "failure_rate",
            "delay_s",
            "method",
            "body",
            "seed",
            "headers",
        }
        if unknown:
            raise ConfigError(f"unknown fault fields: {sorted(unknown)}")
        with self.lock:
            fault = Fault(
                id=self.next_fault_id,
                path_prefix=prefix,
                action=action,
                status=status,
                count=count,
                failure_rate=None if rate is None else float(rate),
                delay_s=float(delay),
                method=method.upper() if method else None,
                body=spec.get("body"),
                seed=seed,
                headers=dict(headers),
                rng=random.Random(seed),
            )
            self.next_fault_id += 1
            self.faults.append(fault)
            return fault.to_json()

    def list_faults(self) -> list[JSON]:
        with self.lock:
            return [f.to_json() for f in self.faults]

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The fault that fires for this request, if any (consumes one of its ``count``)."""
        with self.lock:
            for fault in list(self.faults):
                if not path.startswith(fault.path_prefix):
                    continue
                if fault.method and fault.method != method:
                    continue
                if fault.failure_rate is not None and fault.rng.random() >= fault.failure_rate:
                    continue
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self.faults.remove(fault)
                return dataclasses.replace(fault)
            return None

    # ------------------------------------------------------------------ keys and revocation
    def create_key(self, kind: str) -> str:
        if kind not in ("sak", "pat"):
            raise ConfigError("kind must be sak or pat")
        key = ("KeapAK-" if kind == "sak" else "KeapPAT-") + secrets.token_urlsafe(30)
        with self.lock:
            self.keys[key] = kind
        return key

    def revoke_all(self, include_keys: bool = False) -> JSON:
        with self.lock:
            counts = {"access": len(self.access_tokens), "refresh": len(self.refresh_tokens)}
            self.access_tokens.clear()
            self.refresh_tokens.clear()
            self.codes.clear()
            if include_keys:
                counts["keys"] = len(self.keys)
                self.keys.clear()
            return {"revoked": counts}

    # ------------------------------------------------------------------ OAuth
    def client_known(self, client_id: str) -> bool:
        return client_id == self.config.client_id

    def check_client(self, client_id: str, client_secret: str) -> bool:
        return secrets.compare_digest(client_id, self.config.client_id) and secrets.compare_digest(
            client_secret, self.config.client_secret
        )

    def issue_code(self, client_id: str, redirect_uri: str) -> str:
        code = secrets.token_urlsafe(24)
        with self.lock:
            self.codes[code] = AuthCode(client_id, redirect_uri, self.config.tenant, self.clock.now())
        return code

    def _mint(self, client_id: str, tenant: str) -> JSON:
        now = self.clock.now()
        access = secrets.token_urlsafe(32)
        refresh = secrets.token_urlsafe(32)
        expires_in = self.config.expires_in
        self.access_tokens[access] = AccessToken(client_id, tenant, now, now + expires_in)
        self.refresh_tokens[refresh] = RefreshToken(client_id, tenant, now, access)
        return {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": expires_in,
            "refresh_token": refresh,
            "scope": f"full|{tenant}",
        }

    def exchange_code(self, client_id: str, code: str, redirect_uri: str | None) -> Outcome:
        with self.lock:
            grant = self.codes.get(code)
            now = self.clock.now()
            if grant is None or grant.client_id != client_id:
                return oauth_error(400, "invalid_grant", "Invalid authorization code")
            if now - grant.issued_at >= self.config.code_lifetime:
                del self.codes[code]
                return oauth_error(400, "invalid_grant", "Invalid authorization code")
            if redirect_uri != grant.redirect_uri:
                return oauth_error(400, "invalid_grant", "Redirect URI mismatch")
            del self.codes[code]
            # Re-authorizing kills every earlier token of this client for this Keap app.
            for token, rec in list(self.refresh_tokens.items()):
                if rec.client_id == client_id and rec.tenant == grant.tenant:
                    del self.refresh_tokens[token]
            for token, acc in list(self.access_tokens.items()):
                if acc.client_id == client_id and acc.tenant == grant.tenant:
                    del self.access_tokens[token]
            self.code_exchanges += 1
            return Outcome(200, self._mint(client_id, grant.tenant))

    def refresh(self, client_id: str, refresh_token: str) -> Outcome:
        with self.lock:
            rec = self.refresh_tokens.get(refresh_token)
            now = self.clock.now()
            if rec is None or rec.client_id != client_id:
                return oauth_error(400, "invalid_grant", "Invalid refresh token")
            if now - rec.issued_at >= self.config.refresh_token_max_age:
                del self.refresh_tokens[refresh_token]
                return oauth_error(400, "invalid_grant", "Invalid refresh token")
            del self.refresh_tokens[refresh_token]
            if self.config.revoke_access_on_refresh:
                self.access_tokens.pop(rec.access_token, None)
            self.refreshes += 1
            return Outcome(200, self._mint(client_id, rec.tenant))

    # ------------------------------------------------------------------ REST auth + throttle
    def authenticate(self, bearer: str | None, api_key: str | None) -> Caller | None:
        with self.lock:
            if bearer is not None:
                acc = self.access_tokens.get(bearer)
                if acc is None or self.clock.now() >= acc.expires_at:
                    return None
                return Caller("oauth", acc.client_id, acc.tenant)
            if api_key is not None and api_key in self.keys:
                return Caller("key", api_key, self.config.tenant)
            return None

    def check_throttle(self, caller: Caller) -> ThrottleResult:
        with self.lock:
            return self.throttle.check(
                auth_kind=caller.kind,
                identity=caller.identity,
                tenant=caller.tenant,
                now=self.clock.now(),
                mono=time.monotonic(),
                limits=self.config.limits,
                enforce=self.config.throttle,
            )

    # ------------------------------------------------------------------ contacts
    def _validate_contact(self, body: JSON) -> tuple[JSON, Outcome | None]:  # noqa: PLR0912
        clean: JSON = {}
        if "given_name" in body:
            given = body["given_name"]
            if given is not None and not isinstance(given, str):
                return clean, v2_error(400, "given_name must be a string", "INVALID_ARGUMENT")
            if given is not None and len(given) > 40:
                return clean, v2_error(400, "given_name must be at most 40 characters", "INVALID_ARGUMENT")
            clean["given_name"] = given
        if "family_name" in body:
            family = body["family_name"]
            if family is not None and not isinstance(family, str):
                return clean, v2_error(400, "family_name must be a string", "INVALID_ARGUMENT")
            clean["family_name"] = family
        if "email_addresses" in body:
            emails = body["email_addresses"]
            if not isinstance(emails, list):
                return clean, v2_error(400, "email_addresses must be a list", "INVALID_ARGUMENT")
            out: list[JSON] = []
            seen: set[str] = set()
            for item in emails:
                if not isinstance(item, dict) or not isinstance(item.get("email"), str):
                    return clean, v2_error(400, "email_addresses entries need an email", "INVALID_ARGUMENT")
                email = item["email"].strip()
                fld = item.get("field", "EMAIL1")
                if fld not in EMAIL_FIELDS:
                    return clean, v2_error(400, f"Invalid email field: {fld}", "INVALID_ARGUMENT")
                if fld in seen:
                    return clean, v2_error(400, f"Duplicate email field: {fld}", "INVALID_ARGUMENT")
                seen.add(fld)
                if fld == "EMAIL1" and len(email) > 75:
                    return clean, v2_error(400, "EMAIL1 must be at most 75 characters", "INVALID_ARGUMENT")
                if not EMAIL_RE.match(email):
                    return clean, v2_error(400, f"Invalid email address: {email}", "INVALID_ARGUMENT")
                out.append({"email": email, "field": fld})
            clean["email_addresses"] = out
        for key in ("phone_numbers", "addresses"):
            if key in body:
                value = body[key]
                if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                    return clean, v2_error(400, f"{key} must be a list of objects", "INVALID_ARGUMENT")
                clean[key] = [dict(v) for v in value]
        if "company" in body:
            clean["company"] = body["company"]
        return clean, None

    @staticmethod
    def _primary_email(contact: JSON) -> str | None:
        emails = contact.get("email_addresses") or []
        for item in emails:
            if item.get("field") == "EMAIL1":
                return str(item["email"])
        return str(emails[0]["email"]) if emails else None

    def _find_duplicate(self, clean: JSON, option: str) -> JSON | None:
        email = self._primary_email(clean)
        if email is None:
            return None
        for contact in self.contacts.values():
            if not any(e["email"].lower() == email.lower() for e in contact["email_addresses"]):
                continue
            if option in ("EmailAndName", "EmailAndNameAndCompany"):
                same_name = all(
                    (contact.get(k) or "").lower() == (clean.get(k) or "").lower()
                    for k in ("given_name", "family_name")
                )
                if not same_name:
                    continue
            if option == "EmailAndNameAndCompany" and contact.get("company") != clean.get("company"):
                continue
            return contact
        return None

    def upsert_contact(self, body: Any, duplicate_option: str | None) -> Outcome:
        if not isinstance(body, dict):
            return v2_error(400, "Request body must be a JSON object", "INVALID_ARGUMENT")
        if duplicate_option is not None and duplicate_option not in DUPLICATE_OPTIONS:
            return v2_error(400, f"Invalid duplicate_option: {duplicate_option}", "INVALID_ARGUMENT")
        clean, err = self._validate_contact(body)
        if err is not None:
            return err
        with self.lock:
            now = iso_time(self.clock.now())
            existing = self._find_duplicate(clean, duplicate_option) if duplicate_option else None
            if existing is not None:
                existing.update(clean)
                existing["update_time"] = now
                return Outcome(200, dict(existing))
            if not (clean.get("email_addresses") or clean.get("phone_numbers") or clean.get("addresses")):
                return v2_error(
                    400,
                    "A contact needs at least one email address, phone number or address",
                    "INVALID_ARGUMENT",
                )
            cid = str(self.next_contact_id)
            self.next_contact_id += 1
            contact: JSON = {
                "id": cid,
                "given_name": clean.get("given_name"),
                "family_name": clean.get("family_name"),
                "email_addresses": clean.get("email_addresses", []),
                "phone_numbers": clean.get("phone_numbers", []),
                "addresses": clean.get("addresses", []),
                "tag_ids": [],
                "create_time": now,
                "update_time": now,
            }
            if "company" in clean:
                contact["company"] = clean["company"]
            self.contacts[cid] = contact
            return Outcome(201, dict(contact))

    def get_contact(self, contact_id: str) -> Outcome:
        with self.lock:
            contact = self.contacts.get(contact_id)
            if contact is None:
                return v2_error(404, "Contact not found", "NOT_FOUND", details=False)
            return Outcome(200, dict(contact))

    def list_contacts(self, filters: dict[str, str], page_size: int, offset: int) -> Outcome:
        with self.lock:
            found = []
            for contact in self.contacts.values():
                ok = True
                for key, value in filters.items():
                    if key == "email":
                        ok = any(e["email"].lower() == value.lower() for e in contact["email_addresses"])
                    else:
                        ok = (contact.get(key) or "") == value
                    if not ok:
                        break
                if ok:
                    found.append(dict(contact))
        return _page("contacts", found, page_size, offset)

    # ------------------------------------------------------------------ tags
    def list_tags(self, name: str | None, page_size: int, offset: int) -> Outcome:
        with self.lock:
            found = [dict(t) for t in self.tags.values() if name is None or t["name"] == name]
        return _page("tags", found, page_size, offset)

    def get_tag(self, tag_id: str) -> Outcome:
        with self.lock:
            tag = self.tags.get(tag_id)
            if tag is None:
                return v2_error(404, "Tag not found", "NOT_FOUND", details=False)
            return Outcome(200, dict(tag))

    def create_tag(self, body: Any) -> Outcome:
        if not isinstance(body, dict):
            return v2_error(400, "Request body must be a JSON object", "INVALID_ARGUMENT")
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            return v2_error(400, "name is required", "INVALID_ARGUMENT")
        if len(name) > 255:
            return v2_error(400, "name must be at most 255 characters", "INVALID_ARGUMENT")
        description = body.get("description")
        if description is not None and not isinstance(description, str):
            return v2_error(400, "description must be a string", "INVALID_ARGUMENT")
        with self.lock:
            if any(t["name"] == name for t in self.tags.values()):
                return v2_error(409, "Tag with name already exists", "ALREADY_EXISTS", details=False)
            tid = str(self.next_tag_id)
            self.next_tag_id += 1
            tag = {"id": tid, "name": name, "description": description}
            self.tags[tid] = tag
            return Outcome(201, dict(tag))

    def apply_tag(self, tag_id: str, body: Any) -> Outcome:
        if not isinstance(body, dict):
            return v2_error(400, "Request body must be a JSON object", "INVALID_ARGUMENT")
        ids = body.get("contact_ids")
        if (
            not isinstance(ids, list)
            or not ids
            or not all(isinstance(i, (str, int)) and not isinstance(i, bool) for i in ids)
        ):
            return v2_error(400, "contact_ids must be a non-empty list", "INVALID_ARGUMENT")
        with self.lock:
            if tag_id not in self.tags:
                return v2_error(404, "Tag not found", "NOT_FOUND", details=False)
            results: dict[str, str] = {}
            now = iso_time(self.clock.now())
            for raw in ids:
                cid = str(raw)
                contact = self.contacts.get(cid)
                if contact is None:
                    results[cid] = "NOT_FOUND"
                    continue
                if tag_id not in contact["tag_ids"]:
                    contact["tag_ids"] = [*contact["tag_ids"], tag_id]
                    contact["update_time"] = now
                results[cid] = "SUCCESS"
            return Outcome(200, {"results": results})


def _page(key: str, items: list[JSON], page_size: int, offset: int) -> Outcome:
    chunk = items[offset : offset + page_size]
    nxt = offset + page_size
    return Outcome(200, {key: chunk, "next_page_token": str(nxt) if nxt < len(items) else ""})
