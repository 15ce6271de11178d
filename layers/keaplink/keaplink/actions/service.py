"""The effects of one message in Keap and in the per-user record.

Exactly-once effects on an at-least-once queue come from the operations themselves: Keap's upsert by
e-mail cannot duplicate a contact, applying a tag twice is not an error, and the per-user record makes
later presses skip Keap entirely. Retries of single Keap calls happen in the Keap session; what is raised
here is for the batch to sort into "never" (the DLQ) or "later" (back to the queue).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from keaplink.actions.messages import ButtonPressed, SignedUp
from keaplink.errors import KeapRequestRejected, KeapUnavailable, NotReady

if TYPE_CHECKING:
    from keaplink.actions.messages import ContactTag, Message
    from keaplink.actions.tags import TagIds
    from keaplink.actions.users import UserStore
    from keaplink.keap.client import KeapClient


@dataclass
class ActionService:
    users: UserStore
    tags: TagIds
    button_tag: str

    def apply(self, message: Message, keap: KeapClient) -> str:
        """Do what the message asks; returns what was done. Raises typed errors (see the module's doc)."""
        if isinstance(message, SignedUp):
            result = keap.upsert_contact(message.email, message.given_name, message.family_name)
            self.users.save_contact(message.user_id, result.contact_id, message.email)
            return "created" if result.created else "updated"
        tag = self.button_tag if isinstance(message, ButtonPressed) else message.tag
        return self._tag_once(message, tag, keap)

    def _tag_once(self, message: ButtonPressed | ContactTag, tag: str, keap: KeapClient) -> str:
        user = self.users.get(message.user_id)
        if tag in user.tags:
            return "already tagged"
        contact_id = user.contact_id
        if contact_id is None:
            if not message.email:
                # The signup has not been processed yet: come back later, do not dead-letter early.
                raise NotReady(f"user {message.user_id} has no Keap contact yet")
            contact_id = keap.upsert_contact(message.email, None, None).contact_id
            self.users.save_contact(message.user_id, contact_id, message.email)
        tag_id = self.tags.get(tag, keap)
        try:
            result = keap.apply_tag(tag_id, contact_id)
        except KeapRequestRejected as exc:
            if exc.status != 404:
                raise
            self.tags.forget(tag)  # the tag was deleted in Keap: look it up again next time
            raise KeapUnavailable(f"tag {tag!r} no longer exists in Keap", 404) from exc
        if result != "SUCCESS":
            raise KeapRequestRejected(f"Keap answered {result} applying tag {tag!r} to contact {contact_id}", 200)
        self.users.mark_tagged(message.user_id, tag)
        return "tagged"
