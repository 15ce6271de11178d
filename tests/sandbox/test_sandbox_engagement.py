"""E-mail opt-in status, API goals, notes and the contact model's custom fields, as Keap's v2 contract
documents them (every request and answer here is checked against it)."""

from __future__ import annotations

from urllib.parse import quote

from keap_sandbox.testing import SandboxHandle
from tests.sandbox.sandbox_helpers import Api


def _status_path(email: str) -> str:
    return f"/v2/emailAddresses/{quote(email, safe='')}/status"


def _patch(api: Api, path: str, body: object) -> object:
    return api.s.patch(api.base + path, json=body, timeout=5)


def test_a_contact_created_with_an_opt_in_reason_is_marketable_without_one_it_is_not(api: Api) -> None:
    api.post("/v2/contacts", {"email_addresses": [{"email": "a@example.com", "field": "EMAIL1",
                                                   "opt_in_reason": "ticked the newsletter box"}]})
    api.post("/v2/contacts", {"email_addresses": [{"email": "b@example.com", "field": "EMAIL1"}]})
    a, b = api.get(_status_path("A@example.com")).json(), api.get(_status_path("b@example.com")).json()
    assert (a["opted_in"], a["status"]) == (True, "SINGLE_OPT_IN")
    assert (b["opted_in"], b["status"]) == (False, "NON_MARKETABLE")
    assert api.get(_status_path("nobody@example.com")).status_code == 404


def test_opting_in_lifts_only_what_keap_lifts(api: Api, sb: SandboxHandle) -> None:
    api.post("/v2/contacts", {"email_addresses": [{"email": "b@example.com", "field": "EMAIL1"}]})
    r = _patch(api, _status_path("b@example.com"), {"opted_in": True, "reason": "asked for news"})
    assert r.status_code == 200 and r.json()["status"] == "SINGLE_OPT_IN"  # type: ignore[attr-defined]
    sb.control.set_email_status("b@example.com", "LIST_UNSUBSCRIBE")
    r = _patch(api, _status_path("b@example.com"), {"opted_in": True, "reason": "asked for news"})
    assert r.status_code == 200 and r.json()["opted_in"] is False  # type: ignore[attr-defined]
    assert r.json()["status"] == "LIST_UNSUBSCRIBE"  # type: ignore[attr-defined]
    sb.control.configure(opt_in_refused="bad_request_400")
    assert _patch(api, _status_path("b@example.com"), {"opted_in": True, "reason": "x"}).status_code == 400  # type: ignore[attr-defined]


def test_a_goal_without_a_published_campaign_answers_success_false(api: Api, sb: SandboxHandle) -> None:
    cid = int(api.post("/v2/contacts", {"email_addresses": [{"email": "a@example.com"}]}).json()["id"])
    r = api.post("/v2/automations/goals/achieve", {"contact_id": cid, "integration": "app", "call_name": "trial"})
    assert r.status_code == 200 and r.json()["results"][0]["success"] is False
    sb.control.publish_goal("app", "trial")
    r = api.post("/v2/automations/goals/achieve", {"contact_id": cid, "integration": "app", "call_name": "trial"})
    assert r.json()["results"][0]["success"] is True
    assert len(sb.control.state()["goals_achieved"]) == 1
    assert api.post("/v2/automations/goals/achieve", {"contact_id": cid}).status_code == 400


def test_a_note_needs_the_connections_user_and_a_title(api: Api, sb: SandboxHandle) -> None:
    cid = api.post("/v2/contacts", {"email_addresses": [{"email": "a@example.com"}]}).json()["id"]
    user = api.get("/v2/oauth/connect/userinfo").json()["sub"]
    r = api.post(f"/v2/contacts/{cid}/notes", {"user_id": user, "title": "Upgraded", "text": "to Pro"})
    assert r.status_code == 201 and r.json()["contact_id"] == cid
    assert api.post(f"/v2/contacts/{cid}/notes", {"user_id": user, "text": "no title"}).status_code == 400
    assert api.post("/v2/contacts/999/notes", {"user_id": user, "title": "t"}).status_code == 404
    assert [n["title"] for n in sb.control.state()["notes"]] == ["Upgraded"]


def test_custom_fields_come_from_the_model_and_replace_on_update(api: Api, sb: SandboxHandle) -> None:
    plan = sb.control.create_custom_field("Plan name", "DROPDOWN", options=["Free", "Pro"])
    seen = sb.control.create_custom_field("Last login", "DATE")
    model = api.get("/v2/contacts/model").json()
    assert [(f["label"], f["field_name"]) for f in model["custom_fields"]] == [("Plan name", "PlanName"),
                                                                                ("Last login", "LastLogin")]
    cid = api.post("/v2/contacts", {"email_addresses": [{"email": "a@example.com"}],
                                    "custom_fields": [{"id": plan["id"], "content": "Free"}]}).json()["id"]
    r = api.s.patch(api.base + f"/v2/contacts/{cid}", params={"update_mask": "custom_fields"},
                    json={"custom_fields": [{"id": seen["id"], "content": "2026-01-02"}]}, timeout=5)
    assert r.status_code == 200 and r.json()["custom_fields"] == [{"id": seen["id"], "content": "2026-01-02"}]
    r = api.s.patch(api.base + f"/v2/contacts/{cid}", params={"update_mask": "custom_fields"},
                    json={"custom_fields": [{"id": "999", "content": "x"}]}, timeout=5)
    assert r.status_code == 400
