"""In-memory model of one Keap developer app and one Keap app (tenant), guarded by one lock.

Holds the configuration, the sandbox clock, authorization codes, access/refresh tokens, API keys,
contacts, tags, the throttle counters, injected faults and the request log. The HTTP layer
(``server.py``) parses requests and calls the methods here; every method that touches shared data
takes ``self.lock``.
"""

from __future__ import annotations

import dataclasses
import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from keap_sandbox import contract, crm, engagement
from keap_sandbox.clock import SandboxClock
from keap_sandbox.crm import CONTACT_FIELDS, FILTER_SPLIT_MODES, MAX_PAGE_SIZE, InvalidInput
from keap_sandbox.throttle import DEFAULT_LIMITS, Throttle, ThrottleResult

JSON = dict[str, Any]

#: Settings whose value is one of a few words (where Keap's contract is silent, the sandbox's answer
#: is a choice; the first word is the default). See ``server.py`` and ``sandbox/README.md``.
CHOICES: dict[str, tuple[str, ...]] = {
    "gateway_error_shape": ("fault", "v2"),
    "upsert_omitted_scalars": ("keep", "clear"),
    "tag_create_existing": ("conflict_409", "bad_request_400", "existing_200", "existing_201", "duplicate_201"),
    "tag_name_match": ("exact", "case_insensitive"),
    "tag_name_too_long": ("truncate", "reject_400"),
    "filter_value_split": FILTER_SPLIT_MODES,
    "last_page_token": ("empty", "absent"),
    "opt_in_refused": ("unchanged_200", "bad_request_400"),
}
#: ``apply_tags_missing_contact`` values that fail the whole call instead of reporting per contact.
APPLY_TAGS_WHOLE_CALL = {"http_404": 404, "http_400": 400}


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
    # Keap's contract in the loop (contract.py)
    validate_contract: bool = False
    contract_strict_properties: bool = True
    # Answers where the contract is silent
    gateway_error_shape: str = "fault"
    upsert_omitted_scalars: str = "keep"
    apply_tags_already_applied: str = "SUCCESS"
    apply_tags_missing_contact: str = "CONTACT_DOES_NOT_EXIST"
    tag_create_existing: str = "conflict_409"
    tag_name_match: str = "exact"
    tag_name_too_long: str = "truncate"
    filter_value_split: str = "semicolon"
    last_page_token: str = "empty"
    default_page_size: int = MAX_PAGE_SIZE
    contact_default_fields: list[str] | None = None
    opt_in_refused: str = "unchanged_200"

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
        "validate_contract",
        "contract_strict_properties",
        "gateway_error_shape",
        "upsert_omitted_scalars",
        "apply_tags_already_applied",
        "apply_tags_missing_contact",
        "tag_create_existing",
        "tag_name_match",
        "tag_name_too_long",
        "filter_value_split",
        "last_page_token",
        "default_page_size",
        "contact_default_fields",
        "opt_in_refused",
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
            elif key == "contact_default_fields":
                if value is not None and (
                    not isinstance(value, list) or not all(isinstance(v, str) and v in CONTACT_FIELDS for v in value)
                ):
                    raise ConfigError("contact_default_fields must be null or a list of contact field names")
                staged[key] = None if value is None else list(value)
            elif key == "default_page_size":
                if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAGE_SIZE:
                    raise ConfigError(f"default_page_size must be an integer from 1 to {MAX_PAGE_SIZE}")
                staged[key] = value
            elif key in CHOICES:
                if value not in CHOICES[key]:
                    raise ConfigError(f"{key} must be one of {', '.join(CHOICES[key])}")
                staged[key] = value
            elif key in ("apply_tags_already_applied", "apply_tags_missing_contact"):
                if not isinstance(value, str) or not value:
                    raise ConfigError(f"{key} must be a non-empty string")
                whole_call = key == "apply_tags_missing_contact" and value in APPLY_TAGS_WHOLE_CALL
                if value.startswith("http_") and not whole_call:
                    raise ConfigError(f"{key}: whole-call answers are {', '.join(APPLY_TAGS_WHOLE_CALL)}")
                staged[key] = value
            elif isinstance(current, bool):
                if not isinstance(value, bool):
                    raise ConfigError(f"{key} must be a boolean")
                if key == "validate_contract" and value and not contract.available():
                    raise ConfigError("validate_contract needs openapi-core (pip install -r requirements-dev.txt)")
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
    """What an operation answers: status, JSON body and extra headers.

    ``off_spec`` marks an answer that contradicts Keap's contract *because a setting asked for it*
    (e.g. ``tag_create_existing: existing_200``); the contract checker does not report those.
    """

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    off_spec: bool = False


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
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

#: Statuses the API gateway in front of Keap answers itself (bad token, quota, upstream trouble).
GATEWAY_STATUSES = (401, 429, 502, 503, 504)
GATEWAY_ERRORCODES = {
    502: "messaging.adaptors.http.flow.BadGateway",
    503: "messaging.adaptors.http.flow.ServiceUnavailable",
    504: "messaging.adaptors.http.flow.GatewayTimeout",
}
GATEWAY_PHRASES = {
    401: "Invalid access token",
    429: "Quota Exceeded",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def v2_error(status: int, message: str, code_name: str | None = None, details: bool = True) -> Outcome:
    """An error in v2's ``Error`` shape: ``code`` (integer), ``message``, ``status``, ``details`` (array)."""
    body: JSON = {"code": status, "message": message, "status": code_name or STATUS_NAMES.get(status, "UNKNOWN")}
    if details:
        body["details"] = []
    return Outcome(status, body)


def oauth_error(status: int, error: str, description: str) -> Outcome:
    return Outcome(status, {"error": error, "error_description": description})


def gateway_error(status: int, shape: str, identifier: str = "") -> Outcome:
    """A gateway answer (401/429/502/503/504) in the configured ``gateway_error_shape``.

    ``fault``: the gateway's own ``{"fault": {...}}`` bodies as seen in the wild (not in the spec);
    ``v2``: v2's ``Error`` shape (for 429 the message and status of the 429 seen in the wild, with
    ``code`` an integer and ``details`` an array as the ``Error`` schema wants).
    """
    if shape == "v2":
        if status == 429:
            return v2_error(429, "Quota Exceeded", "Request Throttled")
        return v2_error(status, GATEWAY_PHRASES.get(status, "Error"))
    if status == 401:
        body: JSON = {
            "fault": {
                "faultstring": "Invalid access token",
                "detail": {"errorcode": "keymanagement.service.invalid_access_token"},
            }
        }
    elif status == 429:
        body = {
            "fault": {
                "faultstring": "Rate limit quota violation. Quota limit  exceeded. Identifier : " + identifier,
                "detail": {"errorcode": "policies.ratelimit.QuotaViolation"},
            }
        }
    else:
        body = {
            "fault": {
                "faultstring": GATEWAY_PHRASES.get(status, "Error"),
                "detail": {"errorcode": GATEWAY_ERRORCODES.get(status, "messaging.adaptors.http.flow.Error")},
            }
        }
    return Outcome(status, body)


def is_gateway_fault(status: int, body: Any) -> bool:
    """A gateway status answered in the gateway's ``{"fault": ...}`` shape."""
    return status in GATEWAY_STATUSES and isinstance(body, dict) and isinstance(body.get("fault"), dict)


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
        self.violations: list[JSON] = []
        self.email_status: dict[str, JSON] = {}  # casefolded address -> {email, status, create_time}
        self.custom_fields: dict[str, JSON] = {}  # id -> CustomFieldMetaData
        self.goals: dict[tuple[str, str], JSON] = {}  # (integration, call_name) -> published goal
        self.goals_achieved: list[JSON] = []
        self.notes: list[JSON] = []
        self.throttle.reset()

    def reset(self) -> None:
        """Forget all data, tokens, keys, faults, the request log and recorded contract violations;
        rewind the clock."""
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
                "contract": {"validating": self.config.validate_contract, "violations": len(self.violations)},
                "email_status": {k: dict(v) for k, v in self.email_status.items()},
                "custom_fields": [dict(f) for f in self.custom_fields.values()],
                "goals": [dict(g) for g in self.goals.values()],
                "goals_achieved": [dict(g) for g in self.goals_achieved],
                "notes": [dict(n) for n in self.notes],
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

    # ------------------------------------------------------------------ contract violations
    def record_violations(self, found: list[JSON]) -> None:
        with self.lock:
            self.violations.extend(found)

    def list_violations(self) -> list[JSON]:
        with self.lock:
            return [dict(v) for v in self.violations]

    def clear_violations(self) -> None:
        with self.lock:
            self.violations.clear()

    # ------------------------------------------------------------------ quotas
    def spend_quota(self, limit: str, used: int | None = None, key: str | None = None) -> JSON:
        """Set a minute or day counter (``oauth_per_day``, ``key_per_minute``, ``tenant_per_day``, ...) of
        the current window to ``used`` (default: the whole limit, i.e. spent), so that requests over it
        answer 429 until the window resets (days at 00:00 UTC, on the sandbox clock)."""
        scope, _, window = limit.partition("_per_")
        if limit not in DEFAULT_LIMITS or window not in ("minute", "day"):
            raise ConfigError("limit must be one of oauth|key|tenant _per_ minute|day")
        with self.lock:
            if scope == "key":
                if key is None or key not in self.keys:
                    raise ConfigError("key_* limits need an existing key")
                identity = key
            else:
                identity = self.config.client_id if scope == "oauth" else self.config.tenant
            value = self.config.limits[limit] if used is None else used
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError("used must be a non-negative integer")
            resets_ms = self.throttle.preset(f"{scope}_{window}", identity, self.clock.now(), value)
            return {"limit": limit, "identity": identity, "used": value, "resets_at_ms": resets_ms}

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

    def mint_pair(self) -> JSON:
        """An access/refresh token pair as Keap's developer portal hands one out to an account owner: for the
        configured developer app and Keap app, without a consent page or code, and with no expiry shown."""
        with self.lock:
            minted = self._mint(self.config.client_id, self.config.tenant)
        return {"access_token": minted["access_token"], "refresh_token": minted["refresh_token"]}

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

    @staticmethod
    def user_info(caller: Caller) -> Outcome:
        """``GET /v2/oauth/connect/userinfo`` (getUserInfo): the user the credential acts as, with the
        fields of the spec's GetUserInfoResponse."""
        email = f"admin@{caller.tenant}"
        return Outcome(200, {"sub": "1", "id": "1", "keap_id": email, "email": email, "given_name": "Sandbox",
                             "family_name": "Admin", "is_admin": True, "tenant_id": caller.tenant.split(".")[0]})

    def check_throttle(self, caller: Caller, arrived: float | None = None) -> ThrottleResult:
        """``arrived``: the request's arrival on the monotonic clock (now if not given)."""
        with self.lock:
            return self.throttle.check(
                auth_kind=caller.kind,
                identity=caller.identity,
                tenant=caller.tenant,
                now=self.clock.now(),
                mono=time.monotonic() if arrived is None else arrived,
                limits=self.config.limits,
                enforce=self.config.throttle,
            )

    # ------------------------------------------------------------------ contacts (REST)
    def _now_iso(self) -> str:
        return iso_time(self.clock.now())

    def _fields(self, query: Query) -> list[str] | None:
        fields = crm.parse_fields(query.get("fields", []))
        return self.config.contact_default_fields if fields is None else fields

    def _new_contact(self, clean: JSON, tag_ids: list[str] | None = None, contact_id: str | None = None) -> JSON:
        if contact_id is None:
            contact_id = str(self.next_contact_id)
        self.next_contact_id = max(self.next_contact_id, int(contact_id) + 1)
        now = self._now_iso()
        contact: JSON = {"id": contact_id}
        crm.apply_changes(contact, clean)
        contact.update({"tag_ids": list(tag_ids or []), "create_time": now, "update_time": now})
        self.contacts[contact_id] = contact
        return contact

    def _find_duplicate(self, clean: JSON, option: str) -> JSON | None:
        for contact in crm.sort_items(list(self.contacts.values()), None, crm.CONTACT_ORDER_FIELDS):
            if crm.matches_duplicate(contact, clean, option):
                return contact
        return None

    def upsert_contact(self, body: Any, query: Query) -> Outcome:
        """``createContact``: 201 created, or with ``duplicate_option`` 200 when an existing contact was
        updated: list properties sent replace the stored lists, scalars not sent are kept (setting
        ``upsert_omitted_scalars: clear`` removes them)."""
        option = _first(query, "duplicate_option")
        if option is not None and option not in crm.DUPLICATE_OPTIONS:
            raise InvalidInput(f"Invalid duplicate_option: {option}")
        with self.lock:
            fields = self._fields(query)
            now = self._now_iso()
            clean = crm.clean_contact_request(body, now)
            existing = self._find_duplicate(clean, option) if option else None
            if existing is not None:
                crm.apply_changes(existing, clean)
                if self.config.upsert_omitted_scalars == "clear":
                    for key in crm.CONTACT_SCALARS:
                        if key not in clean:
                            existing.pop(key, None)
                existing["update_time"] = now
                return Outcome(200, crm.project(existing, fields))
            if not crm.has_reachable_data({k: v for k, v in clean.items() if v is not None}):
                raise InvalidInput("A contact needs at least one email address, phone number or address")
            self._check_custom_fields(clean)
            created = self._new_contact(clean)
            self._statuses_on_create(created)
            return Outcome(201, crm.project(created, fields))

    def update_contact(self, contact_id: str, body: Any, query: Query) -> Outcome:
        """``updateContact`` (PATCH): without ``update_mask`` every property sent is updated (lists
        replace); with it only the masked properties are, and a masked property the body lacks is
        cleared. Masked read-only properties (``id``, ``tag_ids``, ...) are ignored."""
        with self.lock:
            fields = self._fields(query)
            mask = crm.parse_update_mask(query.get("update_mask", []))
            contact = self.contacts.get(contact_id)
            if contact is None:
                return v2_error(404, "Contact not found", "NOT_FOUND")
            now = self._now_iso()
            clean = crm.clean_contact_request(body, now)
            if mask is not None:
                clean = {k: clean.get(k) for k in mask if k in WRITABLE_CONTACT_FIELDS}
            self._check_custom_fields(clean)
            crm.apply_changes(contact, clean)
            contact["update_time"] = now
            return Outcome(200, crm.project(contact, fields))

    def get_contact(self, contact_id: str, query: Query) -> Outcome:
        with self.lock:
            fields = self._fields(query)
            contact = self.contacts.get(contact_id)
            if contact is None:
                return v2_error(404, "Contact not found", "NOT_FOUND")
            return Outcome(200, crm.project(contact, fields))

    def list_contacts(self, query: Query) -> Outcome:
        raw_filter, order_by = _first(query, "filter"), _first(query, "order_by")
        terms = crm.parse_filter(
            raw_filter,
            crm.CONTACT_FILTERS_DOCUMENTED,
            crm.CONTACT_FILTERS_MODELLED,
            self.config.filter_value_split,
            crm.contact_operators,
        )
        size = crm.page_size(_first(query, "page_size"), self.config.default_page_size)
        scope = f"contacts|{raw_filter}|{order_by}"
        token = _first(query, "page_token")
        offset = crm.decode_page_token(token, scope) if token else 0
        with self.lock:
            fields = self._fields(query)
            found = [c for c in self.contacts.values() if crm.contact_matches(c, terms)]
            items = [crm.project(c, fields) for c in crm.sort_items(found, order_by, crm.CONTACT_ORDER_FIELDS)]
            return Outcome(200, crm.page("contacts", items, size, offset, scope, self.config.last_page_token))

    def delete_contact(self, contact_id: str) -> Outcome:
        with self.lock:
            if self.contacts.pop(contact_id, None) is None:
                return v2_error(404, "Contact not found", "NOT_FOUND")
            return Outcome(204, None)

    def _merge(self, primary_id: str, duplicate_id: str) -> JSON | Outcome:
        if primary_id == duplicate_id:
            return v2_error(400, "A contact cannot be merged into itself", "INVALID_ARGUMENT")
        primary, duplicate = self.contacts.get(primary_id), self.contacts.get(duplicate_id)
        if primary is None or duplicate is None:
            return v2_error(404, f"Contact not found: {primary_id if primary is None else duplicate_id}", "NOT_FOUND")
        crm.merge_into(primary, duplicate)
        del self.contacts[duplicate_id]
        primary["update_time"] = self._now_iso()
        return primary

    def merge_contacts(self, body: Any, query: Query) -> Outcome:
        """``mergeContacts``: ``duplicate_contact_id`` is merged into ``contact_id``, which survives;
        the duplicate's id stops existing. Answers the merged contact."""
        if not isinstance(body, dict):
            raise InvalidInput("Request body must be a JSON object")
        ids = [_id_value(body.get(k), k) for k in ("contact_id", "duplicate_contact_id")]
        with self.lock:
            fields = self._fields(query)
            merged = self._merge(ids[0], ids[1])
            if isinstance(merged, Outcome):
                return merged
            return Outcome(200, crm.project(merged, fields))

    # ------------------------------------------------------------------ tags (REST)
    def _tag_by_name(self, name: str) -> JSON | None:
        ci = self.config.tag_name_match == "case_insensitive"
        for tag in crm.sort_items(list(self.tags.values()), None, crm.TAG_ORDER_FIELDS):
            if crm.text_match(tag["name"], name, wildcard=False, case_insensitive=ci):
                return tag
        return None

    def _new_tag(self, clean: JSON) -> JSON:
        tag_id = str(self.next_tag_id)
        self.next_tag_id += 1
        now = self._now_iso()
        tag: JSON = {"id": tag_id, **clean, "create_time": now, "update_time": now}
        self.tags[tag_id] = tag
        return tag

    def list_tags(self, query: Query) -> Outcome:
        raw_filter, order_by = _first(query, "filter"), _first(query, "order_by")
        terms = crm.parse_filter(
            raw_filter, crm.TAG_FILTERS, crm.TAG_FILTERS, self.config.filter_value_split, crm.tag_operators
        )
        size = crm.page_size(_first(query, "page_size"), self.config.default_page_size)
        scope = f"tags|{raw_filter}|{order_by}"
        token = _first(query, "page_token")
        offset = crm.decode_page_token(token, scope) if token else 0
        with self.lock:
            ci = self.config.tag_name_match == "case_insensitive"
            found = [dict(t) for t in self.tags.values() if crm.tag_matches(t, terms, ci)]
            items = crm.sort_items(found, order_by, crm.TAG_ORDER_FIELDS)
            return Outcome(200, crm.page("tags", items, size, offset, scope, self.config.last_page_token))

    def get_tag(self, tag_id: str) -> Outcome:
        with self.lock:
            tag = self.tags.get(tag_id)
            if tag is None:
                return v2_error(404, "Tag not found", "NOT_FOUND")
            return Outcome(200, dict(tag))

    def create_tag(self, body: Any) -> Outcome:
        """``createTag``: 201 with the new tag. A name that exists already answers as
        ``tag_create_existing`` says (409 by default)."""
        clean = crm.clean_tag_request(body, self.config.tag_name_too_long)
        with self.lock:
            existing = self._tag_by_name(clean["name"])
            if existing is not None:
                mode = self.config.tag_create_existing
                if mode == "conflict_409":
                    return v2_error(409, "Tag with name already exists", "ALREADY_EXISTS")
                if mode == "bad_request_400":
                    return v2_error(400, "Tag with name already exists", "INVALID_ARGUMENT")
                if mode == "existing_200":  # createTag documents 201 only
                    return Outcome(200, dict(existing), off_spec=True)
                if mode == "existing_201":
                    return Outcome(201, dict(existing))
            return Outcome(201, dict(self._new_tag(clean)))

    def delete_tag(self, tag_id: str) -> Outcome:
        with self.lock:
            if not self._drop_tag(tag_id):
                return v2_error(404, "Tag not found", "NOT_FOUND")
            return Outcome(204, None)

    def _drop_tag(self, tag_id: str) -> bool:
        if self.tags.pop(tag_id, None) is None:
            return False
        for contact in self.contacts.values():
            if tag_id in contact["tag_ids"]:
                contact["tag_ids"] = [t for t in contact["tag_ids"] if t != tag_id]
        return True

    @staticmethod
    def _contact_ids(body: Any) -> list[str]:
        """``ApplyRemoveTagRequest.contact_ids`` (required; strings, unique). Numbers are tolerated and
        repeated ids collapsed (the validator reports both); an empty list is refused."""
        if not isinstance(body, dict):
            raise InvalidInput("Request body must be a JSON object")
        ids = body.get("contact_ids")
        if not isinstance(ids, list) or not ids:
            raise InvalidInput("contact_ids must be a non-empty list")
        return list(dict.fromkeys(_id_value(i, "contact_ids[]") for i in ids))

    def apply_tag(self, tag_id: str, body: Any) -> Outcome:
        """``applyTags``: 200 ``{"results": {contact_id: string}}``: ``SUCCESS`` when applied now;
        ``apply_tags_already_applied`` for a contact that has the tag already;
        ``apply_tags_missing_contact`` for an unknown contact id (``http_404``/``http_400``: the whole
        call fails and nothing is applied). An unknown tag is a 404."""
        ids = self._contact_ids(body)
        with self.lock:
            if tag_id not in self.tags:
                return v2_error(404, "Tag not found", "NOT_FOUND")
            missing = [cid for cid in ids if cid not in self.contacts]
            whole = APPLY_TAGS_WHOLE_CALL.get(self.config.apply_tags_missing_contact)
            if missing and whole is not None:
                return v2_error(whole, f"Contact not found: {', '.join(missing)}")
            results: dict[str, str] = {}
            now = self._now_iso()
            for cid in ids:
                contact = self.contacts.get(cid)
                if contact is None:
                    results[cid] = self.config.apply_tags_missing_contact
                elif tag_id in contact["tag_ids"]:
                    results[cid] = self.config.apply_tags_already_applied
                else:
                    contact["tag_ids"] = [*contact["tag_ids"], tag_id]
                    contact["update_time"] = now
                    results[cid] = "SUCCESS"
            return Outcome(200, {"results": results})

    def remove_tag(self, tag_id: str, body: Any) -> Outcome:
        """``removeTags``: 204; contacts without the tag, and unknown ids, are passed over."""
        ids = self._contact_ids(body)
        with self.lock:
            if tag_id not in self.tags:
                return v2_error(404, "Tag not found", "NOT_FOUND")
            for cid in ids:
                contact = self.contacts.get(cid)
                if contact is not None and tag_id in contact["tag_ids"]:
                    contact["tag_ids"] = [t for t in contact["tag_ids"] if t != tag_id]
                    contact["update_time"] = self._now_iso()
            return Outcome(204, None)

    # ------------------------------------------------------------------ e-mail status, goals, notes, model (REST)
    def _statuses_on_create(self, contact: JSON) -> None:
        now = self._now_iso()
        for item in contact.get("email_addresses") or []:
            key = str(item["email"]).casefold()
            known = self.email_status.get(key)
            status = engagement.status_after_create(known["status"] if known else None, item.get("opt_in_reason"))
            self.email_status[key] = {"email": item["email"], "status": status,
                                      "create_time": known["create_time"] if known else now}

    def _check_custom_fields(self, clean: JSON) -> None:
        unknown = [f["id"] for f in clean.get("custom_fields") or [] if f["id"] not in self.custom_fields]
        if unknown:
            raise InvalidInput(f"Invalid custom field id: {', '.join(unknown)}")

    @staticmethod
    def _status_answer(record: JSON) -> JSON:
        return {"email": record["email"], "opted_in": record["status"] in engagement.MARKETABLE,
                "status": record["status"], "create_time": record["create_time"]}

    def get_email_status(self, email: str) -> Outcome:
        """``getEmailAddressStatus``."""
        with self.lock:
            record = self.email_status.get(email.casefold())
            if record is None:
                return v2_error(404, "Email address not found", "NOT_FOUND")
            return Outcome(200, self._status_answer(record))

    def update_email_status(self, email: str, body: Any) -> Outcome:
        """``updateEmailAddressOptStatus``: see :mod:`keap_sandbox.engagement`."""
        opted_in, _reason = engagement.clean_opt_status_request(body)
        with self.lock:
            record = self.email_status.get(email.casefold())
            if record is None:
                return v2_error(404, "Email address not found", "NOT_FOUND")
            status = engagement.status_after_update(record["status"], opted_in)
            if opted_in and status not in engagement.MARKETABLE and self.config.opt_in_refused == "bad_request_400":
                return v2_error(400, f"Email address status {status} cannot be changed")
            record["status"] = status
            return Outcome(200, self._status_answer(record))

    def achieve_goal(self, body: Any) -> Outcome:
        """``achieveGoal``: 200 with one result per goal; ``success: false`` when no published goal listens."""
        contact_id, goal = engagement.clean_goal_request(body)
        with self.lock:
            if contact_id not in self.contacts:
                return v2_error(404, "Contact not found", "NOT_FOUND")
            found = [g for g in self.goals.values()
                     if goal in ((g["integration"], g["call_name"]), (g["automation_id"], g["goal_id"]))]
            if not found:
                where = ".".join(str(part) for part in goal)
                return Outcome(200, {"results": [{"success": False,
                                                  "message": f"No goals were configured for {where}"}]})
            results = []
            for g in found:
                self.goals_achieved.append({"contact_id": contact_id, "integration": g["integration"],
                                            "call_name": g["call_name"], "time": self._now_iso()})
                results.append({"success": True, "message": "Goal achieved", "automation_id": g["automation_id"],
                                "goal_id": g["goal_id"], "flow_start_results": [], "flow_stop_results": []})
            return Outcome(200, {"results": results})

    def create_note(self, contact_id: str, body: Any) -> Outcome:
        """``createNote``: 201 with the ``Note``."""
        note = engagement.clean_note_request(body)
        with self.lock:
            if contact_id not in self.contacts:
                return v2_error(404, "Contact not found", "NOT_FOUND")
            now = self._now_iso()
            stored = {"id": str(len(self.notes) + 1), "contact_id": contact_id, **note,
                      "created_by_user_id": body["user_id"], "create_time": now, "update_time": now}
            self.notes.append(stored)
            return Outcome(201, dict(stored))

    def contact_model(self) -> Outcome:
        """``retrieveContactModel``: the contact custom fields (``ObjectModel``)."""
        with self.lock:
            return Outcome(200, {"custom_fields": [dict(f) for f in self.custom_fields.values()],
                                 "optional_properties": ["custom_fields"]})

    def control_email_status(self, data: JSON) -> JSON:
        """Set an address's status as the person or the customer would (an unsubscribe link: LIST_UNSUBSCRIBE)."""
        email, status = data.get("email"), data.get("status")
        if not isinstance(email, str) or not email or status not in engagement.STATUSES:
            raise ConfigError(f"give email and status (one of {', '.join(engagement.STATUSES)})")
        with self.lock:
            known = self.email_status.get(email.casefold())
            record = {"email": email, "status": status, "create_time": known["create_time"] if known else
                      self._now_iso()}
            self.email_status[email.casefold()] = record
            return dict(record)

    def control_publish_goal(self, data: JSON) -> JSON:
        """Publish a campaign that listens for an API goal (integration + call name)."""
        integration, call_name = data.get("integration"), data.get("call_name")
        if not (isinstance(integration, str) and integration and isinstance(call_name, str) and call_name):
            raise ConfigError("give integration and call_name")
        with self.lock:
            n = len(self.goals) + 1
            goal = {"integration": integration, "call_name": call_name, "automation_id": 100 + n, "goal_id": n}
            self.goals[(integration, call_name)] = goal
            return dict(goal)

    def control_unpublish_goal(self, data: JSON) -> None:
        with self.lock:
            self.goals.pop((str(data.get("integration")), str(data.get("call_name"))), None)

    def control_custom_field(self, data: JSON) -> JSON:
        """Create a contact custom field as the customer would in Keap's settings."""
        with self.lock:
            field_id = str(len(self.custom_fields) + 1)
            try:
                taken = {f["field_name"] for f in self.custom_fields.values()}
                meta = engagement.new_custom_field(data, field_id, taken)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            self.custom_fields[field_id] = meta
            return dict(meta)

    # ------------------------------------------------------------------ the customer's CRM (control API)
    def _control_contact_data(self, data: JSON) -> tuple[JSON, list[str] | None]:
        """Contact properties plus ``tag_ids`` (existing tags) and ``tag_names`` (created if missing)."""
        data = dict(data)
        tag_ids, tag_names = data.pop("tag_ids", None), data.pop("tag_names", None)
        unknown = set(data) - set(WRITABLE_CONTACT_FIELDS)
        if unknown:
            raise ConfigError(f"not contact properties: {sorted(unknown)}")
        try:
            clean = crm.clean_contact_request(data, self._now_iso())
        except InvalidInput as exc:
            raise ConfigError(str(exc)) from None
        if tag_ids is None and tag_names is None:
            return clean, None
        resolved: list[str] = []
        for tid in tag_ids or []:
            if str(tid) not in self.tags:
                raise NotFound(f"no tag {tid}")
            resolved.append(str(tid))
        for name in tag_names or []:
            if not isinstance(name, str) or not name:
                raise ConfigError("tag_names must be non-empty strings")
            tag = self._tag_by_name(name) or self._new_tag({"name": name})
            resolved.append(tag["id"])
        return clean, list(dict.fromkeys(resolved))

    def control_create_contact(self, data: JSON) -> JSON:
        """Create a contact with any data (several e-mails, phones, tags), bypassing REST."""
        with self.lock:
            contact_id = data.get("id")
            if contact_id is not None and (not str(contact_id).isdigit() or str(contact_id) in self.contacts):
                raise ConfigError("id must be a new numeric id")
            clean, tag_ids = self._control_contact_data({k: v for k, v in data.items() if k != "id"})
            created = self._new_contact(clean, tag_ids, None if contact_id is None else str(contact_id))
            self._statuses_on_create(created)
            return dict(created)

    def control_update_contact(self, contact_id: str, data: JSON) -> JSON:
        """Change a contact as the customer would in Keap: properties given replace, ``null`` removes,
        ``tag_ids``/``tag_names`` replace the contact's tags."""
        with self.lock:
            contact = self.contacts.get(contact_id)
            if contact is None:
                raise NotFound(f"no contact {contact_id}")
            clean, tag_ids = self._control_contact_data(data)
            crm.apply_changes(contact, clean)
            if tag_ids is not None:
                contact["tag_ids"] = tag_ids
            contact["update_time"] = self._now_iso()
            return dict(contact)

    def control_delete_contact(self, contact_id: str) -> None:
        with self.lock:
            if self.contacts.pop(contact_id, None) is None:
                raise NotFound(f"no contact {contact_id}")

    def control_merge_contacts(self, data: JSON) -> JSON:
        """Merge as the customer would in Keap: ``duplicate_contact_id`` into ``contact_id``."""
        with self.lock:
            try:
                ids = [_id_value(data.get(k), k) for k in ("contact_id", "duplicate_contact_id")]
            except InvalidInput as exc:
                raise ConfigError(str(exc)) from None
            merged = self._merge(ids[0], ids[1])
            if isinstance(merged, Outcome):
                raise (NotFound if merged.status == 404 else ConfigError)(merged.body["message"])
            return dict(merged)

    def control_create_tags(self, data: JSON) -> JSON:
        """``{"name", "description"?, "category"?}``, ``{"names": [...]}`` or ``{"prefix", "count"}``
        (many tags at once); ``allow_duplicate: true`` permits a name that exists."""
        allow_duplicate = bool(data.get("allow_duplicate", False))
        if "count" in data:
            count, prefix = data["count"], data.get("prefix", "tag-")
            if isinstance(count, bool) or not isinstance(count, int) or not 0 < count <= 100_000:
                raise ConfigError("count must be an integer from 1 to 100000")
            width = len(str(count))
            specs: list[JSON] = [{"name": f"{prefix}{i:0{width}d}"} for i in range(1, count + 1)]
        elif "names" in data:
            if not isinstance(data["names"], list):
                raise ConfigError("names must be a list")
            specs = [{"name": n} for n in data["names"]]
        else:
            specs = [{k: v for k, v in data.items() if k in ("name", "description", "category")}]
        with self.lock:
            created: list[JSON] = []
            for spec in specs:
                try:
                    clean = crm.clean_tag_request(spec, "reject_400")
                except InvalidInput as exc:
                    raise ConfigError(str(exc)) from None
                if not allow_duplicate and self._tag_by_name(clean["name"]) is not None:
                    raise ConfigError(f"a tag named {clean['name']!r} exists (allow_duplicate: true permits it)")
                created.append(dict(self._new_tag(clean)))
            return {"tags": created}

    def control_update_tag(self, tag_id: str, data: JSON) -> JSON:
        """Rename a tag or change its description, as the customer would in Keap."""
        with self.lock:
            tag = self.tags.get(tag_id)
            if tag is None:
                raise NotFound(f"no tag {tag_id}")
            try:
                clean = crm.clean_tag_request({"name": tag["name"], **data}, "reject_400")
            except InvalidInput as exc:
                raise ConfigError(str(exc)) from None
            other = self._tag_by_name(clean["name"])
            if other is not None and other is not tag and not data.get("allow_duplicate"):
                raise ConfigError(f"a tag named {clean['name']!r} exists (allow_duplicate: true permits it)")
            tag.update(clean)
            if data.get("description", "") is None:
                tag.pop("description", None)
            tag["update_time"] = self._now_iso()
            return dict(tag)

    def control_delete_tag(self, tag_id: str) -> None:
        with self.lock:
            if not self._drop_tag(tag_id):
                raise NotFound(f"no tag {tag_id}")


Query = dict[str, list[str]]

WRITABLE_CONTACT_FIELDS = (*crm.CONTACT_SCALARS, *crm.CONTACT_LISTS, *crm.CONTACT_OBJECTS)


class NotFound(LookupError):
    """A control-API request named a contact or tag that does not exist (404)."""


def _first(query: Query, name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _id_value(value: Any, where: str) -> str:
    """An id given as a string (as the spec types ids) or, tolerated, as a number."""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
        raise InvalidInput(f"{where} must be an id")
    return str(value)
