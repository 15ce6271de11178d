"""The effects of one message in Keap and in the per-user record.

Keap is the customer's CRM and changes under keaplink, so: a signup never writes over an existing contact
(looked up by e-mail first, names written only where blank, no list field ever sent); ids are kept per Keap
app and heal when stale (a contact found again by e-mail, a tag found or created again); ``applyTags``' result
is read by meaning and verified when unclear. Goals and notes happen once per ``event_id`` (``once``). What is
raised here the batch sorts into "never" or "later". Why: docs/sending-events.md, "Your Keap data is safe".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from keaplink.actions import fields, once
from keaplink.actions.facts import KeapFacts
from keaplink.actions.tag_results import TagResult, classify
from keaplink.contract.messages import ButtonPressed, ContactFields, ContactGoal, ContactNote, ContactUntag, SignedUp
from keaplink.errors import InvalidMessage, KeapRequestRejected, KeapUnavailable, NotReady, OutcomeUnknown
from keaplink.observability import MetricsPort, MetricUnit, NullMetrics, logger

if TYPE_CHECKING:
    from keaplink.actions.tags import TagIds
    from keaplink.actions.users import UserRecord, UserStore
    from keaplink.contract.messages import Message
    from keaplink.keap.client import Contact, KeapClient

HEALING_ROUNDS = 3  # stale ids found and replaced within one message, at most
MAX_CONTACTS_PER_CALL = 100  # Keap's v1 applyTags refuses more; v2 documents no limit: the safe side
_UNSENT = object()  # no answer from Keap for this contact yet


def fill_blanks(found: Contact, given_name: str | None,
                family_name: str | None) -> tuple[str | None, str | None] | None:
    """The names to write on an existing contact: only those it has none of (pure); None when nothing."""
    given = given_name if given_name and not found.given_name else None
    family = family_name if family_name and not found.family_name else None
    return (given, family) if given or family else None


@dataclass(frozen=True)
class PendingTag:
    """A tag application a message is waiting for, sent by the batch with the others of its tag."""

    user_id: str
    email: str | None
    tag: str
    tag_id: str
    contact_id: str
    remove: bool = False  # contact.untag: removeTags instead of applyTags


@dataclass
class ActionService:
    users: UserStore
    tags: TagIds
    button_tag: str
    metrics: MetricsPort = field(default_factory=NullMetrics)
    facts: KeapFacts = field(default_factory=KeapFacts)
    clock: Callable[[], float] = time.time  # epoch seconds: event claims outlive containers

    def apply(self, message: Message, keap: KeapClient) -> str:
        """Do what one message asks; returns what was done. Raises typed errors (see the module's doc). A batch
        uses :meth:`prepare` and :meth:`apply_tags` instead, to send its tag applications together."""
        step = self.prepare(message, keap)
        if isinstance(step, str):
            return step
        [outcome] = self.apply_tags([step], keap)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    # --- contacts -------------------------------------------------------------------------------------
    def _sign_up(self, message: SignedUp, keap: KeapClient, stored: UserRecord | None) -> str:
        contact, outcome = self._resolve(message.email, keap, message.given_name, message.family_name,
                                         message.consent)
        self._remember(stored or self.users.get(message.user_id), contact, message.email, keap)
        if message.consent and outcome != "created":  # a new contact got the reason with its address
            outcome += self._opt_in(message.user_id, message.email, message.consent, keap)
        return outcome

    def _opt_in(self, user_id: str, email: str, consent: str, keap: KeapClient) -> str:
        """Consent for an address already in Keap. An unsubscribed person stays unsubscribed: Keap keeps the
        status, keaplink records and counts it — done, neither retried nor dead-lettered."""
        status = keap.opt_in(email, consent)
        if status.opted_in:
            return ", opted in"
        self.users.record_opt_status(user_id, status.status)
        self.metrics.add_metric("ConsentKeptOutByKeap", MetricUnit.Count, 1)
        logger.info("consent not applied: Keap keeps the address out of marketing",
                    extra={"user_id": user_id, "email_status": status.status})
        return f", not opted in (Keap keeps it {status.status or 'non-marketable'})"

    @staticmethod
    def _resolve(email: str, keap: KeapClient, given_name: str | None = None,
                 family_name: str | None = None, consent: str | None = None) -> tuple[Contact, str]:
        """The contact holding ``email``, created when there is none; an existing one keeps all it has."""
        found = keap.find_contact_by_email(email)
        if found is None:
            contact, created = keap.create_contact(email, given_name, family_name, consent)
            return contact, "created" if created else "found"  # "found": another signup created it meanwhile
        blanks = fill_blanks(found, given_name, family_name)
        if blanks:
            keap.update_names(found.id, *blanks)
            return found, "updated"
        return found, "found"

    def _remember(self, stored: UserRecord, contact: Contact, email: str, keap: KeapClient) -> None:
        self.users.save_contact(stored.user_id, contact.id, email, keap.tenant, contact.tag_ids,
                                new_tenant=stored.tenant != keap.tenant)

    # --- tags -----------------------------------------------------------------------------------------
    def prepare(self, message: Message, keap: KeapClient, stored: UserRecord | None = None) -> str | PendingTag:
        """Everything a message needs before the tag application itself: the outcome when nothing is left to
        send (a signup, a tag already applied), else the application the batch sends with others of its tag.
        ``stored``: the user's record if the caller has already read it (a batch reads many at once)."""
        if isinstance(message, SignedUp):
            return self._sign_up(message, keap, stored)
        if isinstance(message, ContactUntag):
            return self._prepare_untag(message, keap, stored)
        if isinstance(message, ContactFields):
            return self._set_fields(message, keap, stored)
        if isinstance(message, ContactGoal):
            goal = message
            return self._once(goal, keap, stored, lambda contact_id: self._achieve(goal, contact_id, keap))
        if isinstance(message, ContactNote):
            note = message
            return self._once(note, keap, stored, lambda contact_id: self._note(note, contact_id, keap))
        tag = self.button_tag if isinstance(message, ButtonPressed) else message.tag
        stored = stored or self.users.get(message.user_id)
        if tag in stored.in_tenant(keap.tenant).tags:  # ids and tags of another Keap app do not count here
            return "already tagged"
        contact_id, contact_tags, email = self._contact_of(message.user_id, message.email, stored, keap)
        tag_id = self.tags.get(tag, keap)
        if tag_id in contact_tags:  # the contact had the tag when keaplink found it: nothing to send
            self.users.mark_tagged(message.user_id, tag)
            return "already tagged in Keap"
        return PendingTag(message.user_id, email, tag, tag_id, contact_id)

    def _contact_of(self, user_id: str, email: str | None, stored: UserRecord,
                    keap: KeapClient) -> tuple[str, frozenset[str], str | None]:
        """The user's contact id in this Keap app, the tags it had when found, and the e-mail to find it again;
        found (or created) by e-mail when keaplink has none yet."""
        user = stored.in_tenant(keap.tenant)
        email = email or user.email
        if user.contact_id is not None:
            return user.contact_id, user.contact_tag_ids, email
        if not email:
            # The signup has not been processed yet: come back later, do not dead-letter early.
            raise NotReady(f"user {user_id} has no Keap contact yet")
        contact, _ = self._resolve(email, keap)
        self._remember(stored, contact, email, keap)
        return contact.id, contact.tag_ids, email

    # --- custom fields ----------------------------------------------------------------------------------
    def _set_fields(self, message: ContactFields, keap: KeapClient, stored: UserRecord | None) -> str:
        """Resolve every name and check every value first (nothing is written if one is wrong), then read the
        contact's custom fields, merge, write the whole list back: its other fields stay as they are."""
        changes = self._field_changes(message.fields, keap)
        stored = stored or self.users.get(message.user_id)
        contact_id, _, email = self._contact_of(message.user_id, message.email, stored, keap)

        def write(contact_id: str) -> str:
            current = keap.custom_field_values(contact_id)
            merged = fields.merge(current, changes)
            if merged == current:
                return "custom fields unchanged"
            keap.set_custom_field_values(contact_id, merged)
            return f"{len(changes)} custom field(s) set"

        return self._on_contact(message.user_id, email, contact_id, keap, write)

    def _field_changes(self, values: dict[str, object], keap: KeapClient) -> dict[str, object]:
        """Field id → content. A name not in the cached model reads the model again, once (the customer adds
        fields); an unknown or ambiguous name or a wrong value is an :class:`InvalidMessage` naming the field."""
        model = self.facts.custom_fields(keap)
        try:
            if any(fields.find(name, model) is None for name in values):
                model = self.facts.custom_fields(keap, fresh=True)
            changes: dict[str, object] = {}
            for name, value in values.items():
                found = fields.find(name, model)
                if found is None:
                    raise fields.FieldError(f"no custom field named {name!r} in Keap (by label or API name)")
                if found.id in changes:
                    raise fields.FieldError(f"custom field {name!r} is named twice in the message")
                changes[found.id] = fields.content(found, value, name)
        except fields.FieldError as exc:
            raise InvalidMessage(f"contact.fields: {exc}") from None
        return changes

    # --- goals and notes: exactly once per event_id ------------------------------------------------------
    def _once(self, message: ContactGoal | ContactNote, keap: KeapClient, stored: UserRecord | None,
              effect: Callable[[str], str]) -> str:
        """Do ``effect`` on the user's contact once per ``event_id``: claimed before Keap is asked, done after;
        the claim released when Keap surely did nothing, kept when it may have acted (see :mod:`once`)."""
        stored = stored or self.users.get(message.user_id)
        contact_id, _, email = self._contact_of(message.user_id, message.email, stored, keap)
        now = self.clock()
        claim = self.users.claim_event(message.user_id, message.event_id, now)
        verdict = once.seen(claim, now)
        if verdict is once.Seen.DUPLICATE:
            return f"event {message.event_id} done already ({claim.outcome or 'done'})"
        if verdict is once.Seen.IN_FLIGHT:
            raise NotReady(f"event {message.event_id} of user {message.user_id} is being done by another attempt")
        if verdict is once.Seen.UNKNOWN:
            raise OutcomeUnknown(f"{message.type} event {message.event_id}: an earlier attempt stopped while Keap "
                                 "was being asked, so whether it happened is unknown; check the contact in Keap "
                                 "and, to do it again, send it with a new event_id")
        try:
            outcome = self._on_contact(message.user_id, email, contact_id, keap, effect)
        except Exception as exc:
            if not once.may_have_acted(exc):
                self.users.release_event(message.user_id, message.event_id, now)
            raise
        self.users.finish_event(message.user_id, message.event_id, outcome, self.clock())
        return outcome

    def _on_contact(self, user_id: str, email: str | None, contact_id: str, keap: KeapClient,
                    effect: Callable[[str], str]) -> str:
        """``effect`` on the contact; a contact gone from Keap (404: deleted, merged away) is found again by the
        user's e-mail, once."""
        try:
            return effect(contact_id)
        except KeapRequestRejected as exc:
            if exc.status != 404 or not email or keap.get_contact(contact_id) is not None:
                raise
        contact, _ = self._resolve(email, keap)
        self.users.save_contact(user_id, contact.id, email, keap.tenant, contact.tag_ids)
        return effect(contact.id)

    @staticmethod
    def _achieve(message: ContactGoal, contact_id: str, keap: KeapClient) -> str:
        results = keap.achieve_goal(contact_id, message.integration, message.call_name)
        if not any(success for success, _ in results):
            said = "; ".join(text for _, text in results if text) or "no goal answered"
            # Keap answers 200 when no published campaign listens: fix the campaign, then redrive.
            raise KeapRequestRejected(f"goal {message.integration}/{message.call_name} not achieved for contact "
                                      f"{contact_id}: Keap says {said!r}", 200)
        return "goal achieved"

    def _note(self, message: ContactNote, contact_id: str, keap: KeapClient) -> str:
        note_id = keap.create_note(contact_id, self.facts.user_id(keap), message.title, message.body)
        return f"note {note_id} written"

    def _prepare_untag(self, message: ContactUntag, keap: KeapClient, stored: UserRecord | None) -> str | PendingTag:
        """A removal, sent with the batch's others of its tag. keaplink's memory of the tag goes first, so the
        user's next ``contact.tag`` (in this batch or a later one) applies it again."""
        stored = stored or self.users.get(message.user_id)
        contact_id, _, email = self._contact_of(message.user_id, message.email, stored, keap)
        tag_id = self.tags.find(message.tag, keap)
        self.users.unmark_tagged(message.user_id, message.tag, tag_id)
        if tag_id is None:
            return "no such tag in Keap: nothing to remove"
        return PendingTag(message.user_id, email, message.tag, tag_id, contact_id, remove=True)

    def apply_tags(self, pending: Sequence[PendingTag], keap: KeapClient,
                   pool: Executor | None = None) -> list[str | Exception]:
        """Send tag applications and removals together: one ``applyTags`` or ``removeTags`` call per tag and up
        to 100 contacts. For one contact and tag, the last message (``pending``'s order: arrival order) decides,
        and earlier ones asking the opposite are superseded, so tag/untag/tag ends tagged. Each one's outcome comes
        from its own contact's result (an error for that one alone, never for the others).

        ``pool``: the contacts' results are settled (each a DynamoDB write) on it, concurrently: in series they
        were the batch's tail, when the container makes no Keap call (docs/decisions.md)."""
        outcomes: list[str | Exception | None] = [None] * len(pending)
        last = {(p.contact_id, p.tag_id): i for i, p in enumerate(pending)}
        by_tag: dict[str, list[int]] = {}
        removals: dict[str, list[int]] = {}
        for i, p in enumerate(pending):
            if p.remove != pending[last[(p.contact_id, p.tag_id)]].remove:
                outcomes[i] = "superseded by a later tag or untag of the batch"
            else:
                (removals if p.remove else by_tag).setdefault(p.tag_id, []).append(i)
        for tag_id, members in removals.items():
            self._remove_tag(tag_id, [pending[i] for i in members], members, outcomes, keap)
        for tag_id, members in by_tag.items():
            contact_ids = list(dict.fromkeys(pending[i].contact_id for i in members))
            for start in range(0, len(contact_ids), MAX_CONTACTS_PER_CALL):
                chunk = contact_ids[start:start + MAX_CONTACTS_PER_CALL]
                involved = [i for i in members if pending[i].contact_id in chunk]
                try:
                    results = self._apply_chunk(pending[involved[0]].tag, tag_id, chunk, keap)
                except Exception as exc:  # noqa: BLE001 - the error belongs to each application of this call
                    for i in involved:
                        outcomes[i] = exc
                    continue
                def settle(i: int, results: tuple[str, dict[str, str]] | None = results) -> str | Exception:
                    answered = _UNSENT if results is None else results[1].get(pending[i].contact_id)
                    p = pending[i] if results is None else replace(pending[i], tag_id=results[0])
                    return self._settle_quietly(p, keap, answered)

                settled = pool.map(settle, involved) if pool is not None else map(settle, involved)
                for i, outcome in zip(involved, settled, strict=True):
                    outcomes[i] = outcome
        return [o if o is not None else KeapUnavailable("tag application not sent", 0) for o in outcomes]

    def _remove_tag(self, tag_id: str, members: list[PendingTag], where: list[int],
                    outcomes: list[str | Exception | None], keap: KeapClient) -> None:
        """One ``removeTags`` call per 100 contacts; a tag deleted in Keap is removed from everyone already."""
        contact_ids = list(dict.fromkeys(p.contact_id for p in members))
        for start in range(0, len(contact_ids), MAX_CONTACTS_PER_CALL):
            chunk = contact_ids[start:start + MAX_CONTACTS_PER_CALL]
            outcome: str | Exception = "untagged"
            try:
                keap.remove_tag(tag_id, chunk)
            except KeapRequestRejected as exc:
                if exc.status == 404 and not keap.tag_exists(tag_id):
                    self.tags.forget(members[0].tag, tag_id, keap)
                    outcome = "the tag no longer exists in Keap"
                else:
                    outcome = exc
            except Exception as exc:  # noqa: BLE001 - the error belongs to each removal of this call
                outcome = exc
            for i, p in zip(where, members, strict=True):
                if p.contact_id in chunk:
                    outcomes[i] = outcome

    def _apply_chunk(self, tag: str, tag_id: str, chunk: list[str],
                     keap: KeapClient) -> tuple[str, dict[str, str]] | None:
        """One call for up to 100 contacts: (the tag id used, the result per contact). A tag deleted in Keap is
        found or created again once, for the whole chunk; None when Keap refused the call as a whole (each
        application then settles on its own)."""
        try:
            return tag_id, keap.apply_tag(tag_id, chunk)
        except KeapRequestRejected as exc:
            if exc.status not in (400, 404):
                raise
            if exc.status == 404 and not keap.tag_exists(tag_id):
                self.tags.forget(tag, tag_id, keap)
                tag_id = self.tags.get(tag, keap)
                try:
                    return tag_id, keap.apply_tag(tag_id, chunk)
                except KeapRequestRejected as again:
                    if again.status not in (400, 404):
                        raise
            return None

    def _settle_quietly(self, p: PendingTag, keap: KeapClient, answered: object) -> str | Exception:
        try:
            return self._settle(p, keap, answered)
        except Exception as exc:  # noqa: BLE001 - this application's outcome, handed to its record
            return exc

    def _settle(self, p: PendingTag, keap: KeapClient, answered: object = None) -> str:
        """Read Keap's result for one contact by its meaning, healing stale ids (``answered``: the result the
        batch's call gave for it; ``_UNSENT``: not sent yet, or refused as a whole)."""
        tag_id, contact_id = p.tag_id, p.contact_id
        for _ in range(HEALING_ROUNDS):
            refusal: KeapRequestRejected | None = None
            if answered is _UNSENT:
                try:
                    result: str | None = keap.apply_tag(tag_id, [contact_id]).get(contact_id)
                except KeapRequestRejected as exc:
                    if exc.status not in (400, 404):
                        raise
                    if exc.status == 404 and not keap.tag_exists(tag_id):  # the tag was deleted: find or create
                        self.tags.forget(p.tag, tag_id, keap)
                        tag_id = self.tags.get(p.tag, keap)
                        continue
                    # The whole call refused, the tag being there: a contact id Keap does not know (some APIs
                    # answer that with 404 or 400) or a real refusal. The contact decides.
                    result, refusal = None, exc
            else:
                result = answered if isinstance(answered, str) else None
            answered = _UNSENT  # a next round sends again
            kind = classify(result)
            if kind is TagResult.UNKNOWN:
                kind = self._verify(result, p.tag, tag_id, contact_id, keap, refusal)
            if kind is not TagResult.CONTACT_GONE:
                self.users.mark_tagged(p.user_id, p.tag)
                return "tagged" if kind is TagResult.APPLIED else "already tagged in Keap"
            if not p.email:
                raise KeapRequestRejected(f"contact {contact_id} no longer exists in Keap and user {p.user_id} "
                                          "has no e-mail to find it again", 404)
            contact, _ = self._resolve(p.email, keap)  # merged into another contact, or deleted: find it again
            self.users.save_contact(p.user_id, contact.id, p.email, keap.tenant, contact.tag_ids)
            if contact.id == contact_id:
                raise KeapUnavailable(f"Keap says contact {contact_id} is gone but finds it by e-mail", 0)
            contact_id = contact.id
            if tag_id in contact.tag_ids:
                self.users.mark_tagged(p.user_id, p.tag)
                return "already tagged in Keap"
        raise KeapUnavailable(f"tag {p.tag!r} not applied: ids kept going stale ({HEALING_ROUNDS} rounds)", 0)

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
