"""pynamodb models, bound to table names and endpoint lazily by cached factories.

Two tables keep least privilege simple: the connection table holds secrets (encrypted tokens, OAuth
states) and only the functions that need tokens may read it; the data table holds user→contact ids,
the tag-id cache and per-user progress.
"""

from __future__ import annotations

from functools import lru_cache

from pynamodb.attributes import BinaryAttribute, NumberAttribute, UnicodeAttribute, UnicodeSetAttribute
from pynamodb.models import Model

from keaplink.config import get_settings, require


class ConnectionItem(Model):
    """``pk = CONN#<id>``: one connection. ``pk = STATE#<nonce>``: a pending OAuth state (TTL)."""

    class Meta:
        table_name = "unbound"

    pk = UnicodeAttribute(hash_key=True)
    # connection
    status = UnicodeAttribute(null=True)
    version = NumberAttribute(default=0)
    access_token_enc = BinaryAttribute(null=True, legacy_encoding=False)
    refresh_token_enc = BinaryAttribute(null=True, legacy_encoding=False)
    expires_in = NumberAttribute(null=True)
    expires_at = NumberAttribute(null=True)
    issued_at = NumberAttribute(null=True)
    scope = UnicodeAttribute(null=True)
    token_type = UnicodeAttribute(null=True)
    connected_at = NumberAttribute(null=True)
    refreshed_at = NumberAttribute(null=True)
    refresh_count = NumberAttribute(null=True)
    refresh_failures = NumberAttribute(null=True)
    last_error = UnicodeAttribute(null=True)
    last_error_at = NumberAttribute(null=True)
    lease_owner = UnicodeAttribute(null=True)
    lease_until = NumberAttribute(null=True)
    # OAuth state
    admin = UnicodeAttribute(null=True)
    state_expires_at = NumberAttribute(null=True)
    ttl = NumberAttribute(null=True)


class DataItem(Model):
    """``pk = USER#<user_id>``: the user's contact id and tags applied. ``pk = TAG#<name>``: a tag id."""

    class Meta:
        table_name = "unbound"

    pk = UnicodeAttribute(hash_key=True)
    contact_id = UnicodeAttribute(null=True)
    email = UnicodeAttribute(null=True)
    tags = UnicodeSetAttribute(null=True)
    tag_id = UnicodeAttribute(null=True)
    updated_at = NumberAttribute(null=True)


def _bind(base: type[Model], table_name: str) -> type[Model]:
    settings = get_settings()
    meta = type(
        "Meta",
        (),
        {
            "table_name": table_name,
            "region": settings.region,
            "host": settings.aws_endpoint_url,
            "connect_timeout_seconds": 3,
            "read_timeout_seconds": 5,
            "max_retry_attempts": 5,
        },
    )
    return type(base.__name__, (base,), {"Meta": meta, "__module__": __name__})


@lru_cache(maxsize=1)
def connection_model() -> type[ConnectionItem]:
    settings = get_settings()
    return _bind(ConnectionItem, require(settings.connection_table, "CONNECTION_TABLE"))  # type: ignore[return-value]


@lru_cache(maxsize=1)
def data_model() -> type[DataItem]:
    settings = get_settings()
    return _bind(DataItem, require(settings.data_table, "DATA_TABLE"))  # type: ignore[return-value]


def reset() -> None:
    connection_model.cache_clear()
    data_model.cache_clear()
