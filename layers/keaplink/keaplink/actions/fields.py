"""Custom fields by the name the customer sees in Keap (its label) or its API name (``field_name``), from the
contact model (``retrieveContactModel``); values checked against the field's type and options; the contact's
list merged, because Keap replaces the whole list on update (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

TEXT_TYPES = frozenset({"TEXT", "TEXT_AREA", "NAME", "EMAIL", "PHONE_NUMBER", "WEBSITE", "SOCIAL_SECURITY_NUMBER",
                        "STATE", "DAY_OF_WEEK", "MONTH"})
WHOLE_TYPES = frozenset({"WHOLE_NUMBER", "YEAR"})
DECIMAL_TYPES = frozenset({"DECIMAL_NUMBER", "CURRENCY", "PERCENT"})
CHOICE_TYPES = frozenset({"DROPDOWN", "RADIO"})
UNSUPPORTED = frozenset({"DRILLDOWN", "USER", "USER_LIST_BOX"})  # ids of Keap's own objects: not a value to send


class FieldError(ValueError):
    """A name or value a message cannot have; the text names the field."""


@dataclass(frozen=True)
class CustomField:
    id: str
    label: str
    field_name: str
    field_type: str
    options: tuple[str, ...] = ()


def parse_model(body: Any) -> tuple[CustomField, ...]:
    """The contact custom fields of a ``retrieveContactModel`` answer (``ObjectModel``)."""
    items = body.get("custom_fields") if isinstance(body, dict) else None
    fields = []
    for item in items or []:
        if not isinstance(item, dict) or not item.get("id") or item.get("record_type", "CONTACT") != "CONTACT":
            continue
        options = tuple(str(o.get("label")) for o in item.get("options") or []
                        if isinstance(o, dict) and o.get("label"))
        fields.append(CustomField(str(item["id"]), str(item.get("label") or ""), str(item.get("field_name") or ""),
                                  str(item.get("field_type") or "TEXT"), options))
    return tuple(fields)


def find(name: str, model: tuple[CustomField, ...]) -> CustomField | None:
    """The field ``name`` denotes: an exact label or API name first, else one that differs only in case. None
    when there is none; :class:`FieldError` when several fit."""
    for matches in ([f for f in model if name in (f.label, f.field_name)],
                    [f for f in model if name.casefold() in (f.label.casefold(), f.field_name.casefold())]):
        if len(matches) == 1:
            return matches[0]
        if matches:
            names = ", ".join(f"{f.label!r} ({f.field_name}, id {f.id})" for f in matches)
            raise FieldError(f"custom field {name!r} is ambiguous in Keap: {names}")
    return None


def content(field: CustomField, value: Any, name: str) -> Any:
    """The value as Keap takes it for the field's type, or :class:`FieldError` naming the field. ``None``
    clears the field."""
    kind = field.field_type
    if value is None:
        return None
    if kind in UNSUPPORTED:
        raise FieldError(f"custom field {name!r} is a {kind} field, which keaplink does not write")
    if kind in WHOLE_TYPES | DECIMAL_TYPES | {"YES_NO"}:
        return _scalar(field, value, name)
    if kind == "LIST_BOX":
        chosen = [value] if isinstance(value, str) else value
        if not isinstance(chosen, list) or not all(isinstance(v, str) for v in chosen):
            raise _wrong(field, value, name, "a list of options")
        return ",".join(_option(field, v, name) for v in chosen)
    if not isinstance(value, str):
        raise _wrong(field, value, name, "text")
    if kind in CHOICE_TYPES:
        return _option(field, value, name)
    if kind in ("DATE", "DATE_TIME"):
        _check_time(field, value, name)
    return value


def _wrong(field: CustomField, value: Any, name: str, expected: str) -> FieldError:
    return FieldError(f"custom field {name!r} ({field.field_type}) takes {expected}, not {value!r}"[:300])


def _scalar(field: CustomField, value: Any, name: str) -> Any:
    if field.field_type == "YES_NO":
        if not isinstance(value, bool):
            raise _wrong(field, value, name, "true or false")
    elif field.field_type in WHOLE_TYPES:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong(field, value, name, "a whole number")
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _wrong(field, value, name, "a (finite) number")
    return value


def _check_time(field: CustomField, value: str, name: str) -> None:
    if field.field_type == "DATE":
        try:
            date.fromisoformat(value)
        except ValueError:
            raise _wrong(field, value, name, "a date (YYYY-MM-DD)") from None
        if len(value) != 10:
            raise _wrong(field, value, name, "a date (YYYY-MM-DD)")
        return
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _wrong(field, value, name, "a date and time (ISO 8601)") from None


def _option(field: CustomField, value: str, name: str) -> str:
    if not field.options:
        return value
    for option in field.options:
        if option.casefold() == value.casefold():
            return option
    raise FieldError(f"custom field {name!r} has no option {value!r}; its options: {', '.join(field.options)}"[:300])


def merge(current: list[dict[str, Any]], changes: dict[str, Any]) -> list[dict[str, Any]]:
    """The contact's whole custom field list with ``changes`` (id → content; None: cleared) applied, every other
    field as it was (Keap removes any item not listed)."""
    merged: list[dict[str, Any]] = []
    for item in current:
        field_id = str(item.get("id"))
        if field_id not in changes:
            merged.append(dict(item))
        elif changes[field_id] is not None:
            merged.append({**item, "content": changes[field_id]})
    held = {str(item.get("id")) for item in current}
    merged += [{"id": field_id, "content": value} for field_id, value in changes.items()
               if value is not None and field_id not in held]
    return merged
