"""Each function's DynamoDB and Lambda permissions (template.yaml) against what it really does.

Every function runs its real paths in-process against moto and the Keap sandbox while every DynamoDB call
pynamodb makes is recorded (operation, table, partition keys) and checked against that function's policy
statements, evaluated the way IAM does for these (Allow statements, the action, the table's ARN, and
``ForAllValues:StringLike`` on the leading keys); so is every Lambda API call (the actions queue's event source
mapping: its ARN, and ``lambda:FunctionArn``). moto does not enforce IAM; this test does.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from keaplink import root
from keaplink_dev.local import flows
from keaplink_dev.local.handlers import load_handler
from keaplink_dev.local.lambda_events import FakeContext, basic
from keaplink_dev.local.lambda_local import register_actions_function
from keaplink_dev.local.sqs_poller import drain, poll_once, send
from keaplink_dev.local.template import load_template
from tests.support.outage import SCHEDULED_EVENT

FUNCTIONS = {"admin": "AdminFunction", "callback": "CallbackFunction", "refresh": "RefreshFunction",
             "actions": "ActionsFunction"}
TABLES = ("ConnectionTable", "DataTable")


def template() -> dict[str, Any]:
    return load_template()


def dynamodb_statements(function: str) -> list[dict[str, Any]]:
    policies = template()["Resources"][function]["Properties"]["Policies"]
    statements = [st for p in policies if isinstance(p, dict) and "Statement" in p for st in p["Statement"]]
    return [st for st in statements if any(str(a).startswith("dynamodb:") for a in st["Action"])]


def table_of(resource: Any) -> str | None:
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        target = resource["Fn::GetAtt"]
        name, attr = target if isinstance(target, list) else str(target).split(".", 1)
        return str(name) if attr == "Arn" else None
    return None


def allowed(function: str, operation: str, table: str, keys: list[str] | None) -> bool:
    """IAM's answer for one call, from the function's Allow statements (nothing here uses Deny)."""
    for st in dynamodb_statements(function):
        if st["Effect"] != "Allow" or f"dynamodb:{operation}" not in st["Action"] or table_of(st["Resource"]) != table:
            continue
        condition = st.get("Condition", {})
        patterns = condition.get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys")
        if set(condition) - {"ForAllValues:StringLike"}:
            continue  # a condition this evaluator does not know: treat as not granting
        if patterns is None:
            return True
        if keys is None:
            continue  # e.g. a Scan: "for all" over no keys would pass in IAM, so it must never be granted here
        if all(any(fnmatch.fnmatchcase(k, p) for p in patterns) for k in keys):
            return True
    return False


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


ACTIONS_MAPPING = {"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:event-source-mapping:"
                              "${ActionsFunctionQueue}"}


def lambda_statements(function: str) -> list[dict[str, Any]]:
    """The function's Lambda statements: its own Policies and every AWS::IAM::Policy attached to its role."""
    resources = template()["Resources"]
    statements = [st for r in resources.values() if r["Type"] == "AWS::IAM::Policy"
                  and {"Ref": f"{function}Role"} in r["Properties"]["Roles"]
                  for st in r["Properties"]["PolicyDocument"]["Statement"]]
    policies = resources[function]["Properties"].get("Policies", [])
    statements += [st for p in policies if isinstance(p, dict) and "Statement" in p for st in p["Statement"]]
    return [st for st in statements if any(str(a).startswith("lambda:") for a in as_list(st["Action"]))]


def lambda_allowed(function: str, operation: str, mapping_of: str | None) -> bool:
    """IAM's answer for one Lambda call; ``mapping_of``: the function (logical id) whose event source mapping the
    call names, None for a call without one (ListEventSourceMappings)."""
    for st in lambda_statements(function):
        if st["Effect"] != "Allow" or f"lambda:{operation}" not in as_list(st["Action"]):
            continue
        if st["Resource"] != "*" and not (st["Resource"] == ACTIONS_MAPPING and mapping_of == "ActionsFunction"):
            continue
        condition = st.get("Condition", {})
        if set(condition) - {"StringEquals"} or set(condition.get("StringEquals", {})) - {"lambda:FunctionArn"}:
            continue  # a condition this evaluator does not know: treat as not granting
        wanted = condition.get("StringEquals", {}).get("lambda:FunctionArn")
        if wanted is not None and wanted != {"Fn::GetAtt": ["ActionsFunction", "Arn"]}:
            continue
        if wanted is not None and mapping_of != "ActionsFunction":
            continue
        return True
    return False


def keys_of(operation: str, kwargs: dict[str, Any]) -> list[str] | None:
    if "Key" in kwargs:
        return [kwargs["Key"]["pk"]["S"]]
    if "Item" in kwargs:
        return [kwargs["Item"]["pk"]["S"]]
    if operation in ("BatchGetItem", "BatchWriteItem"):
        found = []
        for spec in kwargs["RequestItems"].values():
            entries = spec["Keys"] if isinstance(spec, dict) else [e.get("PutRequest", {}).get("Item") or
                                                                   e["DeleteRequest"]["Key"] for e in spec]
            found += [entry["pk"]["S"] for entry in entries]
        return found
    return None  # Scan, Query (not used: would need its key condition read here), DescribeTable …


class Recorded(list[tuple[str, str, str, list[str] | None]]):
    """(function, operation, table, keys) of every DynamoDB call; ``lambda_calls``: (function, operation, the
    event source mapping's UUID or None) of every Lambda API call."""

    def __init__(self) -> None:
        super().__init__()
        self.lambda_calls: list[tuple[str, str, str | None]] = []


@pytest.fixture
def recorded(aws, monkeypatch) -> Iterator[Recorded]:  # type: ignore[no-untyped-def]
    """Every DynamoDB and Lambda API call made while a function's handler runs, by function."""
    from botocore.client import BaseClient
    from pynamodb.connection.base import Connection

    calls = Recorded()
    running: list[str] = []
    tables = {aws.connection_table: "ConnectionTable", aws.data_table: "DataTable"}
    real_call = Connection._make_api_call

    def record(self: Connection, operation: str, kwargs: dict[str, Any]) -> Any:
        if running:
            names = [kwargs["TableName"]] if "TableName" in kwargs else list(kwargs.get("RequestItems", {}))
            for name in names:
                calls.append((running[-1], operation, tables.get(name, name), keys_of(operation, kwargs)))
        return real_call(self, operation, kwargs)

    def attributed(function: str, handler: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            running.append(FUNCTIONS[function])
            try:
                return handler(*args, **kwargs)
            finally:
                running.pop()

        return run

    real_client_call = BaseClient._make_api_call  # type: ignore[attr-defined]

    def record_lambda(self: BaseClient, operation: str, kwargs: dict[str, Any]) -> Any:
        if running and self.meta.service_model.service_name == "lambda":
            calls.lambda_calls.append((running[-1], operation, kwargs.get("UUID")))
        return real_client_call(self, operation, kwargs)

    monkeypatch.setattr(Connection, "_make_api_call", record)
    monkeypatch.setattr(BaseClient, "_make_api_call", record_lambda)
    for function in FUNCTIONS:
        module = load_handler(function)
        monkeypatch.setattr(module, "lambda_handler", attributed(function, module.lambda_handler))
    yield calls


def signup(user: str) -> str:
    return json.dumps({"type": "user.signed_up", "user_id": user, "email": f"{user}@example.com"})


def run_every_path(aws, sandbox) -> None:  # type: ignore[no-untyped-def]
    """What each function does in a life: sign-ins right and wrong, a lockout, connect, refresh now, a token
    import, the hourly check, batches while disconnected (hold), connected, after a 401, and dead letters."""
    actions = load_handler("actions").lambda_handler
    send(aws, signup("early"))
    poll_once(aws, actions)  # not connected: the queue is held
    flows.call("admin", "GET", "/")
    for _ in range(11):  # wrong passwords, then the lockout, on both API functions
        flows.anonymous("admin", "GET", "/", headers={"Authorization": basic("admin", "wrong-password-x")},
                        source_ip="203.0.113.5")
    flows.anonymous("callback", "GET", "/callback", headers={"Authorization": basic("admin", "nope-nope-nope")},
                    source_ip="203.0.113.6")
    flows.connect()  # /connect (admin), /callback (callback): state issued, consumed; token stored; probe due now
    actions(dict(SCHEDULED_EVENT), FakeContext())  # the minute check: Keap serves, the hold is lifted, queue resumed
    flows.call("admin", "POST", "/refresh")
    pair = sandbox.control("POST", "tokens")
    flows.call("admin", "POST", "/tokens", headers={"Content-Type": "application/x-www-form-urlencoded"},
               body=urlencode(pair))
    load_handler("refresh").lambda_handler({"force": True}, FakeContext())
    send(aws, signup("u1"), json.dumps({"type": "button.pressed", "user_id": "u1"}), "{broken")
    drain(aws, actions)
    sandbox.advance(86400 + 60)  # Keap answers 401: the actions refresh through the refresh path
    send(aws, json.dumps({"type": "contact.tag", "user_id": "u1", "tag": "vip"}))
    drain(aws, actions)
    flows.call("admin", "GET", "/status.json")


def test_every_dynamodb_call_of_every_function_is_allowed_by_its_policy(aws, sandbox, recorded, monkeypatch) -> None:
    monkeypatch.setenv("ACTIONS_FUNCTION", register_actions_function(aws))
    root.reset()
    run_every_path(aws, sandbox)
    by_function = {f: [c for c in recorded if c[0] == f] for f in FUNCTIONS.values()}
    assert all(by_function.values()), {f: len(c) for f, c in by_function.items()}  # each function was seen
    refused = sorted({(f, op, table, tuple(k or ["<no key>"])) for f, op, table, k in recorded
                      if not allowed(f, op, table, k)})
    assert refused == []
    prefixes = {(f, table, key.split("#")[0]) for f, _, table, keys in recorded for key in keys or []}
    # The paths really exercised the prefixes this test is about.
    assert {("AdminFunction", "ConnectionTable", p) for p in ("CONN", "STATE", "AUTHFAIL", "TIMELINE")} <= prefixes
    assert {("CallbackFunction", "ConnectionTable", p) for p in ("CONN", "STATE", "TIMELINE")} <= prefixes
    assert {("RefreshFunction", "ConnectionTable", p) for p in ("CONN", "TIMELINE")} <= prefixes
    assert {("ActionsFunction", "ConnectionTable", "CONN"), ("ActionsFunction", "ConnectionTable", "TIMELINE"),
            ("ActionsFunction", "DataTable", "USER"), ("ActionsFunction", "DataTable", "TAG")} <= prefixes


def test_every_lambda_call_of_every_function_is_allowed_by_its_role(aws, sandbox, recorded, monkeypatch) -> None:
    name = register_actions_function(aws)
    monkeypatch.setenv("ACTIONS_FUNCTION", name)
    root.reset()
    run_every_path(aws, sandbox)
    lam = aws.client("lambda")

    def mapping_of(uuid: str | None) -> str | None:
        if uuid is None:
            return None
        arn = lam.get_event_source_mapping(UUID=uuid)["FunctionArn"]
        return "ActionsFunction" if arn.endswith(f":function:{name}") else arn

    refused = sorted({(f, op) for f, op, uuid in recorded.lambda_calls if not lambda_allowed(f, op, mapping_of(uuid))})
    assert refused == []
    by_function = {(f, op) for f, op, _ in recorded.lambda_calls}
    # The actions function held the queue and resumed it; no other function called Lambda at all.
    assert ("ActionsFunction", "UpdateEventSourceMapping") in by_function
    assert {f for f, _ in by_function} == {"ActionsFunction"}


@pytest.mark.parametrize("function", ["AdminFunction", "CallbackFunction", "RefreshFunction"])
def test_only_the_actions_function_may_touch_the_queues_event_source_mapping(function: str) -> None:
    """The callback is internet-facing: UpdateEventSourceMapping also changes a mapping's filters (and SQS deletes
    what a filter drops). A reconnect makes the hold's probe due (HOLD#) instead; the minute check resumes."""
    for operation in ("UpdateEventSourceMapping", "GetEventSourceMapping", "ListEventSourceMappings",
                      "DeleteEventSourceMapping", "CreateEventSourceMapping"):
        assert not lambda_allowed(function, operation, "ActionsFunction"), operation
    assert lambda_statements(function) == []


def test_the_actions_function_may_change_its_own_mapping_only() -> None:
    assert lambda_allowed("ActionsFunction", "UpdateEventSourceMapping", "ActionsFunction")
    assert not lambda_allowed("ActionsFunction", "UpdateEventSourceMapping", "SomeOtherFunction")
    assert not lambda_allowed("ActionsFunction", "DeleteEventSourceMapping", "ActionsFunction")
    assert not lambda_allowed("ActionsFunction", "CreateEventSourceMapping", "ActionsFunction")
    [update] = [st for st in lambda_statements("ActionsFunction")
                if "lambda:UpdateEventSourceMapping" in as_list(st["Action"])]
    assert update["Condition"] == {"StringEquals": {"lambda:FunctionArn": {"Fn::GetAtt": ["ActionsFunction", "Arn"]}}}
    assert update["Resource"] == ACTIONS_MAPPING


@pytest.mark.parametrize(("function", "operation", "table", "key"), [
    ("ActionsFunction", "GetItem", "ConnectionTable", "STATE#abc"),  # the actions never see OAuth states …
    ("ActionsFunction", "UpdateItem", "ConnectionTable", "AUTHFAIL#abc"),  # … nor sign-in counters
    ("RefreshFunction", "DeleteItem", "ConnectionTable", "STATE#abc"),
    ("RefreshFunction", "GetItem", "ConnectionTable", "AUTHFAIL#abc"),
    ("AdminFunction", "GetItem", "DataTable", "USER#u1"),  # the data table is the actions' alone
    ("CallbackFunction", "PutItem", "DataTable", "TAG#vip"),
    ("RefreshFunction", "GetItem", "DataTable", "USER#u1"),
    ("AdminFunction", "PutItem", "ConnectionTable", "HOLD#default"),  # holds: read-only for the admin …
    ("AdminFunction", "PutItem", "ConnectionTable", "QUOTA#default"),
    ("CallbackFunction", "UpdateItem", "ConnectionTable", "QUOTA#default"),  # … the callback writes HOLD# only
    ("AdminFunction", "GetItem", "ConnectionTable", "SOMETHING#else"),
])
def test_what_a_function_must_not_touch_is_refused(function: str, operation: str, table: str, key: str) -> None:
    assert not allowed(function, operation, table, [key])


@pytest.mark.parametrize("function", sorted(FUNCTIONS.values()))
def test_no_function_may_scan_or_use_a_table_wide_policy(function: str) -> None:
    for table in TABLES:
        assert not allowed(function, "Scan", table, None)
    policies = template()["Resources"][function]["Properties"]["Policies"]
    assert not [p for p in policies if isinstance(p, dict) and any(k.startswith("DynamoDB") for k in p)]


@pytest.mark.parametrize(("function", "operation", "key"), [
    ("AdminFunction", "GetItem", "HOLD#default"), ("AdminFunction", "GetItem", "QUOTA#default"),
    ("CallbackFunction", "PutItem", "HOLD#default"), ("CallbackFunction", "GetItem", "QUOTA#default"),
    ("RefreshFunction", "UpdateItem", "HOLD#default"), ("RefreshFunction", "UpdateItem", "QUOTA#default"),
    ("ActionsFunction", "PutItem", "HOLD#default"), ("ActionsFunction", "UpdateItem", "QUOTA#default"),
])
def test_queue_hold_items_are_open_to_the_functions_that_need_them(function: str, operation: str, key: str) -> None:
    assert allowed(function, operation, "ConnectionTable", [key])
