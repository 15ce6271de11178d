"""The data table's item (pynamodb): per-user progress and the tag-name → id cache. Bound to a table name
and endpoint by the composition root."""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UnicodeSetAttribute
from pynamodb.models import Model


class DataItem(Model):
    """``pk = USER#<user_id>``: the user's contact id, the Keap app (tenant) it belongs to, the tags applied
    there. ``pk = TAG#<tenant>#<name>``: a tag id in one Keap app."""

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
    updated_at = NumberAttribute(null=True)
