"""The effects of one message in Keap and in the per-user record.

Keap is the customer's CRM, and it changes under keaplink: contacts exist before the app's signup, get
merged or deleted; tags get deleted; the admin may reconnect to another Keap app. So:
- a signup never writes over an existing contact: it is looked up by e-mail first, created only when
  absent, and only the names the message carries are changed (Keap replaces list fields on update);
- ids are kept per Keap app, and a stale id heals: a contact gone is found again by the user's e-mail, a
  tag gone is found or created again;
- ``applyTags``' result is read by meaning (``tag_results``), and anything unclear is verified on the
  contact. Only a refusal verified as such is raised as ``KeapRequestRejected`` (the batch dead-letters it
  with Keap's words).

Exactly-once effects on an at-least-once queue come from the operations themselves; retries of single Keap
calls happen in the Keap session; what is raised here the batch sorts into "never" or "later".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from keaplink.actions.messages import ButtonPressed, SignedUp
from keaplink.actions.tag_results import TagResult, classify
from keaplink.errors import KeapRequestRejected, KeapUnavailable, NotReady

if TYPE_CHECKING:
    from keaplink.actions.messages import ContactTag, Message
    from keaplink.actions.tags import TagIds
    from keaplink.actions.users import UserRecord, UserStore
    from keaplink.keap.client import Contact, KeapClient

HEALING_ROUNDS = 3  # stale ids found and replaced within one message, at most


@dataclass
class ActionService:
    users: UserStore
    tags: TagIds
    button_tag: str

    def apply(self, message: Message, keap: KeapClient) -> str:
        """Do what the message asks; returns what was done. Raises typed errors (see the module's doc)."""
        if isinstance(message, SignedUp):
            return self._sign_up(message, keap)
        tag = self.button_tag if isinstance(message, ButtonPressed) else message.tag
        return self._tag_once(message, tag, keap)

    # --- contacts -------------------------------------------------------------------------------------
    def _sign_up(self, message: SignedUp, keap: KeapClient) -> str:
        contact, outcome = self._resolve(message.email, keap, message.given_name, message.family_name)
        self._remember(self.users.get(message.user_id), contact, message.email, keap)
        return outcome

    @staticmethod
    def _resolve(email: str, keap: KeapClient, given_name: str | None = None,
                 family_name: str | None = None) -> tuple[Contact, str]:
        """The contact holding ``email``, created when there is none; an existing one keeps all it has."""
        found = keap.find_contact_by_email(email)
        if found is None:
            contact, created = keap.create_contact(email, given_name, family_name)
            return contact, "created" if created else "found"  # "found": another signup created it meanwhile
        if (given_name and given_name != found.given_name) or (family_name and family_name != found.family_name):
            keap.update_names(found.id, given_name, family_name)
            return found, "updated"
        return found, "found"

    def _remember(self, stored: UserRecord, contact: Contact, email: str, keap: KeapClient) -> None:
        self.users.save_contact(stored.user_id, contact.id, email, keap.tenant, contact.tag_ids,
                                new_tenant=stored.tenant != keap.tenant)

    # --- tags -----------------------------------------------------------------------------------------
    def _tag_once(self, message: ButtonPressed | ContactTag, tag: str, keap: KeapClient) -> str:
        stored = self.users.get(message.user_id)
        user = stored.in_tenant(keap.tenant)  # ids and tags of another Keap app do not count here
        if tag in user.tags:
            return "already tagged"
        email = message.email or user.email
        contact_id, contact_tags = user.contact_id, user.contact_tag_ids
        if contact_id is None:
            if not email:
                # The signup has not been processed yet: come back later, do not dead-letter early.
                raise NotReady(f"user {message.user_id} has no Keap contact yet")
            contact, _ = self._resolve(email, keap)
            self._remember(stored, contact, email, keap)
            contact_id, contact_tags = contact.id, contact.tag_ids
        tag_id = self.tags.get(tag, keap)
        if tag_id in contact_tags:  # the contact had the tag when keaplink found it: nothing to send
            self.users.mark_tagged(message.user_id, tag)
            return "already tagged in Keap"
        return self._apply_healing(message.user_id, email, tag, tag_id, contact_id, keap)

    def _apply_healing(self, user_id: str, email: str | None, tag: str, tag_id: str, contact_id: str,
                       keap: KeapClient) -> str:
        for _ in range(HEALING_ROUNDS):
            refusal: KeapRequestRejected | None = None
            try:
                result: str | None = keap.apply_tag(tag_id, [contact_id]).get(contact_id)
            except KeapRequestRejected as exc:
                if exc.status not in (400, 404):
                    raise
                if exc.status == 404 and not keap.tag_exists(tag_id):  # the tag was deleted: find or create it
                    self.tags.forget(tag, tag_id, keap)
                    tag_id = self.tags.get(tag, keap)
                    continue
                # The whole call refused, the tag being there: a contact id Keap does not know (some APIs
                # answer that with 404 or 400) or a real refusal. The contact decides.
                result, refusal = None, exc
            kind = classify(result)
            if kind is TagResult.UNKNOWN:
                kind = self._verify(result, tag, tag_id, contact_id, keap, refusal)
            if kind is not TagResult.CONTACT_GONE:
                self.users.mark_tagged(user_id, tag)
                return "tagged" if kind is TagResult.APPLIED else "already tagged in Keap"
            if not email:
                raise KeapRequestRejected(f"contact {contact_id} no longer exists in Keap and user {user_id} "
                                          "has no e-mail to find it again", 404)
            contact, _ = self._resolve(email, keap)  # merged into another contact, or deleted: find it again
            self.users.save_contact(user_id, contact.id, email, keap.tenant, contact.tag_ids)
            if contact.id == contact_id:
                raise KeapUnavailable(f"Keap says contact {contact_id} is gone but finds it by e-mail", 0)
            contact_id = contact.id
            if tag_id in contact.tag_ids:
                self.users.mark_tagged(user_id, tag)
                return "already tagged in Keap"
        raise KeapUnavailable(f"tag {tag!r} not applied: ids kept going stale ({HEALING_ROUNDS} rounds)", 0)

    @staticmethod
    def _verify(result: str | None, tag: str, tag_id: str, contact_id: str, keap: KeapClient,
                refusal: KeapRequestRejected | None) -> TagResult:
        """An unclear result: the contact's own tag_ids decide. A refusal only when it is verified."""
        contact = keap.get_contact(contact_id)
        if contact is None:
            return TagResult.CONTACT_GONE
        if tag_id in contact.tag_ids:
            return TagResult.ALREADY
        if refusal is not None:
            raise refusal  # Keap refused the call, and the contact exists without the tag: Keap's own words
        raise KeapRequestRejected(f"Keap answered {result!r} applying tag {tag!r} to contact {contact_id}, "
                                  "and the contact does not have the tag", 200)
