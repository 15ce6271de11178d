"""What the sandbox models beyond contacts and tags, per Keap's v2 contract: e-mail opt-in statuses
(``getEmailAddressStatus``, ``updateEmailAddressOptStatus``), API goals (``achieveGoal``), notes
(``createNote``) and the contact model's custom fields (``retrieveContactModel``). Pure checks here; the
data lives in :class:`~keap_sandbox.state.SandboxState`.

Where the contract is silent, the choice made:

* a contact created through the API gets ``SINGLE_OPT_IN`` for an e-mail sent with ``opt_in_reason``, else
  ``NON_MARKETABLE`` (Keap's help: "non-marketable" without an indication of permission); a status Keap
  would not lift (``LIST_UNSUBSCRIBE``, ``SPAM``, …) is never changed by a create;
* ``updateEmailAddressOptStatus`` lifts only the four states its description names (``UNENGAGED_*``,
  ``NON_MARKETABLE``, ``MANUAL`` = "Opt-Out: Manual") to ``SINGLE_OPT_IN``; any other stays, answered
  200 with the unchanged status (setting ``opt_in_refused: bad_request_400`` answers 400 instead);
* ``achieveGoal`` for an integration/call name no published campaign listens to answers 200 with
  ``success: false`` (the answer keaplink must read); a goal is published with ``POST /_sandbox/goals``;
* ``createNote`` accepts only the connection's own user id (``sub`` of ``getUserInfo``: ``"1"``);
* custom fields are made with ``POST /_sandbox/custom_fields``; a contact write naming an unknown custom
  field id is a 400.
"""

from __future__ import annotations

from typing import Any

from keap_sandbox.crm import InvalidInput

JSON = dict[str, Any]

STATUSES = ("UNENGAGED_MARKETABLE", "SINGLE_OPT_IN", "DOUBLE_OPT_IN", "CONFIRMED", "UNENGAGED_NON_MARKETABLE",
            "NON_MARKETABLE", "LOCKDOWN", "BOUNCE", "HARD_BOUNCE", "MANUAL", "ADMIN", "SYSTEM", "LIST_UNSUBSCRIBE",
            "FEEDBACK", "SPAM", "INVALID", "DEACTIVATED")
MARKETABLE = frozenset({"UNENGAGED_MARKETABLE", "SINGLE_OPT_IN", "DOUBLE_OPT_IN", "CONFIRMED"})
#: updateEmailAddressOptStatus: "will only be updated ... for email addresses that are currently in" these.
LIFTABLE = frozenset({"UNENGAGED_MARKETABLE", "UNENGAGED_NON_MARKETABLE", "NON_MARKETABLE", "MANUAL"})
OPTED_IN = "SINGLE_OPT_IN"
NOT_OPTED_IN = "NON_MARKETABLE"
OPTED_OUT_MANUALLY = "MANUAL"
SANDBOX_USER_ID = "1"  # getUserInfo's ``sub``
FIELD_TYPES = ("CURRENCY", "DATE", "DATE_TIME", "DAY_OF_WEEK", "DECIMAL_NUMBER", "DRILLDOWN", "DROPDOWN", "EMAIL",
               "LIST_BOX", "MONTH", "NAME", "PERCENT", "PHONE_NUMBER", "RADIO", "SOCIAL_SECURITY_NUMBER", "STATE",
               "TEXT", "TEXT_AREA", "USER", "USER_LIST_BOX", "WEBSITE", "WHOLE_NUMBER", "YEAR", "YES_NO")


def status_after_create(current: str | None, opt_in_reason: str | None) -> str:
    """An e-mail's status once a contact is created with it."""
    if current is not None and current not in LIFTABLE:
        return current
    if opt_in_reason:
        return OPTED_IN
    return current or NOT_OPTED_IN


def status_after_update(current: str, opted_in: bool) -> str:
    """``updateEmailAddressOptStatus``: opting in lifts only the liftable states; opting out is manual."""
    if not opted_in:
        return OPTED_OUT_MANUALLY
    return OPTED_IN if current in LIFTABLE else current


def clean_opt_status_request(body: Any) -> tuple[bool, str]:
    """``UpdateEmailAddress``: ``opted_in`` (boolean) and ``reason`` (string), both required."""
    if not isinstance(body, dict):
        raise InvalidInput("Request body must be a JSON object")
    opted_in, reason = body.get("opted_in"), body.get("reason")
    if not isinstance(opted_in, bool):
        raise InvalidInput("opted_in is required and must be a boolean")
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("reason is required")
    return opted_in, reason


def clean_goal_request(body: Any) -> tuple[str, tuple[str, str] | tuple[int, int]]:
    """``AchieveGoalRequest``: ``contact_id`` and either integration + call_name or automation_id + goal_id."""
    if not isinstance(body, dict):
        raise InvalidInput("Request body must be a JSON object")
    contact_id = body.get("contact_id")
    if isinstance(contact_id, bool) or not isinstance(contact_id, (int, str)) or not str(contact_id).isdigit():
        raise InvalidInput("contact_id is required and must be an integer")
    by_name = "integration" in body or "call_name" in body
    by_id = "automation_id" in body or "goal_id" in body
    if by_name == by_id:
        raise InvalidInput("Provide either integration and call_name, or automation_id and goal_id")
    if by_name:
        integration, call_name = body.get("integration"), body.get("call_name")
        if not (isinstance(integration, str) and integration and isinstance(call_name, str) and call_name):
            raise InvalidInput("integration and call_name must both be given")
        return str(contact_id), (integration, call_name)
    automation_id, goal_id = body.get("automation_id"), body.get("goal_id")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (automation_id, goal_id)):
        raise InvalidInput("automation_id and goal_id must both be integers")
    return str(contact_id), (int(automation_id), int(goal_id))  # type: ignore[arg-type]


def clean_note_request(body: Any) -> JSON:
    """``CreateNoteRequest``: ``user_id`` required, a ``title`` or a ``type``, optional ``text``."""
    if not isinstance(body, dict):
        raise InvalidInput("Request body must be a JSON object")
    user_id = body.get("user_id")
    if not isinstance(user_id, str) or not user_id:
        raise InvalidInput("user_id is required")
    if user_id != SANDBOX_USER_ID:
        raise InvalidInput(f"Invalid user_id: {user_id}")
    note: JSON = {}
    for key in ("title", "text", "type"):
        if key in body:
            if not isinstance(body[key], str):
                raise InvalidInput(f"{key} must be a string")
            note[key] = body[key]
    if not note.get("title") and not note.get("type"):
        raise InvalidInput("A value for either title or type is required")
    return note


def new_custom_field(data: JSON, field_id: str, taken: set[str]) -> JSON:
    """A contact custom field as ``retrieveContactModel`` answers it (``CustomFieldMetaData``)."""
    label, field_type = data.get("label"), data.get("field_type", "TEXT")
    if not isinstance(label, str) or not label:
        raise ValueError("label is required")
    if field_type not in FIELD_TYPES:
        raise ValueError(f"field_type must be one of {', '.join(FIELD_TYPES)}")
    field_name = data.get("field_name") or "".join(ch for ch in label.title() if ch.isalnum()) or "Field"
    base, n = field_name, 1
    while field_name in taken:
        n += 1
        field_name = f"{base}{n}"
    meta: JSON = {"id": field_id, "label": label, "field_name": field_name, "field_type": field_type,
                  "record_type": "CONTACT"}
    options = data.get("options")
    if options is not None:
        if not isinstance(options, list) or not all(isinstance(o, str) and o for o in options):
            raise ValueError("options must be a list of labels")
        meta["options"] = [{"id": f"{field_id}.{i}", "label": o} for i, o in enumerate(options, start=1)]
    return meta
