"""AWS's control plane as it behaves — mappings that change in seconds and refuse updates meanwhile, throttled
calls, empty short polls, attributes counted toward a message's size — through the fault proxy
(keaplink_dev.local.aws_faults) in front of the moto server, with the Keap sandbox over HTTP and simulated minutes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import pytest
from botocore.exceptions import ClientError

from keaplink import root
from keaplink.client import pause as operator
from keaplink.client.cli import main as cli
from keaplink_dev.local import flows
from keaplink_dev.local.aws_faults import FaultProxy, Faults
from keaplink_dev.local.sqs_poller import dlq_messages, queue_depth, send
from tests.support.outage import ActionsFunction, SimTime, actions_function


def signup(user: str) -> str:
    return json.dumps({"type": "user.signed_up", "user_id": user, "email": f"{user}@example.com"})


def contacts(sandbox) -> list[dict]:  # type: ignore[no-untyped-def]
    return sandbox.control("GET", "state")["contacts"]


@pytest.fixture
def faults(aws, sandbox, monkeypatch) -> Iterator[tuple[ActionsFunction, Faults]]:  # type: ignore[no-untyped-def]
    """The actions function with every AWS call of keaplink's (and of the played event source) through the proxy."""
    sim = SimTime(sandbox)
    spec = Faults(clock=sim.now)
    proxy = FaultProxy(aws.endpoint, spec).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    fn = actions_function(replace(aws, endpoint=proxy.endpoint), sandbox, monkeypatch, sim)
    yield fn, spec
    proxy.stop()


def state_through_proxy(fn: ActionsFunction) -> str:
    mappings = fn.aws.client("lambda").list_event_source_mappings(FunctionName=fn.name)["EventSourceMappings"]
    return str(mappings[0]["State"])


def test_a_slow_and_refused_lift_keeps_the_hold_until_the_mapping_is_enabled(faults, sandbox) -> None:  # type: ignore[no-untyped-def]
    fn, spec = faults
    spec.transition_s = 150  # each change takes two and a half simulated minutes
    send(fn.aws, signup("u1"), signup("u2"))
    assert fn.batch() == 2  # not connected: held, the mapping disabled (Disabling for a while)
    assert state_through_proxy(fn) == "Disabling"
    flows.connect()  # the callback only makes the probe due
    seen: list[str] = []
    for _ in range(12):
        spec.throttle_next = 1 if len(seen) == 3 else 0  # a throttled control-plane call on the way
        result = fn.minute(polls=5, real_pause_s=0.05)
        seen.append(result.get("mapping", ""))
        view = flows.status_json()["queue"]
        if state_through_proxy(fn) != "Enabled":
            assert view["held"], "the queue was paused without a hold record"
        if not view["held"] and len(contacts(sandbox)) == 2:
            break
    assert seen[0] == "wait" and seen[-1] == "clear", seen  # Disabling, …, Enabling, …, Enabled: the record goes
    assert spec.counts.get("mapping_updates") == 2 and spec.counts.get("throttled") == 1
    assert dlq_messages(fn.aws) == []
    assert len(contacts(sandbox)) == 2 and queue_depth(fn.aws, fn.aws.queue_url) == 0
    assert flows.status_json()["queue"]["mapping"]["state"] == "Enabled"


def test_an_update_refused_while_the_mapping_changes_is_retried_next_minute(faults, sandbox) -> None:  # type: ignore[no-untyped-def]
    fn, spec = faults
    spec.transition_s = 90
    lam = fn.aws.client("lambda")
    uuid = lam.list_event_source_mappings(FunctionName=fn.name)["EventSourceMappings"][0]["UUID"]
    lam.update_event_source_mapping(UUID=uuid, Enabled=False)  # paused by hand, no hold
    with pytest.raises(ClientError) as refused:
        lam.update_event_source_mapping(UUID=uuid, Enabled=True)
    assert refused.value.response["Error"]["Code"] == "ResourceInUseException"
    assert fn.minute()["mapping"] == "wait"  # Disabling: not touched
    assert fn.minute()["mapping"] == "resume"  # Disabled with no hold: enabled again
    events = [e for e in flows.status_json()["timeline"] if e["kind"] == "queue_resumed"]
    assert events and "without a hold" in events[0]["detail"]


def test_the_reconciler_works_in_api_key_mode(faults, aws, sandbox, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fn, _ = faults
    key = sandbox.control("POST", "keys", json={"kind": "sak"})["key"]
    aws.client("secretsmanager").put_secret_value(SecretId=aws.credentials_secret,
                                                  SecretString=json.dumps({"api_key": key}))
    monkeypatch.setenv("KEAP_AUTH_MODE", "api_key")
    root.reset()
    lam = fn.aws.client("lambda")
    uuid = lam.list_event_source_mappings(FunctionName=fn.name)["EventSourceMappings"][0]["UUID"]
    lam.update_event_source_mapping(UUID=uuid, Enabled=False)  # e.g. a lift of an older version that failed
    assert fn.minute() == {"outcome": "not_held", "mapping": "resume"} and fn.enabled()
    send(fn.aws, signup("u1"))
    fn.minute(polls=3)
    assert len(contacts(sandbox)) == 1


def test_a_batch_that_cannot_open_holds_instead_of_draining(faults, aws, sandbox, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fn, _ = faults
    monkeypatch.setenv("KEAP_AUTH_MODE", "api_key")
    monkeypatch.setenv("KEAP_CREDENTIALS_SECRET", "keaplink-no-such-secret")  # Secrets Manager refuses
    root.reset()
    send(fn.aws, signup("u1"))
    assert fn.batch() == 1
    view = flows.status_json()["queue"]
    assert view["held"] and view["reason"] == "opening_failed" and "ResourceNotFound" in view["detail"]
    assert dlq_messages(fn.aws) == [] and fn.minute()["outcome"] == "held"


def test_api_key_mode_with_an_empty_key_holds_with_a_clear_reason(faults, aws, sandbox, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fn, _ = faults
    aws.client("secretsmanager").put_secret_value(SecretId=aws.credentials_secret,
                                                  SecretString=json.dumps({"api_key": ""}))
    monkeypatch.setenv("KEAP_AUTH_MODE", "api_key")
    root.reset()
    send(fn.aws, signup("u1"))
    fn.batch()
    view = flows.status_json()["queue"]
    assert view["held"] and view["reason"] == "config_error" and "api_key is not set" in view["detail"]
    assert dlq_messages(fn.aws) == []


def test_an_operator_pauses_and_resumes_with_keaplink(faults, aws, sandbox, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    fn, _ = faults
    flows.connect()
    monkeypatch.setenv("KEAPLINK_CONNECTION_TABLE", aws.connection_table)
    assert cli(["pause", "--reason", "Keap maintenance tonight"]) == 0
    assert fn.minute()["mapping"] == "pause" and not fn.enabled()
    send(fn.aws, signup("u1"))
    for _ in range(20):  # the probe never lifts an operator's pause
        assert fn.minute()["outcome"] == "held"
    view = flows.status_json()["queue"]
    assert view["reason"] == "paused_by_operator" and view["detail"] == "Keap maintenance tonight"
    assert view["mapping"]["state"] == "Disabled"
    page = flows.call("admin", "GET", "/")["body"]
    assert "paused by an operator" in page and "Event source</dt><dd>Disabled" in page
    assert contacts(sandbox) == []
    assert cli(["resume"]) == 0
    assert cli(["resume"]) == 1  # nothing left to resume
    fn.minute(polls=3)
    assert not flows.status_json()["queue"]["held"] and len(contacts(sandbox)) == 1
    assert operator.REASON == "paused_by_operator"


def test_short_polls_may_answer_nothing_and_attributes_count_toward_the_size(faults) -> None:  # type: ignore[no-untyped-def]
    fn, spec = faults
    sqs = fn.aws.client("sqs")
    send(fn.aws, signup("u1"))
    spec.empty_short_poll_rate = 1.0
    assert sqs.receive_message(QueueUrl=fn.aws.queue_url, WaitTimeSeconds=0).get("Messages", []) == []
    assert sqs.receive_message(QueueUrl=fn.aws.queue_url, WaitTimeSeconds=1).get("Messages")  # long poll: there
    body = "x" * (262_144 - 100)
    sqs.send_message(QueueUrl=fn.aws.queue_url, MessageBody=body)  # fits without attributes
    with pytest.raises(ClientError) as too_long:
        sqs.send_message(QueueUrl=fn.aws.queue_url, MessageBody=body,
                         MessageAttributes={"keaplink-reason": {"DataType": "String", "StringValue": "r" * 200}})
    assert too_long.value.response["Error"]["Code"] == "InvalidParameterValue"
