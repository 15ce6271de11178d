"""End to end: the toy SAM app (tests/devtools/fixtures/toy) built, deployed and run on ministack."""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from keaplink_dev.local import invoke as invoke_mod
from keaplink_dev.local.aws import client, physical_id, stack_functions
from keaplink_dev.local.deploy import sam_deploy
from keaplink_dev.local.logs import Invocation, follow_invocations
from keaplink_dev.local.runtime import python_version

from .conftest import TOY_SECRET, TOY_STACK, ToyStack

pytestmark = pytest.mark.e2e


def _request(url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None):
    """One HTTP request that does not follow redirects: (status, headers list, body)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request(method, u.path + (f"?{u.query}" if u.query else ""), body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, resp.getheaders(), data


def _wait(predicate, timeout: float, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def test_deploy_outputs_and_noecho(toy_stack: ToyStack) -> None:
    o = toy_stack.outputs
    assert {"ApiId", "QueueUrl", "DlqUrl", "TableName", "KeyArn", "SecretArn", "TopicArn"} <= o.keys()
    params = client("cloudformation", toy_stack.endpoint).describe_stacks(StackName=TOY_STACK)["Stacks"][0][
        "Parameters"
    ]
    assert {p["ParameterKey"]: p["ParameterValue"] for p in params}["ClientSecret"] == "****"
    assert o["SecretArn"].startswith("arn:aws:secretsmanager:")  # !GetAtt Secret.Id
    ttl = client("dynamodb", toy_stack.endpoint).describe_time_to_live(TableName=o["TableName"])
    assert ttl["TimeToLiveDescription"] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    assert set(stack_functions(toy_stack.endpoint, TOY_STACK).values()) == {
        "ApiFunction",
        "WorkerFunction",
        "TickFunction",
    }


def test_rest_api_runs_function_with_layer_and_services(toy_stack: ToyStack) -> None:
    status, headers, body = _request(
        toy_stack.api_base + "/refresh?q=1&q=2",
        method="POST",
        body=b'{"k": 1}',
        headers={"Authorization": "Bearer tok123", "Cookie": "sid=1; other=2", "Content-Type": "application/json"},
    )
    assert status == 200, body
    assert dict(headers)["X-Toy"] == "yes"
    data = json.loads(body)
    event = data["event"]
    assert event["httpMethod"] == "POST" and event["path"] == "/refresh" and event["resource"] == "/refresh"
    assert event["headers"]["authorization"] == "Bearer tok123"
    assert event["headers"]["cookie"] == "sid=1; other=2"
    assert event["multiValueQueryStringParameters"] == {"q": ["1", "2"]}
    assert event["body"] == '{"k": 1}'
    # function process: ministack's venv python, layer on sys.path, env from template + emulator
    assert "/.tools/ministack/" in data["python"] and data["version"].startswith(python_version() + ".")
    assert any(p.endswith("/layer_0/python") for p in data["sys_path"])
    env = data["env"]
    assert env["AWS_ENDPOINT_URL"] == toy_stack.endpoint
    assert env["CLIENT_SECRET"] == TOY_SECRET
    assert env["TABLE_NAME"] == toy_stack.outputs["TableName"]
    # pynamodb (layer) -> DynamoDB, KMS encrypt/decrypt, Secrets Manager generated secret
    assert data["info"] == {"dynamo": '{"k": 1}', "kms": "hello", "secret_keys": ["password", "username"]}


def test_rest_api_redirect_cookies_and_path_params(toy_stack: ToyStack) -> None:
    status, headers, body = _request(toy_stack.api_base + "/callback?code=abc&state=x%20y")
    assert status == 302
    assert ("Location", "https://example.invalid/done?x=1") in headers
    assert [v for k, v in headers if k.lower() == "set-cookie"] == ["a=1; Path=/; HttpOnly", "b=2; Path=/"]
    assert body == b"<html><body>Redirecting&hellip;</body></html>"

    status, _, body = _request(toy_stack.api_base + "/items/abc-1?z=9")
    assert status == 200
    event = json.loads(body)["event"]
    assert event["pathParameters"] == {"id": "abc-1"} and event["resource"] == "/items/{id}"
    assert event["queryStringParameters"] == {"z": "9"}

    status, _, _ = _request(toy_stack.api_base + "/nope")
    assert status in (403, 404)


def _item(toy_stack: ToyStack, pk: str) -> dict[str, Any] | None:
    got = client("dynamodb", toy_stack.endpoint).get_item(
        TableName=toy_stack.outputs["TableName"], Key={"pk": {"S": pk}}
    )
    item: dict[str, Any] | None = got.get("Item")
    return item


def test_sqs_runs_function_partial_failure_goes_to_dlq(toy_stack: ToyStack) -> None:
    sqs = client("sqs", toy_stack.endpoint)
    ok_id = sqs.send_message(QueueUrl=toy_stack.outputs["QueueUrl"], MessageBody='{"ok": 1}')["MessageId"]
    bad_id = sqs.send_message(QueueUrl=toy_stack.outputs["QueueUrl"], MessageBody='{"fail": 1}')["MessageId"]
    assert _wait(lambda: _item(toy_stack, f"sqs#{ok_id}#1"), 15), "WorkerFunction never processed the message"

    def in_dlq() -> list[dict[str, Any]]:
        msgs = sqs.receive_message(QueueUrl=toy_stack.outputs["DlqUrl"], MaxNumberOfMessages=10).get("Messages", [])
        return [m for m in msgs if m["MessageId"] == bad_id]

    # VisibilityTimeout 5 s, maxReceiveCount 2: retried once, then moved to the DLQ
    assert _wait(in_dlq, 30, 1.0), "failed message did not reach the DLQ"
    assert _item(toy_stack, f"sqs#{bad_id}#2"), "failed message was not retried"
    assert not _item(toy_stack, f"sqs#{ok_id}#2"), "successful message was redelivered"


def test_event_source_mapping_can_be_paused(toy_stack: ToyStack) -> None:
    lam, sqs = client("lambda", toy_stack.endpoint), client("sqs", toy_stack.endpoint)
    worker = physical_id(toy_stack.endpoint, TOY_STACK, "WorkerFunction")
    uuid = lam.list_event_source_mappings(FunctionName=worker)["EventSourceMappings"][0]["UUID"]
    assert lam.update_event_source_mapping(UUID=uuid, Enabled=False)["State"] in ("Disabled", "Disabling")
    try:
        msg_id = sqs.send_message(QueueUrl=toy_stack.outputs["QueueUrl"], MessageBody="paused")["MessageId"]
        time.sleep(3)
        assert not _item(toy_stack, f"sqs#{msg_id}#1")
    finally:
        assert lam.update_event_source_mapping(UUID=uuid, Enabled=True)["State"] in ("Enabled", "Enabling")
    assert _wait(lambda: _item(toy_stack, f"sqs#{msg_id}#1"), 15)


def test_invoke_cli_and_follow_logs(toy_stack: ToyStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    since = int(time.time() * 1000) - 1000
    event = tmp_path / "direct.json"
    event.write_text(json.dumps({"direct": True, "body": "from-cli"}))
    rc = invoke_mod.main(["ApiFunction", str(event), "--stack", TOY_STACK, "--endpoint", toy_stack.endpoint])
    out = capsys.readouterr().out
    assert rc == 0
    # ministack's LogResult is the handler's output only (AWS adds START/END/REPORT lines)
    assert '"dynamo": "from-cli"' in out and '"message":"done"' in out

    bad = tmp_path / "bad.json"
    bad.write_text('{"Records": 5}')
    result = invoke_mod.invoke(toy_stack.endpoint, TOY_STACK, "WorkerFunction", bad, out=None)
    assert result["function_error"] == "Unhandled"
    assert result["payload"]["errorType"] and "Traceback" in result["log"]

    assert invoke_mod.main(["WorkerFunction", str(bad), "--stack", TOY_STACK, "--endpoint", toy_stack.endpoint]) == 1
    capsys.readouterr()

    stop = threading.Event()
    found: dict[str, Invocation] = {}

    def collect() -> None:
        for inv in follow_invocations(
            toy_stack.endpoint, stack_name=TOY_STACK, since_ms=since, poll_interval=0.5, stop=stop
        ):
            found.setdefault(f"{inv.label}:{inv.status}", inv)
            if {"ApiFunction:ok", "WorkerFunction:error"} <= found.keys():
                stop.set()

    t = threading.Thread(target=collect, daemon=True)
    t.start()
    t.join(20)
    stop.set()
    assert {"ApiFunction:ok", "WorkerFunction:error"} <= found.keys(), found.keys()
    assert found["ApiFunction:ok"].duration_ms is not None
    assert found["ApiFunction:ok"].summary().split()[1] == "ApiFunction"


def test_redeploy_updates_stack(toy_stack: ToyStack) -> None:
    outputs = sam_deploy(toy_stack.app_dir, toy_stack.endpoint, TOY_STACK, {"ClientSecret": "second", "Stage": "dev2"})
    assert outputs["ApiId"] == toy_stack.outputs["ApiId"]
    assert outputs["TableName"] == toy_stack.outputs["TableName"]
    status, _, body = _request(toy_stack.api_base + "/")
    assert status == 200
    env = json.loads(body)["env"]
    assert env["CLIENT_SECRET"] == "second" and env["STAGE"] == "dev2"


def test_zz_stop_kills_ministack_and_function_processes(toy_stack: ToyStack) -> None:
    pgid = toy_stack.ms.pid
    assert pgid is not None
    toy_stack.ms.stop()
    left = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    left.append(entry.name)
            except ProcessLookupError:
                continue
    assert left == []
    assert not list((toy_stack.ms.workdir / "tmp").glob("ministack-lambda-*"))
    with pytest.raises(OSError):
        urllib.request.urlopen(toy_stack.endpoint + "/_ministack/ready", timeout=2)
