"""The message contract: parse and validate an SQS body against schemas/message.schema.json.

The same schema validates in the publisher (before sending) and in the consumer, so a message the app
could send is exactly a message keaplink accepts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from keaplink.errors import InvalidMessage

SCHEMA_PATH = Path(__file__).with_name("schemas") / "message.schema.json"
MAX_BODY_BYTES = 16 * 1024  # far above any valid message (UTF-8 bytes); stops a huge body before JSON parsing
MAX_DEPTH = 4  # a valid message is one flat object; deeper nesting is refused before the JSON parser recurses
MAX_NUMBER_DIGITS = 20  # no field is a number; a long one is refused before Python builds a huge int
# Keap's `filter` has no escaping for these (keap.client.FILTER_SPECIAL, which a test holds equal): an e-mail
# address holding one could only be found by scanning the customer's contacts, so the contract refuses it.
UNSEARCHABLE_IN_EMAIL = frozenset(";,*=<>!\"'\\%")


@dataclass(frozen=True)
class SignedUp:
    user_id: str
    email: str
    given_name: str | None = None
    family_name: str | None = None
    consent: str | None = None  # the opt-in reason the person agreed to; None: never opted in
    type: str = "user.signed_up"


@dataclass(frozen=True)
class ButtonPressed:
    user_id: str
    email: str | None = None
    type: str = "button.pressed"


@dataclass(frozen=True)
class ContactTag:
    user_id: str
    tag: str
    email: str | None = None
    type: str = "contact.tag"


@dataclass(frozen=True)
class ContactUntag:
    user_id: str
    tag: str
    email: str | None = None
    type: str = "contact.untag"


@dataclass(frozen=True)
class ContactGoal:
    user_id: str
    integration: str
    call_name: str
    event_id: str
    email: str | None = None
    type: str = "contact.goal"


@dataclass(frozen=True)
class ContactNote:
    user_id: str
    title: str
    body: str
    event_id: str
    email: str | None = None
    type: str = "contact.note"


@dataclass(frozen=True)
class ContactFields:
    user_id: str
    fields: dict[str, Any]  # a custom field's label or API name → its value
    email: str | None = None
    type: str = "contact.fields"


Message = SignedUp | ButtonPressed | ContactTag | ContactUntag | ContactGoal | ContactNote | ContactFields
_TYPES: dict[str, type[Message]] = {
    "contact.fields": ContactFields,
    "contact.goal": ContactGoal,
    "contact.note": ContactNote,
    "user.signed_up": SignedUp,
    "button.pressed": ButtonPressed,
    "contact.tag": ContactTag,
    "contact.untag": ContactUntag,
}


@lru_cache(maxsize=1)
def _validator() -> Callable[[Any], Any]:
    import fastjsonschema  # imported on first use: keeps it off the cold-start path of other functions

    return fastjsonschema.compile(json.loads(SCHEMA_PATH.read_text()))  # type: ignore[no-any-return]


def validate(data: Any) -> Message:
    """Validate a decoded message; raises InvalidMessage with a reason a human can act on."""
    from fastjsonschema import JsonSchemaException

    if not isinstance(data, dict):
        raise InvalidMessage("the body is not a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in _TYPES:
        raise InvalidMessage(f"unknown message type {str(kind)[:40]!r}; expected one of {sorted(_TYPES)}")
    try:
        _validator()(data)
    except JsonSchemaException:
        raise InvalidMessage(_explain(data)) from None
    return _TYPES[kind](**data)


def parse(body: str | bytes) -> Message:
    """The message in an SQS body. Whatever the body — too big, deeply nested, invalid UTF-8, huge numbers, JSON
    that is no object — the only error is :class:`InvalidMessage` with a reason: one bad body costs no other
    record anything."""
    if isinstance(body, bytes):
        raw = body
    else:
        try:
            raw = body.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidMessage("the body is not valid UTF-8 (it contains lone surrogates)") from None
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidMessage(f"the body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidMessage("the body is not valid UTF-8") from None
    if nesting_depth(text) > MAX_DEPTH:
        raise InvalidMessage(f"the body is nested deeper than {MAX_DEPTH} levels")
    try:
        data = json.loads(text, parse_int=_bounded_int, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidMessage(f"the body is not valid JSON ({type(exc).__name__})") from None
    if not _encodable(data):
        raise InvalidMessage("the body is not valid UTF-8 (an escaped lone surrogate)")
    return validate(data)


def nesting_depth(text: str) -> int:
    """The deepest nesting of ``[`` and ``{`` outside strings, in one pass and without recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _bounded_int(digits: str) -> int:
    if len(digits) > MAX_NUMBER_DIGITS:
        raise ValueError("number too long")
    return int(digits)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _encodable(value: Any) -> bool:
    """No lone surrogate in any string (JSON's ``\\ud800`` escapes decode to one; UTF-8 cannot carry it)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_encodable(k) and _encodable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_encodable(v) for v in value)
    return True


def _explain(data: dict[str, Any]) -> str:
    """Validate against the one branch of ``oneOf`` for this type, for a precise reason."""
    import fastjsonschema

    email = data.get("email")
    if isinstance(email, str) and UNSEARCHABLE_IN_EMAIL.intersection(email):
        found = "".join(sorted(UNSEARCHABLE_IN_EMAIL.intersection(email)))
        return (f"{data['type']}: the e-mail address holds {found!r}, which Keap's contact filter cannot match "
                "exactly; keaplink looks contacts up exactly or not at all")
    schema = json.loads(SCHEMA_PATH.read_text())
    branch = next(b for b in schema["oneOf"] if b["properties"]["type"]["const"] == data["type"])
    try:
        fastjsonschema.validate({**branch, "definitions": schema["definitions"]}, data)
    except fastjsonschema.JsonSchemaException as exc:
        return f"{data['type']}: {exc.message}"
    return f"{data['type']}: does not match the schema"


def as_dict(message: Message) -> dict[str, Any]:
    return {k: v for k, v in message.__dict__.items() if v is not None}


def to_json(message: Message) -> str:
    return json.dumps(as_dict(message), separators=(",", ":"), sort_keys=True)
