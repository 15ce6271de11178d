"""Any body — huge, deeply nested, invalid UTF-8, huge numbers, JSON that is no object — is an InvalidMessage
with a reason, never another exception (which would fail the whole batch)."""

from __future__ import annotations

import json

import pytest

from keaplink.actions.batch import read
from keaplink.contract.messages import MAX_BODY_BYTES, ButtonPressed, nesting_depth, parse
from keaplink.errors import InvalidMessage

VALID = json.dumps({"type": "button.pressed", "user_id": "u1"})

POISON = {
    "deep arrays (10 KB)": ("[" * 5000 + "]" * 5000, "nested deeper"),
    "deep objects": ('{"a":' * 2000 + "1" + "}" * 2000, "nested deeper"),
    "huge integer": (json.dumps({"type": "button.pressed", "user_id": "u1"})[:-1] + ', "n": ' + "9" * 4000 + "}",
                     "not valid JSON"),
    "NaN": ('{"type": "button.pressed", "user_id": "u1", "n": NaN}', "not valid JSON"),
    "lone surrogate": ("\ud800", "not valid UTF-8"),
    "escaped lone surrogate": ('{"type": "button.pressed", "user_id": "u1", "email": "\\ud800@x.io"}',
                               "not valid UTF-8"),
    "invalid UTF-8 bytes": (b"\xff\xfe{}", "not valid UTF-8"),
    "multi-byte over the byte limit": ("é" * (MAX_BODY_BYTES // 2 + 1), "bytes; the limit"),
    "an array": ("[1, 2]", "not a JSON object"),
    "a string": ('"hello"', "not a JSON object"),
    "type is a list": ('{"type": ["user.signed_up"]}', "unknown message type"),
    "type is an object": ('{"type": {"a": 1}}', "unknown message type"),
}


@pytest.mark.parametrize("case", sorted(POISON))
def test_poison_is_an_invalid_message_with_a_reason(case: str) -> None:
    body, reason = POISON[case]
    with pytest.raises(InvalidMessage, match=reason):
        parse(body)


def test_the_byte_limit_counts_bytes_not_characters() -> None:
    body = json.dumps({"type": "button.pressed", "user_id": "u1", "x": "é" * 9000}, ensure_ascii=False)
    assert len(body) < MAX_BODY_BYTES < len(body.encode())
    with pytest.raises(InvalidMessage, match="bytes"):
        parse(body)


def test_nesting_is_measured_outside_strings_without_recursion() -> None:
    assert nesting_depth('{"a": "[[[[[[{{{{"}') == 1
    assert nesting_depth('{"a": "\\"[[["}') == 1
    assert nesting_depth("[" * 100000) == 100000  # a loop, not a recursion


def test_read_never_raises_whatever_the_record_holds() -> None:
    assert isinstance(read({"body": VALID}), ButtonPressed)
    for body in [POISON[c][0] for c in POISON] + [None, 12]:
        assert isinstance(read({"body": body}), InvalidMessage)  # type: ignore[dict-item]


@pytest.mark.parametrize("email", ["o'brien@example.com", "inf!@x.co", "a;b@x.co", "a,b@x.co", "a*b@x.co",
                                   "a%b@x.co", 'a"b@x.co', "a=b@x.co", "a\\b@x.co"])
def test_an_email_keap_cannot_look_up_exactly_is_refused_with_the_reason(email: str) -> None:
    body = json.dumps({"type": "user.signed_up", "user_id": "u1", "email": email})
    with pytest.raises(InvalidMessage, match="cannot match exactly"):
        parse(body)


@pytest.mark.parametrize("email", ["ada@example.com", "ada.lovelace+news@mail.example.co.uk", "a_b-c@x.io"])
def test_an_email_keap_can_look_up_is_accepted(email: str) -> None:
    assert parse(json.dumps({"type": "user.signed_up", "user_id": "u1", "email": email})).email == email  # type: ignore[union-attr]


def test_the_contract_refuses_exactly_what_the_lookup_cannot_filter() -> None:
    from keaplink.contract.messages import UNSEARCHABLE_IN_EMAIL
    from keaplink.keap.client import FILTER_SPECIAL, filter_safe

    assert UNSEARCHABLE_IN_EMAIL == FILTER_SPECIAL
    assert not filter_safe("o'brien@example.com")
