"""SQS's size limit, which counts message attributes with the body, and attributes cut to fit it. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_MESSAGE_BYTES = 262_144  # SQS's limit for a message (256 KiB), its attributes included


def sqs_size(body: str, attributes: Mapping[str, Mapping[str, Any]]) -> int:
    """A message's size as SQS counts it against its limit: the body's UTF-8 bytes, and for each attribute
    its name, its data type and its value (SQS developer guide, "Amazon SQS message attributes": all parts
    of an attribute count toward the message size)."""
    size = len(body.encode())
    for name, value in attributes.items():
        raw = value.get("BinaryValue")
        data = raw if isinstance(raw, bytes) else str(value.get("StringValue", "")).encode()
        size += len(name.encode()) + len(str(value.get("DataType", "")).encode()) + len(data)
    return size


def _cut(text: str, max_bytes: int) -> str:
    """``text`` in at most ``max_bytes`` UTF-8 bytes, never split inside a character; marked when cut."""
    raw = text.encode()
    if len(raw) <= max_bytes:
        return text
    return raw[:max(0, max_bytes - 3)].decode(errors="ignore") + "…" if max_bytes >= 4 else ""


def fit(body: str, required: dict[str, dict[str, Any]], optional: dict[str, dict[str, Any]],
        trim: str | None = None, limit: int = MAX_MESSAGE_BYTES) -> dict[str, dict[str, Any]]:
    """Message attributes for ``body`` that keep the message within ``limit``; the body is never altered.

    The string attribute named ``trim`` is cut to what is left beside the others; where even a cut one
    does not fit, the others go first: ``optional`` ones, then ``required`` ones, last first. An attribute
    that cannot keep a value at all is left out (SQS refuses an empty one).
    """
    kept = {**required, **optional}
    others = [name for name in kept if name != trim]  # dropped from the end
    while True:
        over = sqs_size(body, kept) - limit
        if over <= 0 or not kept:
            return kept
        if trim in kept and "StringValue" in kept[trim]:
            value = str(kept[trim]["StringValue"])
            cut = _cut(value, len(value.encode()) - over)
            if cut:
                kept[trim] = {**kept[trim], "StringValue": cut}
                continue
        if others:
            del kept[others.pop()]
        else:
            kept.clear()
