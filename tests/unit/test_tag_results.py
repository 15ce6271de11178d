from __future__ import annotations

import pytest

from keaplink.actions.tag_results import TagResult, classify


@pytest.mark.parametrize(("answer", "meaning"), [
    ("SUCCESS", TagResult.APPLIED),
    ("success", TagResult.APPLIED),
    ("ALREADY_APPLIED", TagResult.ALREADY),
    ("ALREADY_IN_SEQUENCE", TagResult.ALREADY),
    ("Already tagged", TagResult.ALREADY),
    ("DUPLICATE", TagResult.ALREADY),
    ("CONTACT_DOES_NOT_EXIST", TagResult.CONTACT_GONE),
    ("CONTACT_NOT_FOUND", TagResult.CONTACT_GONE),
    ("NOT_FOUND", TagResult.CONTACT_GONE),
    ("FAILED", TagResult.UNKNOWN),
    ("TAG_DOES_NOT_EXIST", TagResult.UNKNOWN),  # not the contact: verified, never taken as gone
    ("", TagResult.UNKNOWN),
    (None, TagResult.UNKNOWN),
])
def test_results_by_meaning(answer: str | None, meaning: TagResult) -> None:
    assert classify(answer) is meaning
