"""The connection table's item (pynamodb). Bound to a table name and endpoint by the composition root.

The connection table holds secrets (encrypted tokens, OAuth states) and only the functions that need
tokens may read it; user data lives in the actions' data table.
"""

from __future__ import annotations

from pynamodb.attributes import BinaryAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.models import Model


class ConnectionItem(Model):
    """``pk = CONN#<id>``: one connection. ``pk = STATE#<nonce>``: a pending OAuth state (TTL).
    ``pk = AUTHFAIL#<source hash>``: failed admin sign-ins of one source (TTL). ``pk = TIMELINE#<id>``: the
    connection's recent events."""

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
    # failed sign-ins (with ttl)
    failures = NumberAttribute(null=True)
    window_until = NumberAttribute(null=True)
    # timeline (with version): a JSON list of the newest events
    events = UnicodeAttribute(null=True)

