"""The hold's items (pynamodb), kept in the *connection* table so every function sees them: the actions
function writes them, its scheduled check probes and lifts them, the admin panel shows them, the callback lifts
them on a reconnect. Bound to the table name and endpoint by the composition root.

``pk = HOLD#<connection_id>``: the actions queue is held (why, since, until, the next probe, messages waiting).
``pk = QUOTA#<connection_id>``: Keap's latest daily-quota reading, as the actions met it.
"""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.models import Model


class HoldItem(Model):
    class Meta:
        table_name = "unbound"

    pk = UnicodeAttribute(hash_key=True)
    # HOLD#
    reason = UnicodeAttribute(null=True)
    detail = UnicodeAttribute(null=True)
    since = NumberAttribute(null=True)
    until = NumberAttribute(null=True)
    next_probe_at = NumberAttribute(null=True)
    updated_at = NumberAttribute(null=True)
    probes = NumberAttribute(null=True)
    last_probe_at = NumberAttribute(null=True)
    last_probe_result = UnicodeAttribute(null=True)
    waiting = NumberAttribute(null=True)
    waiting_at = NumberAttribute(null=True)
    lifting_at = NumberAttribute(null=True)  # Keap serves (or the operator resumed): removed once the mapping is on
    mapping_state = UnicodeAttribute(null=True)  # the event source mapping as the minute check last saw it
    mapping_seen_at = NumberAttribute(null=True)
    # QUOTA#
    window = UnicodeAttribute(null=True)
    available = NumberAttribute(null=True)
    quota_limit = NumberAttribute(null=True)
    resets_at = NumberAttribute(null=True)
    read_at = NumberAttribute(null=True)
    paced_rps = NumberAttribute(null=True)
    pace = UnicodeAttribute(null=True)
