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
MAX_BODY_BYTES = 16 * 1024  # far above any valid message; stops a huge body before JSON parsing


@dataclass(frozen=True)
class SignedUp:
    user_id: str
    email: str
    given_name: str | None = None
    family_name: str | None = None
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


Message = SignedUp | ButtonPressed | ContactTag
_TYPES: dict[str, type[SignedUp] | type[ButtonPressed] | type[ContactTag]] = {
    "user.signed_up": SignedUp,
    "button.pressed": ButtonPressed,
    "contact.tag": ContactTag,
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
    if kind not in _TYPES:
        raise InvalidMessage(f"unknown message type {str(kind)[:40]!r}; expected one of {sorted(_TYPES)}")
    try:
        _validator()(data)
    except JsonSchemaException:
        raise InvalidMessage(_explain(data)) from None
    return _TYPES[kind](**data)


def parse(body: str | bytes) -> Message:
    if len(body) > MAX_BODY_BYTES:
        raise InvalidMessage(f"the body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidMessage(f"the body is not valid JSON ({type(exc).__name__})") from None
    return validate(data)


def _explain(data: dict[str, Any]) -> str:
    """Validate against the one branch of ``oneOf`` for this type, for a precise reason."""
    import fastjsonschema

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
