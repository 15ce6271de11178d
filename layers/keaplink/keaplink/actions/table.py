"""The data table's item (pynamodb): per-user progress and the tag-name → id cache. Bound to a table name
and endpoint by the composition root."""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UnicodeSetAttribute
from pynamodb.models import Model


class DataItem(Model):
    """``pk = USER#<user_id>``: the user's contact id, the Keap app (tenant) it belongs to, the tags applied
    there. ``pk = USER#<user_id>#EVENT#<event_id>``: an event done once (under ``USER#``: the functions' key
    prefixes stay as they are). ``pk = TAG#<tenant>#<name>``: a tag id in one Keap app."""

    class Meta:
        table_name = "unbound"

    pk = UnicodeAttribute(hash_key=True)
    contact_id = UnicodeAttribute(null=True)
    email = UnicodeAttribute(null=True)
    tenant = UnicodeAttribute(null=True)
    tags = UnicodeSetAttribute(null=True)
    contact_tag_ids = UnicodeSetAttribute(null=True)  # the tags the contact already had when it was found
    opt_status = UnicodeAttribute(null=True)  # Keap's e-mail status when consent could not be applied (unsubscribed)
    tag_id = UnicodeAttribute(null=True)
    # pk = USER#<user_id>#EVENT#<event_id>: a goal or note claimed, then done (actions.once); kept EVENT_MEMORY_S
    event_done = NumberAttribute(null=True)  # when done; absent while claimed
    claimed_at = NumberAttribute(null=True)
    outcome = UnicodeAttribute(null=True)
    ttl = NumberAttribute(null=True)  # DynamoDB's time to live (the table's TimeToLiveSpecification)
    updated_at = NumberAttribute(null=True)
