"""Configuration: the one reader of the environment in keaplink.

Every variable the template sets (and the few the publisher and CLI use on an application's machine) is
read here, validated, and returned as a frozen value. Nothing reads it at import time: :func:`get_settings`
reads on first use and caches; the composition root's ``reset()`` forgets the cache, so tests point the
code elsewhere by setting variables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from keaplink.errors import ConfigError

DEFAULT_AUTHORIZE_URL = "https://accounts.infusionsoft.com/app/oauth/authorize"
DEFAULT_TOKEN_URL = "https://api.infusionsoft.com/token"
DEFAULT_API_URL = "https://api.infusionsoft.com/crm/rest"
AUTH_MODES = ("oauth", "api_key")

# The deployment's Keap calls per second, shared by every container and caller through one budget in DynamoDB
# (keap/budget.py), 1,410/minute (< 1,500). Evenly spaced slots at 24/s would put 26 calls into one second of Keap's
# count as soon as calls are 42 ms late against each other (jitter between our clock and Keap's count: ~50 ms
# measured by make bench on a busy machine, and a 429); at 23.5/s it takes 64 ms.
DEFAULT_RATE_BUDGET = 23.5
# A per-container ceiling on top of the budget (KEAP_MAX_RPS, kept for existing stacks): none by default.
DEFAULT_MAX_RPS = 25.0
DEFAULT_ACTIONS_CONCURRENCY = 8
DEFAULT_ACTIONS_CONTAINERS = 2  # the event source's MaximumConcurrency (one template parameter sets both)
# The refresh lease outlives the longest function that may hold it (template.yaml: REFRESH_LEASE_S, checked
# against every function's Timeout by tests/unit/test_template.py).
DEFAULT_REFRESH_LEASE_S = 130.0


def _text(name: str, default: str = "") -> str:
    return os.environ.get(name, "").strip() or default


def _url(name: str, default: str) -> str:
    value = _text(name, default).rstrip("/")
    if not value.startswith(("https://", "http://")):
        raise ConfigError(f"{name} must be an http(s) URL, not {value!r}")
    return value


def _number(name: str, default: float, low: float, high: float) -> float:
    raw = _text(name)
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low:g} and {high:g}, not {value:g}")
    return value


# Settings field → the variable it comes from, for "is not set" messages.
REQUIRED = {
    "connection_table": "CONNECTION_TABLE",
    "data_table": "DATA_TABLE",
    "credentials_secret_id": "KEAP_CREDENTIALS_SECRET",
    "admin_secret_id": "ADMIN_SECRET",
    "token_kms_key_id": "TOKEN_KMS_KEY_ID",
    "dlq_url": "DLQ_URL",
    "queue_url": "QUEUE_URL",
}


@dataclass(frozen=True)
class Settings:
    """What a function's environment says. Names of resources are empty when the template did not give the
    function that resource; :meth:`need` turns that into a clear error on the code path that needs it."""

    keap_authorize_url: str
    keap_token_url: str
    keap_api_url: str
    aws_endpoint_url: str | None
    region: str
    connection_table: str
    data_table: str
    credentials_secret_id: str
    admin_secret_id: str
    token_kms_key_id: str
    dlq_url: str
    queue_url: str  # the actions queue (the actions function re-sends held records to it)
    auth_mode: str
    connection_id: str
    button_tag: str
    public_base_url: str | None
    http_timeout_s: float
    keap_max_rps: float  # a per-container ceiling, below the budget
    keap_rate_budget: float  # the whole deployment's Keap calls/s
    actions_concurrency: int
    actions_containers: int  # the event source's MaximumConcurrency: the local share when DynamoDB is out of reach
    actions_function: str | None  # whose SQS event source is held while Keap cannot serve
    refresh_lease_s: float
    aws_timeout_scale: float = 1.0  # local only: the refresh path's AWS timeouts times this (keaplink.aws)

    @property
    def is_api_key_mode(self) -> bool:
        return self.auth_mode == "api_key"

    def need(self, field: str) -> str:
        value = str(getattr(self, field) or "")
        if not value:
            raise ConfigError(f"environment variable {REQUIRED.get(field, field.upper())} is not set")
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    auth_mode = _text("KEAP_AUTH_MODE", "oauth")
    if auth_mode not in AUTH_MODES:
        raise ConfigError(f"KEAP_AUTH_MODE must be 'oauth' or 'api_key', not {auth_mode!r}")
    return Settings(
        keap_authorize_url=_url("KEAP_AUTHORIZE_URL", DEFAULT_AUTHORIZE_URL),
        keap_token_url=_url("KEAP_TOKEN_URL", DEFAULT_TOKEN_URL),
        keap_api_url=_url("KEAP_API_URL", DEFAULT_API_URL),
        aws_endpoint_url=_text("AWS_ENDPOINT_URL") or None,
        region=_text("AWS_REGION", _text("AWS_DEFAULT_REGION", "us-east-1")),
        connection_table=_text("CONNECTION_TABLE"),
        data_table=_text("DATA_TABLE"),
        credentials_secret_id=_text("KEAP_CREDENTIALS_SECRET"),
        admin_secret_id=_text("ADMIN_SECRET"),
        token_kms_key_id=_text("TOKEN_KMS_KEY_ID"),
        dlq_url=_text("DLQ_URL"),
        queue_url=_text("QUEUE_URL"),
        auth_mode=auth_mode,
        connection_id=_text("CONNECTION_ID", "default"),
        button_tag=_text("BUTTON_TAG", "buttonpushed"),
        public_base_url=_text("PUBLIC_BASE_URL").rstrip("/") or None,
        http_timeout_s=_number("KEAP_HTTP_TIMEOUT", 10.0, 0.5, 60.0),
        keap_max_rps=_number("KEAP_MAX_RPS", DEFAULT_MAX_RPS, 0.1, 25.0),
        keap_rate_budget=_number("KEAP_RATE_BUDGET", DEFAULT_RATE_BUDGET, 0.1, 25.0),
        actions_concurrency=int(_number("ACTIONS_CONCURRENCY", DEFAULT_ACTIONS_CONCURRENCY, 1, 64)),
        actions_containers=int(_number("ACTIONS_CONTAINERS", DEFAULT_ACTIONS_CONTAINERS, 1, 1000)),
        # The admin functions are told the actions function's name; the actions function knows its own.
        actions_function=_text("ACTIONS_FUNCTION") or _text("AWS_LAMBDA_FUNCTION_NAME") or None,
        refresh_lease_s=_number("REFRESH_LEASE_S", DEFAULT_REFRESH_LEASE_S, 30, 1000),
        aws_timeout_scale=_number("AWS_TIMEOUT_SCALE", 1.0, 1.0, 30.0),
    )


@dataclass(frozen=True)
class ClientSettings:
    """The publisher's and the CLI's environment, on the application's side (not in a Lambda)."""

    queue_url: str | None
    dlq_url: str | None
    admin_url: str | None
    admin_password: str | None
    state_dir: str
    aws_endpoint_url: str | None
    region: str | None
    connection_table: str | None = None  # `keaplink pause`/`resume` write the hold there
    connection_id: str = "default"


def client_settings() -> ClientSettings:
    """Read on every call: the CLI is short-lived and an application may change these between calls."""
    return ClientSettings(
        queue_url=_text("KEAPLINK_QUEUE_URL") or None,
        dlq_url=_text("KEAPLINK_DLQ_URL") or None,
        admin_url=_text("KEAPLINK_ADMIN_URL") or None,
        admin_password=_text("KEAPLINK_ADMIN_PASSWORD") or None,
        state_dir=_text("KEAPLINK_STATE_DIR", ".keaplink"),
        aws_endpoint_url=_text("AWS_ENDPOINT_URL") or None,
        region=_text("AWS_REGION") or _text("AWS_DEFAULT_REGION") or None,
        connection_table=_text("KEAPLINK_CONNECTION_TABLE") or None,
        connection_id=_text("KEAPLINK_CONNECTION_ID", "default"),
    )
