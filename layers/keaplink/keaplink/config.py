"""Configuration, read from the environment lazily (never at import time).

Every value the template sets is read here and nowhere else, so tests can point the code elsewhere by
setting variables and calling :func:`reset`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

DEFAULT_AUTHORIZE_URL = "https://accounts.infusionsoft.com/app/oauth/authorize"
DEFAULT_TOKEN_URL = "https://api.infusionsoft.com/token"
DEFAULT_API_URL = "https://api.infusionsoft.com/crm/rest"


class ConfigError(RuntimeError):
    """A required setting is missing or invalid."""


def _env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, "").strip()
    if value:
        return value
    if default is None:
        raise ConfigError(f"environment variable {name} is not set")
    return default


@dataclass(frozen=True)
class Settings:
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
    auth_mode: str
    connection_id: str
    button_tag: str
    public_base_url: str | None
    http_timeout_s: float

    @property
    def is_api_key_mode(self) -> bool:
        return self.auth_mode == "api_key"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    auth_mode = _env("KEAP_AUTH_MODE", "oauth")
    if auth_mode not in ("oauth", "api_key"):
        raise ConfigError(f"KEAP_AUTH_MODE must be 'oauth' or 'api_key', not {auth_mode!r}")
    return Settings(
        keap_authorize_url=_env("KEAP_AUTHORIZE_URL", DEFAULT_AUTHORIZE_URL),
        keap_token_url=_env("KEAP_TOKEN_URL", DEFAULT_TOKEN_URL),
        keap_api_url=_env("KEAP_API_URL", DEFAULT_API_URL).rstrip("/"),
        aws_endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
        region=_env("AWS_REGION", _env("AWS_DEFAULT_REGION", "us-east-1")),
        connection_table=_env("CONNECTION_TABLE", ""),
        data_table=_env("DATA_TABLE", ""),
        credentials_secret_id=_env("KEAP_CREDENTIALS_SECRET", ""),
        admin_secret_id=_env("ADMIN_SECRET", ""),
        token_kms_key_id=_env("TOKEN_KMS_KEY_ID", ""),
        auth_mode=auth_mode,
        connection_id=_env("CONNECTION_ID", "default"),
        button_tag=_env("BUTTON_TAG", "buttonpushed"),
        public_base_url=os.environ.get("PUBLIC_BASE_URL") or None,
        http_timeout_s=float(_env("KEAP_HTTP_TIMEOUT", "10")),
    )


def require(value: str, name: str) -> str:
    """Return a setting that a code path needs, with a clear error when the template did not set it."""
    if not value:
        raise ConfigError(f"environment variable {name} is not set")
    return value


def reset() -> None:
    """Forget cached settings and every client built from them (tests, and the local runner)."""
    import sys

    from keaplink import aws  # local import: aws imports this module

    get_settings.cache_clear()
    aws.reset()
    if "keaplink.models" in sys.modules:  # only once pynamodb was loaded
        sys.modules["keaplink.models"].reset()
