"""template.yaml's numbers that must agree with each other and with the code (one place each, held by tests)."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from keaplink.config import DEFAULT_ACTIONS_CONTAINERS, DEFAULT_RATE_BUDGET, DEFAULT_REFRESH_LEASE_S
from keaplink_dev.local.template import functions as all_functions
from keaplink_dev.local.template import load_template


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
    by_metric = {a["MetricName"]: a for a in alarms.values() if "MetricName" in a}
    assert by_metric["QueueHeldSeconds"]["Namespace"] == "keaplink"
    # Each age alarm twice, one figure each (no metric math, which the local emulator cannot deploy): SQS's, there
    # even when the function never runs, and keaplink's, which counts the records SQS's skips (received 3+ times).
    for sqs, ours in (("MessagesWaitingAlarm", "RetriedMessagesWaitingAlarm"),
                      ("MessagesExpiringAlarm", "RetriedMessagesExpiringAlarm")):
        assert (alarms[sqs]["Namespace"], alarms[sqs]["MetricName"]) == ("AWS/SQS", "ApproximateAgeOfOldestMessage")
        assert alarms[sqs]["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["ActionsQueue", "QueueName"]}
        assert (alarms[ours]["Namespace"], alarms[ours]["MetricName"]) == ("keaplink", "OldestMessageAgeSeconds")
        assert alarms[sqs]["Threshold"] == alarms[ours]["Threshold"]
        assert "Metrics" not in alarms[sqs] and "Metrics" not in alarms[ours]
    for name in ("MessagesWaitingAlarm", "RetriedMessagesWaitingAlarm", "MessagesExpiringAlarm",
                 "RetriedMessagesExpiringAlarm", "QueueHeldAlarm"):
        assert alarms[name]["OKActions"] == alarms[name]["AlarmActions"] == [{"Ref": "AlertsTopic"}], name
    retention = template["Resources"]["ActionsQueue"]["Properties"]["MessageRetentionPeriod"]
    assert alarms["MessagesExpiringAlarm"]["Threshold"] < retention
    assert not any("Metrics" in a for a in alarms.values())


def test_only_the_actions_function_may_pause_and_resume_its_queue(template: dict[str, Any]) -> None:
    """UpdateEventSourceMapping also changes a mapping's filters: the internet-facing callback (and the refresh)
    must not hold it; the actions function holds it for its own mapping only (tests/integration/test_iam_scope.py
    runs the paths against it)."""
    policy = template["Resources"]["QueueHoldPolicy"]["Properties"]
    assert [r["Ref"] for r in policy["Roles"]] == ["ActionsFunctionRole"]
    [update] = [s for s in policy["PolicyDocument"]["Statement"] if "lambda:UpdateEventSourceMapping" in s["Action"]]
    assert update["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:event-source-mapping:"
                   "${ActionsFunctionQueue}"}
    assert update["Condition"] == {"StringEquals": {"lambda:FunctionArn": {"Fn::GetAtt": ["ActionsFunction", "Arn"]}}}
    for name in ("CallbackFunction", "RefreshFunction"):
        assert "ACTIONS_FUNCTION" not in functions(template)[name].get("Environment", {}).get("Variables", {}), name


def test_the_actions_function_checks_a_held_queue_on_a_schedule(template: dict[str, Any]) -> None:
    events = functions(template)["ActionsFunction"]["Events"]
    assert events["HoldCheck"]["Type"] == "Schedule"
    assert events["HoldCheck"]["Properties"]["Schedule"] == {"Ref": "QueueCheckSchedule"}
    assert template["Parameters"]["QueueCheckSchedule"]["Default"] == "rate(1 minute)"


# ---------------------------------------------------------------- alarms reach the operator

def alarms_topic_key_problems(template: dict[str, Any]) -> list[str]:
    """Why CloudWatch alarms could not publish to the alerts topic (empty: they can)."""
    resources = template["Resources"]
    key_ref = resources["AlertsTopic"]["Properties"].get("KmsMasterKeyId")
    if not isinstance(key_ref, dict):
        return [f"the topic's key is {key_ref!r}: not a customer managed key of this template (alias/aws/sns's "
                "policy cannot let CloudWatch use it)"]
    name = (key_ref.get("Ref") or key_ref.get("Fn::GetAtt", [None])[0])
    key = resources.get(name, {})
    if key.get("Type") != "AWS::KMS::Key":
        return [f"{name} is not an AWS::KMS::Key"]
    problems = [] if key["Properties"].get("EnableKeyRotation") is True else ["key rotation is off"]
    granted: set[str] = set()
    for st in key["Properties"]["KeyPolicy"]["Statement"]:
        services = st.get("Principal", {}).get("Service", [])
        services = services if isinstance(services, list) else [services]
        if st["Effect"] == "Allow" and "cloudwatch.amazonaws.com" in services:
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            granted |= {a for a in actions if a in ("kms:Decrypt", "kms:GenerateDataKey*", "kms:*")}
    if not ({"kms:Decrypt", "kms:GenerateDataKey*"} <= granted or "kms:*" in granted):
        problems.append("the key policy does not let cloudwatch.amazonaws.com use kms:Decrypt and kms:GenerateDataKey*")
    return problems


def test_cloudwatch_alarms_can_publish_to_the_encrypted_alerts_topic(template: dict[str, Any]) -> None:
    assert alarms_topic_key_problems(template) == []
    alarms = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert alarms and all(a["AlarmActions"] == [{"Ref": "AlertsTopic"}] for a in alarms)
    [cloudwatch] = [st for st in template["Resources"]["AlertsKey"]["Properties"]["KeyPolicy"]["Statement"]
                    if st.get("Principal", {}).get("Service") == "cloudwatch.amazonaws.com"]
    assert cloudwatch["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_the_alarm_topic_check_fails_for_the_aws_managed_key_and_for_a_policy_without_cloudwatch(
        template: dict[str, Any]) -> None:
    managed = copy.deepcopy(template)
    managed["Resources"]["AlertsTopic"]["Properties"]["KmsMasterKeyId"] = "alias/aws/sns"
    assert alarms_topic_key_problems(managed)
    without = copy.deepcopy(template)
    policy = without["Resources"]["AlertsKey"]["Properties"]["KeyPolicy"]
    policy["Statement"] = [st for st in policy["Statement"] if "Service" not in st.get("Principal", {})]
    assert alarms_topic_key_problems(without) == [
        "the key policy does not let cloudwatch.amazonaws.com use kms:Decrypt and kms:GenerateDataKey*"]
    decrypt_only = copy.deepcopy(template)
    for st in decrypt_only["Resources"]["AlertsKey"]["Properties"]["KeyPolicy"]["Statement"]:
        if "Service" in st.get("Principal", {}):
            st["Action"] = ["kms:Decrypt"]
    assert alarms_topic_key_problems(decrypt_only)


# ---------------------------------------------------------------- the API's access log

ACCESS_LOG_VARIABLES = {  # what a line may say: who (address), what route, when, how it went - nothing sent
    "$context.requestId", "$context.requestTime", "$context.identity.sourceIp", "$context.httpMethod",
    "$context.resourcePath", "$context.status", "$context.responseLength", "$context.responseLatency",
    "$context.integrationLatency", "$context.error.responseType"}


def access_log_leaks(fmt: str) -> list[str]:
    """The variables of an access log format that are not on the list above (headers, cookies, the query string,
    the path with it, the body, the authorizer's context, the user agent ...)."""
    variables = re.findall(r"\$[A-Za-z][A-Za-z0-9_.]*(?:\([^)]*\))?", fmt)
    return [v for v in variables if v not in ACCESS_LOG_VARIABLES]


def test_the_admin_api_logs_each_request_without_credentials_cookies_or_the_query(template: dict[str, Any]) -> None:
    api = template["Resources"]["AdminApi"]["Properties"]
    setting = api["AccessLogSetting"]
    assert setting["DestinationArn"] == {"Fn::GetAtt": ["AdminApiAccessLogs", "Arn"]}
    logs = template["Resources"]["AdminApiAccessLogs"]["Properties"]
    assert logs["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    fmt = setting["Format"]
    assert access_log_leaks(fmt) == []
    assert json.loads(fmt.replace("$context.", "context.")).keys()  # one JSON object a line
    for word in ("header", "querystring", "cookie", "$input", "$method", "authorizer", "userAgent", "$context.path"):
        assert word.lower() not in fmt.lower(), word
    for leak in ("$context.path", "$method.request.querystring.code", "$input.params('state')",
                 "$method.request.header.Authorization", "$context.identity.userAgent", "$input.body",
                 "$method.request.header.Cookie", "$context.authorizer.principalId"):
        assert access_log_leaks(fmt + leak) == [leak], leak
    # API Gateway writes access logs with the account's role, set before the stage exists.
    assert template["Resources"]["AdminApi"]["DependsOn"] == "ApiGatewayAccount"
    assert template["Resources"]["ApiGatewayAccount"]["Type"] == "AWS::ApiGateway::Account"


# ---------------------------------------------------------------- encryption, failed scheduled runs

def test_every_queue_is_encrypted_with_kms(template: dict[str, Any]) -> None:
    queues = {name: r["Properties"] for name, r in template["Resources"].items() if r["Type"] == "AWS::SQS::Queue"}
    assert set(queues) == {"ActionsQueue", "ActionsDeadLetterQueue", "ScheduledRunsDeadLetterQueue"}
    assert all(q["KmsMasterKeyId"] == "alias/aws/sqs" for q in queues.values())


def test_a_scheduled_run_that_keeps_failing_reaches_the_operator(template: dict[str, Any]) -> None:
    asynchronous = {name for name, props in functions(template).items()
                    if any(e["Type"] == "Schedule" for e in props.get("Events", {}).values())}
    assert asynchronous == {"RefreshFunction", "ActionsFunction"}
    for name in asynchronous:
        assert functions(template)[name]["DeadLetterQueue"] == {
            "Type": "SQS", "TargetArn": {"Fn::GetAtt": ["ScheduledRunsDeadLetterQueue", "Arn"]}}, name
    alarm = template["Resources"]["ScheduledRunFailedAlarm"]["Properties"]
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["ScheduledRunsDeadLetterQueue",
                                                                                  "QueueName"]}}]
    assert alarm["AlarmActions"] == [{"Ref": "AlertsTopic"}] and alarm["Threshold"] == 1


def test_every_checkov_skip_says_why(template: dict[str, Any]) -> None:
    skips = [(name, s) for name, r in template["Resources"].items()
             for s in r.get("Metadata", {}).get("checkov", {}).get("skip", [])]
    assert skips
    for name, skip in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]) and len(skip.get("comment", "")) > 30, (name, skip)


def test_api_key_mode_without_a_key_is_refused_at_deploy(template: dict[str, Any]) -> None:
    rule = template["Rules"]["ApiKeyModeNeedsAKey"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "KeapAuthMode"}, "api_key"]}
    [assertion] = rule["Assertions"]
    assert assertion["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "KeapApiKey"}, ""]}]}
