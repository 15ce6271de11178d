"""Hours of simulated time for the actions function, over real HTTP (moto server, Keap sandbox).

keaplink's clock and the sandbox's clock move together (both are ``time.time() + offset``); moto's SQS keeps
real time, which is what the 1-second visibility timeout of the test queue needs. The actions function is
played as Lambda plays it: a batch is received only while its event source mapping is enabled, and the
scheduled check runs every simulated minute.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from keaplink import root
from keaplink.connection.refresh import Refresher
from keaplink.observability import metrics
from keaplink_dev.local.handlers import load_handler
from keaplink_dev.local.lambda_events import FakeContext
from keaplink_dev.local.lambda_local import mapping_state, register_actions_function
from keaplink_dev.local.moto_server import AwsResources
from keaplink_dev.local.sqs_poller import to_record

SCHEDULED_EVENT = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


class SimTime:
    """keaplink's clock (epoch seconds) and the sandbox's, moved together."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds
        self.sandbox.advance(seconds)

    def set(self, epoch: float) -> None:
        self.advance(epoch - self.now())


class Context(FakeContext):
    def __init__(self, remaining_ms: int = 30_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]
        return self.remaining_ms


@dataclass
class ActionsFunction:
    aws: AwsResources
    time: SimTime
    name: str
    through: Refresher | None = None
    receive_counts: dict[str, int] = field(default_factory=dict)  # highest ApproximateReceiveCount per body
    batches: int = 0

    def deps(self, sleep: Any = None) -> Any:
        deps = root.actions(metrics, through=self.through, clock=self.time.now)
        if sleep is not None:
            deps.sleep = sleep
        return deps

    def invoke(self, records: list[dict[str, Any]], context: Any = None, sleep: Any = None) -> dict[str, Any]:
        handler = load_handler("actions").lambda_handler
        result: dict[str, Any] = handler({"Records": records}, context or Context(), deps=self.deps(sleep))
        return result

    def enabled(self) -> bool:
        return mapping_state(self.aws, self.name) in ("Enabled", "Enabling")

    def receive(self) -> list[dict[str, Any]]:
        sqs = self.aws.client("sqs")
        msgs: list[dict[str, Any]] = sqs.receive_message(
            QueueUrl=self.aws.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"],
            MessageAttributeNames=["All"], WaitTimeSeconds=0).get("Messages", [])
        for m in msgs:
            count = int(m["Attributes"]["ApproximateReceiveCount"])
            self.receive_counts[m["Body"]] = max(count, self.receive_counts.get(m["Body"], 0))
        return msgs

    def batch(self, context: Any = None, sleep: Any = None) -> int:
        """One batch if the event source is enabled (as Lambda polls); returns the records delivered."""
        if not self.enabled():
            return 0
        msgs = self.receive()
        if not msgs:
            return 0
        self.batches += 1
        arn = self.aws.client("sqs").get_queue_attributes(
            QueueUrl=self.aws.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        records = []
        for m in msgs:
            record = to_record(m, arn)
            record["messageAttributes"] = {k: {"stringValue": v.get("StringValue"), "dataType": v["DataType"]}
                                           for k, v in m.get("MessageAttributes", {}).items()}
            records.append(record)
        response = self.invoke(records, context, sleep)
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        done = [m for m in msgs if m["MessageId"] not in failed]
        if done:
            self.aws.client("sqs").delete_message_batch(QueueUrl=self.aws.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)])
        return len(msgs)

    def check(self) -> dict[str, Any]:
        """The scheduled check (EventBridge, every minute)."""
        handler = load_handler("actions").lambda_handler
        checks = root.hold_check(metrics, through=self.through, clock=self.time.now)
        result: dict[str, Any] = handler(dict(SCHEDULED_EVENT), Context(), checks=checks)
        return result

    def minute(self, polls: int = 3, real_pause_s: float = 0.0) -> dict[str, Any]:
        """A simulated minute: the scheduled check, then up to ``polls`` batches while the queue flows."""
        self.time.advance(60)
        result = self.check()
        for _ in range(polls):
            if not self.batch():
                break
        if real_pause_s:
            time.sleep(real_pause_s)  # moto's SQS runs on real time: let visibility timeouts pass
        return result


def actions_function(aws: AwsResources, sandbox: Any, monkeypatch: Any, sim: SimTime | None = None) -> ActionsFunction:
    """The actions function with its (moto) event source mapping; keaplink told its name."""
    name = register_actions_function(aws)
    monkeypatch.setenv("ACTIONS_FUNCTION", name)
    root.reset()  # settings are read once per container
    return ActionsFunction(aws, sim or SimTime(sandbox), name)
