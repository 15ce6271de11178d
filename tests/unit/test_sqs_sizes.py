"""Dead letters and re-sent records always fit SQS's size limit, which counts message attributes with the body.

The limit and its arithmetic, as AWS documents them (SQS developer guide, "Amazon SQS message attributes",
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-message-metadata.html, and
the API reference of MessageAttributeValue): "All parts of the message attribute, including Name, Type, and
Value, are part of the message size restriction (256 KiB or 262,144 bytes)." The size is computed here apart
from the product's own :func:`keaplink.contract.sizes.sqs_size`, so the two are checked against each
other and not against themselves.
"""

from __future__ import annotations

from typing import Any

import pytest

from keaplink.actions.queue import REQUEUES, ActionsQueue
from keaplink.contract.dead_letters import REASON_ATTRIBUTE, DeadLetterQueue
from keaplink.contract.sizes import MAX_MESSAGE_BYTES, fit, sqs_size

LIMIT = 262_144


def aws_size(body: str, attributes: dict[str, dict[str, Any]]) -> int:
    """Body bytes (UTF-8) plus, per attribute, name + data type + value bytes."""
    total = len(body.encode("utf-8"))
    for name, attr in attributes.items():
        value = attr["BinaryValue"] if "BinaryValue" in attr else attr["StringValue"].encode("utf-8")
        total += len(name.encode("utf-8")) + len(attr["DataType"].encode("utf-8")) + len(value)
    return total


class Sent:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return {"MessageId": "new"}


def test_the_limit_and_the_arithmetic_are_aws_s() -> None:
    attrs = {"ä": {"DataType": "String", "StringValue": "€"}, "b": {"DataType": "Binary", "BinaryValue": b"\0\1"}}
    assert MAX_MESSAGE_BYTES == LIMIT
    assert sqs_size("née", attrs) == aws_size("née", attrs) == 4 + (2 + 6 + 3) + (1 + 6 + 2)


@pytest.mark.parametrize("body_bytes", [100, LIMIT - 1500, LIMIT - 400, LIMIT - 120, LIMIT - 60, LIMIT])
@pytest.mark.parametrize("char", ["x", "é", "€"])
def test_a_dead_letter_fits_with_its_reason_cut_and_its_body_unchanged(body_bytes: int, char: str) -> None:
    body = char * (body_bytes // len(char.encode()))
    reason = "Keap rejected the request: " + "détail " * 200  # ~1.4 KB, characters of two bytes among them
    sent = Sent()
    DeadLetterQueue(lambda: sent, "dlq").send(body, reason, "a3c1e0f2-0000-4000-8000-000000000001")
    call = sent.calls[0]
    attrs = call.get("MessageAttributes", {})
    assert call["MessageBody"] == body
    assert aws_size(body, attrs) <= LIMIT
    if REASON_ATTRIBUTE in attrs:
        kept = attrs[REASON_ATTRIBUTE]["StringValue"]
        assert kept and (reason[:1000] == kept or reason.startswith(kept.removesuffix("…")))
    if body_bytes <= LIMIT - 1500:
        assert attrs[REASON_ATTRIBUTE]["StringValue"] == reason[:1000]  # room enough: the whole (capped) reason


def test_fit_drops_optional_attributes_last_first_and_keeps_required_ones() -> None:
    required = {"keep": {"DataType": "String", "StringValue": "k" * 10}}
    optional = {"o1": {"DataType": "String", "StringValue": "1" * 50},
                "o2": {"DataType": "String", "StringValue": "2" * 50}}
    body = "b" * (LIMIT - 100)
    kept = fit(body, required, optional)
    assert list(kept) == ["keep", "o1"] and aws_size(body, kept) <= LIMIT  # o2 went first
    assert list(fit("b" * LIMIT, required, optional)) == []  # nothing fits beside a body at the limit
    assert fit("small", required, optional) == {**required, **optional}


def test_a_re_sent_record_fits_and_keeps_its_requeue_count() -> None:
    sent = Sent()
    carried = {f"app-{i}": {"stringValue": "v" * 30, "dataType": "String"} for i in range(8)}
    body = "x" * (LIMIT - 300)
    assert ActionsQueue(lambda: sent, lambda: "queue").requeue(body, "m1", carried) == 1
    call = sent.calls[0]
    assert call["MessageBody"] == body and aws_size(body, call["MessageAttributes"]) <= LIMIT
    assert call["MessageAttributes"][REQUEUES]["StringValue"] == "1"
    assert 0 < len(call["MessageAttributes"]) < 10  # some carried ones dropped, ours kept
    small = Sent()
    ActionsQueue(lambda: small, lambda: "queue").requeue("{}", "m1", carried)
    assert len(small.calls[0]["MessageAttributes"]) == 10  # nothing dropped when it fits


def test_the_reason_is_kept_before_the_source_id_when_only_one_fits() -> None:
    sent = Sent()
    body = "b" * (LIMIT - 60)  # room for the reason's name, type and 39 bytes; not for the source id too
    DeadLetterQueue(lambda: sent, "dlq").send(body, "the body is too large for the contract", "a" * 36)
    attrs = sent.calls[0]["MessageAttributes"]
    assert list(attrs) == [REASON_ATTRIBUTE] and aws_size(body, attrs) <= LIMIT
    assert attrs[REASON_ATTRIBUTE]["StringValue"] == "the body is too large for the contract"
