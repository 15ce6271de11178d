"""What Keap's per-contact ``applyTags`` result means (pure).

The contract types each result only as a string; ``SUCCESS`` is the one value in Keap's examples. Other
v2 bulk operations answer with codes such as ``ALREADY_IN_SEQUENCE`` or ``CONTACT_DOES_NOT_EXIST``, so the
plausible spellings of "already tagged" and "no such contact" are recognised, and anything else (``FAILED``,
a code never seen, no result at all) is verified on the contact before keaplink gives up.
"""

from __future__ import annotations

import re
from enum import Enum


class TagResult(str, Enum):
    APPLIED = "applied"
    ALREADY = "already"  # the contact had the tag: done all the same
    CONTACT_GONE = "contact_gone"  # deleted, or merged into another contact
    UNKNOWN = "unknown"  # verify on the contact (its tag_ids) before deciding


def classify(result: str | None) -> TagResult:
    code = re.sub(r"[^A-Z]+", "_", (result or "").upper()).strip("_")
    if code in ("SUCCESS", "SUCCEEDED", "OK", "APPLIED", "TAG_APPLIED"):
        return TagResult.APPLIED
    if code.startswith("ALREADY") or code in ("DUPLICATE", "EXISTS", "NO_CHANGE", "UNCHANGED"):
        return TagResult.ALREADY
    if (code.startswith("CONTACT_") and code.endswith(("NOT_FOUND", "NOT_EXIST", "DOES_NOT_EXIST", "DELETED"))) \
            or code in ("NOT_FOUND", "DOES_NOT_EXIST", "INVALID_CONTACT", "INVALID_CONTACT_ID", "UNKNOWN_CONTACT"):
        return TagResult.CONTACT_GONE
    return TagResult.UNKNOWN
