"""The contract checker itself: off-spec requests and answers are reported, on-spec ones are not, and
the sandbox works without openapi-core while validation is off."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from keap_sandbox import contract
from keap_sandbox.testing import SandboxControlError, SandboxHandle, describe_violations, start_sandbox
from tests.sandbox.sandbox_helpers import REDIRECT_URI, Api

SANDBOX_DIR = Path(__file__).resolve().parents[2] / "sandbox"
SPEC = SANDBOX_DIR / "keap_sandbox" / "spec" / "keap-openapi-v2.yml"

pytestmark = pytest.mark.contract_violations_expected  # every test here asserts the violations it causes


def _contact(email: str = "ada@example.com") -> dict[str, Any]:
    return {"email_addresses": [{"email": email, "field": "EMAIL1"}], "given_name": "Ada"}


def _only(sb: SandboxHandle) -> dict[str, Any]:
    found = sb.control.contract_violations()
    assert len(found) == 1, describe_violations(found)
    return found[0]


def test_off_spec_request_is_reported(api: Api, sb: SandboxHandle) -> None:
    c = api.post("/v2/contacts", _contact()).json()
    tag = api.post("/v2/tags", {"name": "vip"}).json()
    assert sb.control.contract_violations() == []
    # ApplyRemoveTagRequest.contact_ids is an array of strings
    r = api.post(f"/v2/tags/{tag['id']}/contacts:applyTags", {"contact_ids": c["id"]})
    assert r.status_code == 400  # the sandbox refuses it too, but that is not what is checked here
    v = _only(sb)
    assert (v["kind"], v["check"], v["method"], v["path"], v["operation"], v["status"]) == (
        "request",
        "spec",
        "POST",
        f"/crm/rest/v2/tags/{tag['id']}/contacts:applyTags",
        "applyTags",
        None,
    )
    assert v["message"] == "body.contact_ids: '1' is not of type 'array'"
    sb.control.clear_contract_violations()
    # uniqueItems: true
    api.post(f"/v2/tags/{tag['id']}/contacts:applyTags", {"contact_ids": [c["id"], c["id"]]})
    assert _only(sb)["message"] == "body.contact_ids: ['1', '1'] has non-unique elements"


def test_undeclared_request_property_is_reported_apart_from_the_spec_letter(api: Api, sb: SandboxHandle) -> None:
    # CreateUpdateContactRequest does not forbid other properties (no schema in the spec does), so an
    # unknown field is within the spec's letter; Keap may ignore or refuse it, so it is reported as
    # "undocumented-property"
    r = api.post("/v2/contacts", {**_contact(), "tag_ids": ["1"], "nickname": "Ada"})
    assert r.status_code == 201 and "nickname" not in r.json() and r.json()["tag_ids"] == []
    v = _only(sb)
    assert (v["kind"], v["check"], v["operation"]) == ("request", "undocumented-property", "createContact")
    assert "Additional properties are not allowed ('nickname', 'tag_ids' were unexpected)" in v["message"]
    # ... and can be switched off
    sb.control.clear_contract_violations()
    sb.control.configure(contract_strict_properties=False)
    api.post("/v2/contacts", {**_contact("b@example.com"), "nickname": "Bea"})
    assert sb.control.contract_violations() == []


def test_off_spec_answer_is_reported(api: Api, sb: SandboxHandle) -> None:
    c = api.post("/v2/contacts", _contact()).json()
    path = f"/crm/rest/v2/contacts/{c['id']}"
    # Contact.id is a string; Contact.given_name is a string, not nullable
    sb.control.add_fault(path, status=200, body={"id": 1001, "given_name": None})
    assert api.get(f"/v2/contacts/{c['id']}").json() == {"id": 1001, "given_name": None}
    v = _only(sb)
    assert (v["kind"], v["check"], v["status"], v["operation"]) == ("response", "spec", 200, "getContact")
    assert v["errors"] == [
        "body.id: 1001 is not of type 'string'",
        "body.given_name: None is not of type 'string'",
    ]
    sb.control.clear_contract_violations()
    # a property Contact does not declare
    sb.control.add_fault(path, status=200, body={"id": c["id"], "nickname": "Ada"})
    api.get(f"/v2/contacts/{c['id']}")
    v = _only(sb)
    assert (v["check"], v["message"]) == (
        "undocumented-property",
        "body: Additional properties are not allowed ('nickname' was unexpected)",
    )
    sb.control.clear_contract_violations()
    # a status getContact does not document
    sb.control.add_fault(path, status=418, body={"code": 418, "message": "teapot", "status": "X", "details": []})
    api.get(f"/v2/contacts/{c['id']}")
    assert _only(sb)["message"] == "Unknown response http status: 418"
    sb.control.clear_contract_violations()
    # an error body that is not v2's Error
    sb.control.add_fault(path, status=500, body={"error": "boom"})
    api.get(f"/v2/contacts/{c['id']}")
    assert _only(sb)["errors"] == ["body: Additional properties are not allowed ('error' was unexpected)"]


def test_gateway_answers_follow_the_configured_shape(api: Api, sb: SandboxHandle) -> None:
    # default: the gateway's own {"fault": ...} bodies, as seen in the wild; not in the spec, not checked
    for status in (401, 429, 502, 503, 504):
        sb.control.add_fault("/crm/rest", status=status)
        assert "fault" in api.get("/v2/tags").json()
    assert Api(sb, token="bogus").get("/v2/tags").json()["fault"]["faultstring"] == "Invalid access token"
    assert sb.control.contract_violations() == []
    # v2's Error shape instead: checked (401 against listTags' 401, the rest against Error: the spec
    # lists 429/502/503/504 nowhere)
    sb.control.configure(gateway_error_shape="v2")
    bodies = {}
    for status in (401, 429, 502, 503, 504):
        sb.control.add_fault("/crm/rest", status=status)
        bodies[status] = api.get("/v2/tags").json()
    assert bodies[429] == {"code": 429, "message": "Quota Exceeded", "status": "Request Throttled", "details": []}
    assert bodies[401] == {"code": 401, "message": "Invalid access token", "status": "UNAUTHENTICATED", "details": []}
    assert bodies[503]["code"] == 503 and bodies[503]["details"] == []
    assert Api(sb, token="bogus").get("/v2/tags").json()["code"] == 401
    assert sb.control.contract_violations() == []
    # in v2 shape a gateway fault body is off the contract (Error declares no "fault"; its properties
    # are all optional, so this is an undocumented property, not a breach of the letter) ...
    sb.control.add_fault("/crm/rest", status=503, body={"fault": {"faultstring": "Service Unavailable"}})
    api.get("/v2/tags")
    v = _only(sb)
    assert (v["check"], v["errors"]) == (
        "undocumented-property",
        ["(Error schema) body: Additional properties are not allowed ('fault' was unexpected)"],
    )
    sb.control.clear_contract_violations()
    # ... and so is the 429 body quoted in KEAP.md: code is a string there, details null
    wild = {"code": "429", "message": "Quota Exceeded", "status": "Request Throttled", "details": None}
    sb.control.add_fault("/crm/rest", status=429, body=wild)
    api.get("/v2/tags")
    assert _only(sb)["errors"] == [
        "(Error schema) body.code: '429' is not of type 'integer'",
        "(Error schema) body.details: None is not of type 'array'",
    ]


def test_oauth_endpoints_are_not_validated(sb: SandboxHandle, tokens: dict[str, Any]) -> None:
    r = requests.post(sb.token_url, data={"grant_type": "nonsense"}, auth=(sb.client_id, sb.client_secret), timeout=5)
    assert r.status_code == 400
    assert requests.get(sb.authorize_url, timeout=5).status_code == 400
    assert sb.control.contract_violations() == []


def test_violations_are_listed_cleared_reset_and_logged(
    api: Api, sb: SandboxHandle, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="keap_sandbox.contract"):
        api.get("/v2/tags", params={"page_size": 5000})
    v = _only(sb)
    assert v["message"] == "query parameter page_size: 5000 is greater than the maximum of 1000"
    assert v["query"] == "page_size=5000"
    assert sb.control.state()["contract"] == {"validating": True, "violations": 1}
    assert [r.getMessage() for r in caplog.records if r.name == "keap_sandbox.contract"] == [
        "Keap contract violation: request GET /crm/rest/v2/tags?page_size=5000 (listTags) [spec]: "
        "query parameter page_size: 5000 is greater than the maximum of 1000"
    ]
    # the request log points at it too
    assert [e.get("contract_violations") for e in sb.control.requests() if e["path"] == "/crm/rest/v2/tags"] == [1]
    assert describe_violations([v]) == (
        "  - request GET /crm/rest/v2/tags?page_size=5000 (listTags) [spec]: "
        "query parameter page_size: 5000 is greater than the maximum of 1000"
    )
    sb.control.clear_contract_violations()
    assert sb.control.contract_violations() == []
    api.get("/v2/tags", params={"page_size": -1})
    assert len(sb.control.contract_violations()) == 1
    sb.control.reset()
    assert sb.control.contract_violations() == []


def test_documented_calls_of_every_modelled_operation_conform(api: Api, sb: SandboxHandle) -> None:
    """One on-spec call of each operation the sandbox models, and the sandbox's answers: no violation."""
    a = api.post("/v2/contacts", _contact(), params={"duplicate_option": "Email", "fields": "id,email_addresses"})
    b = api.post("/v2/contacts", {"phone_numbers": [{"number": "555-1234", "field": "PHONE1"}], "given_name": "Bo"})
    tag = api.post("/v2/tags", {"name": "vip", "description": "d", "category": {"id": "3"}}).json()
    ids = [a.json()["id"], b.json()["id"]]
    calls = [
        api.post("/v2/contacts", _contact(), params={"duplicate_option": "Email"}),
        api.get(f"/v2/contacts/{ids[0]}", params={"fields": "id,tag_ids,given_name"}),
        api.get("/v2/contacts", params={"filter": "email==ADA@example.com", "page_size": 10}),
        api.get("/v2/contacts", params={"filter": f"ids=={ids[0]},{ids[1]}", "order_by": "id desc"}),
        api.s.patch(
            f"{api.base}/v2/contacts/{ids[1]}",
            params=[("update_mask", "given_name"), ("update_mask", "family_name")],
            json={"given_name": "Bob"},
            timeout=5,
        ),
        api.get("/v2/tags", params={"filter": "name==vip", "page_size": 1}),
        api.get(f"/v2/tags/{tag['id']}"),
        api.post(f"/v2/tags/{tag['id']}/contacts:applyTags", {"contact_ids": ids}),
        api.post(f"/v2/tags/{tag['id']}/contacts:removeTags", {"contact_ids": ids[:1]}),
        api.post("/v2/contacts:merge", {"contact_id": ids[0], "duplicate_contact_id": ids[1]}),
        api.s.delete(f"{api.base}/v2/contacts/{ids[0]}", timeout=5),
        api.s.delete(f"{api.base}/v2/tags/{tag['id']}", timeout=5),
        api.get(f"/v2/contacts/{ids[0]}"),  # 404 in Error shape
    ]
    assert [r.status_code for r in calls] == [200, 200, 200, 200, 200, 200, 200, 200, 204, 200, 204, 204, 404]
    assert sb.control.contract_violations() == []


def test_checker_failure_is_reported_not_silent(monkeypatch: pytest.MonkeyPatch) -> None:
    with start_sandbox(validate_contract=True) as sb:

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("checker broke")

        monkeypatch.setattr(sb.server.contract, "check_request", broken)
        api = Api(sb, token=sb.control.obtain_tokens(REDIRECT_URI)["access_token"])
        assert api.get("/v2/tags").status_code == 200
        found = sb.control.contract_violations()
        assert [(v["check"], v["message"]) for v in found] == [("checker-error", "RuntimeError('checker broke')")]


def test_spec_is_loaded_once_per_process() -> None:
    with start_sandbox(validate_contract=True) as one, start_sandbox(validate_contract=True) as two:
        for sb in (one, two):
            Api(sb).get("/v2/tags")
            assert len(sb.control.contract_violations()) == 1  # no credential
        assert one.server.contract.spec is two.server.contract.spec
    assert list(contract._loaded) == [contract.SPEC_PATH]


def test_runs_without_openapi_core_while_validation_is_off(tmp_path: Path) -> None:
    """A process where openapi-core cannot be imported: the sandbox serves REST, imports no validator,
    and refuses to switch validation on."""
    script = """
import sys
for name in ("openapi_core", "jsonschema_path", "openapi_spec_validator", "werkzeug"):
    sys.modules[name] = None  # importing them now raises ImportError
from keap_sandbox.testing import SandboxControlError, start_sandbox
import json, urllib.request
with start_sandbox() as sb:
    token = sb.control.obtain_tokens("https://app.example.test/cb")["access_token"]
    req = urllib.request.Request(sb.api_url + "/v2/tags", headers={"Authorization": "Bearer " + token})
    assert urllib.request.urlopen(req).status == 200
    try:
        sb.control.configure(validate_contract=True)
    except SandboxControlError as exc:
        print("refused", exc.status, exc.body["error"])
try:
    start_sandbox(validate_contract=True)
except Exception as exc:
    print("start refused:", type(exc).__name__)
print("loaded:", sorted(m for m in sys.modules if m.startswith(("openapi", "jsonschema_path")) and sys.modules[m]))
"""
    env = {**os.environ, "PYTHONPATH": str(SANDBOX_DIR)}
    cmd = [sys.executable, "-c", script]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=True)
    lines = out.stdout.splitlines()
    assert lines == [
        "refused 400 validate_contract needs openapi-core (pip install -r requirements-dev.txt)",
        "start refused: ConfigError",
        "loaded: []",
    ], out.stderr


def test_cli_validate_contract_flag() -> None:
    env = {**os.environ, "PYTHONPATH": str(SANDBOX_DIR)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "keap_sandbox", "--port", "0", "--no-throttle", "--validate-contract"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip().rsplit(" ", 1)[1]
        assert requests.get(url + "/_sandbox/config", timeout=5).json()["validate_contract"] is True
        assert requests.get(url + "/crm/rest/v2/tags", timeout=30).status_code == 401
        found = requests.get(url + "/_sandbox/contract", timeout=5).json()
        assert [v["message"] for v in found] == [
            "Security not found. Schemes not valid for any requirement: [['oauth2']]"
        ]
        proc.terminate()
        _, err = proc.communicate(timeout=10)
        assert "keap_sandbox.contract WARNING Keap contract violation: request GET /crm/rest/v2/tags" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_bad_contract_settings_rejected(sb: SandboxHandle) -> None:
    for bad in ({"validate_contract": "yes"}, {"gateway_error_shape": "html"}, {"contract_strict_properties": 1}):
        with pytest.raises(SandboxControlError) as exc:
            sb.control.configure(**bad)
        assert exc.value.status == 400


@pytest.mark.slow
def test_vendored_spec_is_keaps_file_and_valid_openapi_3_1() -> None:
    """The vendored file is byte for byte the one named in spec/README.md, and a valid OpenAPI 3.1
    document (openapi-spec-validator; about 10 s, so the sandbox skips this check at run time)."""
    digest = hashlib.sha256(SPEC.read_bytes()).hexdigest()
    assert digest in (SPEC.parent / "README.md").read_text()
    import yaml
    from openapi_spec_validator import validate

    spec = yaml.safe_load(SPEC.read_text())
    assert spec["openapi"] == "3.1.0" and spec["servers"] == [{"url": "https://api.keap.com/crm"}]
    validate(spec)


GATE_CONFTEST = """
import pytest
from keap_sandbox.testing import start_sandbox
from tests.support.contract import arm, check_after_call, fail_on_leftovers, fail_on_violations

@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    check_after_call(item)
    return result

@pytest.fixture(scope="session")
def server():
    with start_sandbox(validate_contract=True) as handle:
        yield handle

@pytest.fixture
def sb(server, request):
    def take():
        found = server.control.contract_violations()
        server.control.clear_contract_violations()
        return found
    fail_on_leftovers(request.node, take())
    arm(request, take)
    yield server
    fail_on_violations(request.node, take())
"""

GATE_TESTS = """
import pytest, requests

def test_on_spec(sb):
    assert requests.get(sb.api_url + "/v2/tags", headers={"Authorization": "Bearer x"}, timeout=5).status_code == 401

def test_off_spec(sb):
    requests.get(sb.api_url + "/v2/tags", params={"page_size": 5000}, headers={"Authorization": "Bearer x"}, timeout=5)

@pytest.mark.contract_violations_expected
def test_off_spec_on_purpose(sb):
    requests.delete(sb.api_url + "/v2/tags", headers={"Authorization": "Bearer x"}, timeout=5)
    assert len(sb.control.contract_violations()) == 1

def test_next(sb):
    pass
"""


def test_the_gate_fails_the_test_that_broke_the_contract(tmp_path: Path) -> None:
    """The fixtures' gate (tests/support/contract.py) in a pytest run of its own."""
    (tmp_path / "conftest.py").write_text(GATE_CONFTEST)
    (tmp_path / "test_gate.py").write_text(GATE_TESTS)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nmarkers =\n    contract_violations_expected: on purpose\n"
    )
    repo = SANDBOX_DIR.parent
    env = {**os.environ, "PYTHONPATH": f"{SANDBOX_DIR}{os.pathsep}{repo}"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False)
    assert out.returncode == 1, out.stdout
    assert "PASSED test_gate.py::test_on_spec" in out.stdout
    # the test itself fails (not its teardown), with the violation
    assert "FAILED test_gate.py::test_off_spec - Failed" in out.stdout
    assert "test_gate.py::test_off_spec: 1 request(s)/answer(s) broke Keap's v2 contract" in out.stdout
    assert "query parameter page_size: 5000 is greater than the maximum of 1000" in out.stdout
    assert "PASSED test_gate.py::test_off_spec_on_purpose" in out.stdout
    assert "PASSED test_gate.py::test_next" in out.stdout
    assert "1 failed, 3 passed in" in out.stdout
