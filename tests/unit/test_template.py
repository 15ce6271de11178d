"""template.yaml's numbers that must agree with each other and with the code (one place each, held by tests)."""

from __future__ import annotations

from typing import Any

import pytest

from keaplink.config import DEFAULT_ACTIONS_CONTAINERS, DEFAULT_REFRESH_LEASE_S
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


def test_the_containers_sharing_keaps_quota_are_the_event_sources_maximum(template: dict[str, Any]) -> None:
    actions = functions(template)["ActionsFunction"]
    maximum = actions["Events"]["Queue"]["Properties"]["ScalingConfig"]["MaximumConcurrency"]
    assert int(actions["Environment"]["Variables"]["ACTIONS_CONTAINERS"]) == maximum == DEFAULT_ACTIONS_CONTAINERS


def test_the_dlq_keeps_a_moved_message_long_after_the_queue_would_have(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    queue = resources["ActionsQueue"]["Properties"]["MessageRetentionPeriod"]
    dlq = resources["ActionsDeadLetterQueue"]["Properties"]["MessageRetentionPeriod"]
    # A moved message keeps its enqueue time: it stays in the DLQ for (dlq - queue) at least.
    assert dlq <= 14 * 86400 and dlq - queue >= 7 * 86400


def test_alarms_on_waiting_messages_and_long_holds_say_when_it_is_over(template: dict[str, Any]) -> None:
    alarms = {name: r["Properties"] for name, r in template["Resources"].items()
              if r["Type"] == "AWS::CloudWatch::Alarm"}
    by_metric = {a["MetricName"]: a for a in alarms.values() if "MetricName" in a}
    assert by_metric["QueueHeldSeconds"]["Namespace"] == "keaplink"
    for name in ("MessagesWaitingAlarm", "MessagesExpiringAlarm"):  # keaplink's figure, which counts retried records
        stats = {m["Id"]: m["MetricStat"]["Metric"] for m in alarms[name]["Metrics"] if "MetricStat" in m}
        assert stats["keaplink"]["MetricName"] == "OldestMessageAgeSeconds" and stats["keaplink"]["Namespace"] == (
            "keaplink")
        assert stats["sqs"]["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["ActionsQueue", "QueueName"]}
        assert [m["Expression"] for m in alarms[name]["Metrics"] if "Expression" in m] == ["MAX([keaplink, sqs])"]
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


def test_api_key_mode_without_a_key_is_refused_at_deploy(template: dict[str, Any]) -> None:
    rule = template["Rules"]["ApiKeyModeNeedsAKey"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "KeapAuthMode"}, "api_key"]}
    [assertion] = rule["Assertions"]
    assert assertion["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "KeapApiKey"}, ""]}]}
