"""Custom fields by label or API name, values checked against the field's type, the list merged (pure)."""

from __future__ import annotations

import pytest

from keaplink.actions.fields import CustomField, FieldError, content, find, merge, parse_model

MODEL = parse_model({"custom_fields": [
    {"id": "1", "label": "Plan", "field_name": "Plan", "field_type": "DROPDOWN",
     "options": [{"id": "1.1", "label": "Free"}, {"id": "1.2", "label": "Pro"}], "record_type": "CONTACT"},
    {"id": "2", "label": "Signup date", "field_name": "SignupDate", "field_type": "DATE"},
    {"id": "3", "label": "Seats", "field_name": "Seats", "field_type": "WHOLE_NUMBER"},
    {"id": "4", "label": "Source", "field_name": "Source", "field_type": "TEXT"},
    {"id": "5", "label": "source", "field_name": "Source2", "field_type": "TEXT"},
    {"id": "6", "label": "Owner", "field_name": "Owner", "field_type": "USER"},
    {"id": "7", "label": "Plan", "field_name": "CompanyPlan", "field_type": "TEXT", "record_type": "COMPANY"},
]})


def test_a_field_is_found_by_label_or_api_name_exact_first() -> None:
    assert find("Signup date", MODEL).id == "2"  # type: ignore[union-attr]
    assert find("SignupDate", MODEL).id == "2"  # type: ignore[union-attr]
    assert find("signupdate", MODEL).id == "2"  # type: ignore[union-attr]  # differs only in case, one fits
    assert find("Source", MODEL).id == "4"  # type: ignore[union-attr]  # exact wins over a case-insensitive one
    assert find("Plan", MODEL).id == "1"  # type: ignore[union-attr]  # a company field is not a contact's
    assert find("Nope", MODEL) is None


def test_a_name_several_fields_fit_is_ambiguous() -> None:
    with pytest.raises(FieldError, match="ambiguous"):
        find("SOURCE", MODEL)


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("Plan", "pro", "Pro"), ("Signup date", "2026-03-01", "2026-03-01"), ("Seats", 5, 5), ("Source", "ads", "ads"),
    ("Source", None, None),
])
def test_values_of_the_right_type_are_taken(name: str, value: object, expected: object) -> None:
    assert content(find(name, MODEL), value, name) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "value", "reason"), [
    ("Plan", "Gold", "no option 'Gold'"), ("Signup date", "March 1st", "YYYY-MM-DD"), ("Seats", "5", "whole number"),
    ("Seats", True, "whole number"), ("Source", 12, "text"), ("Owner", "1", "does not write"),
])
def test_a_wrong_value_names_the_field(name: str, value: object, reason: str) -> None:
    with pytest.raises(FieldError, match=reason) as caught:
        content(find(name, MODEL), value, name)  # type: ignore[arg-type]
    assert repr(name) in str(caught.value)


def test_other_kinds() -> None:
    yes_no, listbox = CustomField("8", "VIP", "VIP", "YES_NO"), CustomField("9", "Tags", "Tags", "LIST_BOX", ("a", "b"))
    assert content(yes_no, True, "VIP") is True
    assert content(listbox, ["A", "b"], "Tags") == "a,b"
    price = CustomField("10", "Price", "Price", "CURRENCY")
    assert content(price, 9.99, "Price") == 9.99
    for bad in ("9.99", float("inf")):
        with pytest.raises(FieldError):
            content(price, bad, "Price")
    assert content(CustomField("11", "Seen", "Seen", "DATE_TIME"), "2026-03-01T10:00:00Z", "Seen")


def test_the_merge_keeps_every_other_field_and_clears_with_none() -> None:
    current = [{"id": "2", "content": "2026-01-01"}, {"id": "4", "content": "ads"}, {"id": "12", "content": "x"}]
    assert merge(current, {"4": "web", "1": "Pro", "12": None}) == [
        {"id": "2", "content": "2026-01-01"}, {"id": "4", "content": "web"}, {"id": "1", "content": "Pro"}]
    assert merge(current, {"4": "ads"}) == current  # nothing changes: no write


def test_the_service_writes_merged_values_reads_the_model_again_on_a_miss_and_refuses_before_writing() -> None:
    from keaplink.actions.service import ActionService
    from keaplink.actions.tags import TagIds
    from keaplink.contract.messages import ContactFields, SignedUp
    from keaplink.errors import InvalidMessage
    from tests.unit.keap_fakes import FakeKeap, FakeUsers

    users, keap = FakeUsers(), FakeKeap()
    service = ActionService(users=users, tags=TagIds(users), button_tag="b")  # type: ignore[arg-type]
    service.apply(SignedUp("u1", "ada@example.com"), keap)
    [contact_id] = keap.contacts
    keap.model = [{"id": "1", "label": "Plan", "field_name": "Plan", "field_type": "TEXT"}]
    keap.field_values[contact_id] = [{"id": "9", "content": "the customer's"}]
    assert service.apply(ContactFields("u1", {"Plan": "Pro"}), keap) == "1 custom field(s) set"
    keap.model.append({"id": "2", "label": "Seats", "field_name": "Seats", "field_type": "WHOLE_NUMBER"})
    keap.calls.clear()
    assert service.apply(ContactFields("u1", {"seats": 3}), keap) == "1 custom field(s) set"
    assert keap.calls.count("contact_model") == 1  # a miss reads the model again, once
    assert keap.field_values[contact_id] == [{"id": "9", "content": "the customer's"}, {"id": "1", "content": "Pro"},
                                             {"id": "2", "content": 3}]
    keap.calls.clear()
    with pytest.raises(InvalidMessage, match="'Seats'"):
        service.apply(ContactFields("u1", {"Plan": "Free", "Seats": "many"}), keap)
    assert "set_custom_field_values" not in keap.calls  # nothing written when one value is wrong
    with pytest.raises(InvalidMessage, match="no custom field named 'Colour'"):
        service.apply(ContactFields("u1", {"Colour": "red"}), keap)
