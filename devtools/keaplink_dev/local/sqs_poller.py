"""What Lambda's SQS event source mapping does, over a real (moto) queue: receive a batch, invoke the
handler, delete the records it did not report as failed. Failed records become visible again after the
queue's visibility timeout and move to the DLQ after maxReceiveCount, as SQS decides."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from keaplink_dev.local.lambda_events import FakeContext
from keaplink_dev.local.moto_server import REGION, AwsResources

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def send(aws: AwsResources, *bodies: str) -> list[str]:
    sqs = aws.client("sqs")
    return [sqs.send_message(QueueUrl=aws.queue_url, MessageBody=b)["MessageId"] for b in bodies]


def to_record(msg: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    return {
        "messageId": msg["MessageId"],
        "receiptHandle": msg["ReceiptHandle"],
        "body": msg["Body"],
        "attributes": {
            "ApproximateReceiveCount": msg.get("Attributes", {}).get("ApproximateReceiveCount", "1"),
            "SentTimestamp": msg.get("Attributes", {}).get("SentTimestamp", "0"),
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": "0",
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(msg["Body"].encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def poll_once(aws: AwsResources, handler: Handler, batch_size: int = 10,
              duplicate: int = 1) -> tuple[int, list[str]]:
    """One batch: returns (records delivered, message ids reported as failed). ``duplicate`` delivers each
    record that many times in the same batch (SQS at-least-once delivery)."""
    sqs = aws.client("sqs")
    arn = sqs.get_queue_attributes(QueueUrl=aws.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    msgs = sqs.receive_message(QueueUrl=aws.queue_url, MaxNumberOfMessages=batch_size,
                               AttributeNames=["All"], WaitTimeSeconds=0).get("Messages", [])
    if not msgs:
        return 0, []
    records = [to_record(m, arn) for m in msgs for _ in range(duplicate)]
    response = handler({"Records": records}, FakeContext())
    failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
    done = [m for m in msgs if m["MessageId"] not in failed]
    if done:  # one call, as the event source mapping does
        sqs.delete_message_batch(QueueUrl=aws.queue_url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)])
    return len(records), sorted(failed)


def drain(aws: AwsResources, handler: Handler, timeout_s: float = 30.0, batch_size: int = 10) -> int:
    """Poll until the queue is empty (failed records come back after the 1 s visibility timeout)."""
    deadline = time.monotonic() + timeout_s
    delivered = 0
    while time.monotonic() < deadline:
        count, _ = poll_once(aws, handler, batch_size)
        delivered += count
        if count == 0:
            if queue_depth(aws, aws.queue_url) == 0:
                return delivered
            time.sleep(0.3)
    raise AssertionError(f"queue not drained in {timeout_s}s ({queue_depth(aws, aws.queue_url)} left)")


def queue_depth(aws: AwsResources, url: str) -> int:
    attrs = aws.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def dlq_messages(aws: AwsResources) -> list[dict[str, Any]]:
    sqs = aws.client("sqs")
    out: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=aws.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                    AttributeNames=["All"], VisibilityTimeout=30).get("Messages", [])
        if not batch:
            return out
        out.extend(batch)
