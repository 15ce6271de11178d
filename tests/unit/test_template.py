"""template.yaml's numbers that must agree with each other and with the code (one place each, held by tests)."""

from __future__ import annotations

from typing import Any

import pytest

from keaplink.config import DEFAULT_ACTIONS_CONTAINERS, DEFAULT_RATE_BUDGET, DEFAULT_REFRESH_LEASE_S
from tests.support.template import functions as all_functions
from tests.support.template import load_template


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return all_functions()


def test_the_refresh_lease_outlives_every_function_that_may_hold_it(template: dict[str, Any]) -> None:
    default_timeout = template["Globals"]["Function"]["Timeout"]
    timeouts = {name: props.get("Timeout", default_timeout) for name, props in functions(template).items()}
    lease = float(template["Globals"]["Function"]["Environment"]["Variables"]["REFRESH_LEASE_S"])
    assert lease > max(timeouts.values()), timeouts
    assert lease == DEFAULT_REFRESH_LEASE_S  # the code's default is the template's value


def test_maximum_concurrency_is_one_free_parameter_under_one_shared_keap_budget(template: dict[str, Any]) -> None:
    actions = functions(template)["ActionsFunction"]
    maximum = actions["Events"]["Queue"]["Properties"]["ScalingConfig"]["MaximumConcurrency"]
    variables = actions["Environment"]["Variables"]
    # One parameter sets the event source and the local share's divisor: nothing to keep in sync by hand.
    assert maximum == variables["ACTIONS_CONTAINERS"] == {"Ref": "ActionsMaxConcurrency"}
    assert template["Parameters"]["ActionsMaxConcurrency"]["Default"] == DEFAULT_ACTIONS_CONTAINERS
    # The rate is the deployment's, not a container's: no per-container split to keep in sync.
    assert "KEAP_MAX_RPS" not in variables
    assert variables["KEAP_RATE_BUDGET"] == {"Fn::If": ["IsApiKeyMode", "3.8", f"{DEFAULT_RATE_BUDGET:g}"]}


def test_the_dlq_keeps_a_moved_message_long_after_the_queue_would_have(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    queue = resources["ActionsQueue"]["Properties"]["MessageRetentionPeriod"]
    dlq = resources["ActionsDeadLetterQueue"]["Properties"]["MessageRetentionPeriod"]
    # A moved message keeps its enqueue time: it stays in the DLQ for (dlq - queue) at least.
    assert dlq <= 14 * 86400 and dlq - queue >= 7 * 86400


def test_alarms_on_waiting_messages_and_long_holds_say_when_it_is_over(template: dict[str, Any]) -> None:
    alarms = {name: r["Properties"] for name, r in template["Resources"].items()
              if r["Type"] == "AWS::CloudWatch::Alarm"}
    by_metric = {a["MetricName"]: a for a in alarms.values()}
    assert by_metric["ApproximateAgeOfOldestMessage"]["Dimensions"][0]["Value"] == {
        "Fn::GetAtt": ["ActionsQueue", "QueueName"]}
    assert by_metric["QueueHeldSeconds"]["Namespace"] == "keaplink"
    for name in ("MessagesWaitingAlarm", "MessagesExpiringAlarm", "QueueHeldAlarm"):
        assert alarms[name]["OKActions"] == alarms[name]["AlarmActions"] == [{"Ref": "AlertsTopic"}], name
    retention = template["Resources"]["ActionsQueue"]["Properties"]["MessageRetentionPeriod"]
    assert alarms["MessagesExpiringAlarm"]["Threshold"] < retention


def test_the_queue_hold_policy_names_the_mapping_by_arn_for_every_function_that_holds_or_resumes(
        template: dict[str, Any]) -> None:
    policy = template["Resources"]["QueueHoldPolicy"]["Properties"]
    roles = {r["Ref"] for r in policy["Roles"]}
    assert roles == {"CallbackFunctionRole", "RefreshFunctionRole", "ActionsFunctionRole"}
    [update] = [s for s in policy["PolicyDocument"]["Statement"] if "lambda:UpdateEventSourceMapping" in s["Action"]]
    assert update["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:event-source-mapping:"
                   "${ActionsFunctionQueue}"}


def test_the_actions_function_checks_a_held_queue_on_a_schedule(template: dict[str, Any]) -> None:
    events = functions(template)["ActionsFunction"]["Events"]
    assert events["HoldCheck"]["Type"] == "Schedule"
    assert events["HoldCheck"]["Properties"]["Schedule"] == {"Ref": "QueueCheckSchedule"}
    assert template["Parameters"]["QueueCheckSchedule"]["Default"] == "rate(1 minute)"
