"""Secrets from Secrets Manager, cached per container (they change only when an installer rotates them)."""

from __future__ import annotations

import json
from functools import lru_cache

from keaplink import aws
from keaplink.config import get_settings, require
from keaplink.oauth import ClientCredentials


def _secret_string(secret_id: str) -> str:
    return str(aws.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"])


@lru_cache(maxsize=1)
def client_credentials() -> ClientCredentials:
    """The Keap client id/secret (OAuth mode) and/or API key (SAK/PAT mode), from one JSON secret."""
    settings = get_settings()
    raw = json.loads(_secret_string(require(settings.credentials_secret_id, "KEAP_CREDENTIALS_SECRET")))
    return ClientCredentials(
        client_id=str(raw.get("client_id", "")),
        client_secret=str(raw.get("client_secret", "")),
        api_key=str(raw.get("api_key", "")),
    )


@lru_cache(maxsize=1)
def admin_password() -> str:
    """The admin password: the secret's ``password`` field (JSON) or the whole string."""
    raw = _secret_string(require(get_settings().admin_secret_id, "ADMIN_SECRET"))
    try:
        parsed = json.loads(raw)
    except ValueError:
        return raw
    return str(parsed.get("password", "")) if isinstance(parsed, dict) else raw


def reset() -> None:
    client_credentials.cache_clear()
    admin_password.cache_clear()
