"""A Lambda function and its SQS event source mapping registered on the moto server, so the queue gate
(pause/resume of the mapping) is exercised over the real Lambda API."""

from __future__ import annotations

import io
import json
import zipfile

from keaplink_dev.local.moto_server import REGION, AwsResources
from keaplink_dev.local.runtime import runtime


def register_actions_function(aws: AwsResources) -> str:
    name = "keaplink-actions-" + aws.connection_table.rsplit("-", 1)[-1]
    iam = aws.client("iam")
    role = iam.create_role(
        RoleName=f"{name}-role",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
    )["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", "def lambda_handler(event, context):\n    return {}\n")
    lam = aws.client("lambda")
    lam.create_function(FunctionName=name, Runtime=runtime(), Role=role, Handler="app.lambda_handler",
                        Code={"ZipFile": buf.getvalue()})
    sqs = aws.client("sqs")
    arn = sqs.get_queue_attributes(QueueUrl=aws.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name, BatchSize=10, Enabled=True)
    detach_moto_delivery(aws)
    return name


def detach_moto_delivery(aws: AwsResources) -> None:
    """moto delivers to an enabled mapping itself, on every SendMessage: it receives a batch (a receive for each
    message), tries to run the function in Docker, and makes the messages visible again when that fails. The
    tests play the event source themselves (keaplink_dev.local.sqs_poller, tests/support/outage.py), so moto's
    own delivery is detached; the mapping stays what the Lambda API lists, pauses and resumes. (The moto server
    runs in this process: its backends are these objects.)"""
    from moto.core import DEFAULT_ACCOUNT_ID  # type: ignore[attr-defined]
    from moto.sqs.models import sqs_backends

    queue_name = aws.queue_url.rsplit("/", 1)[-1]
    sqs_backends[DEFAULT_ACCOUNT_ID][REGION].queues[queue_name].lambda_event_source_mappings.clear()


def mapping_state(aws: AwsResources, name: str) -> str:
    mappings = aws.client("lambda").list_event_source_mappings(FunctionName=name)["EventSourceMappings"]
    return str(mappings[0]["State"])
