"""What a million events cost at AWS's list prices, from what ``keaplink_dev.perf.bench`` counted (issue 22).

The benchmark counts, per scenario: invocations and their busy seconds, every AWS call keaplink makes (botocore,
pynamodb included) with DynamoDB's request units, and the bytes the handler writes to stdout (its logs and EMF
metrics, as CloudWatch Logs would ingest them). SQS requests that Lambda's poller makes are modelled (AWS's part,
not measured): ReceiveMessage returns at most 10 messages and deletes go in batches of 10.

Prices: us-east-1, on-demand list prices, x86_64, as read on the date below; free tiers ignored. Part of the
benchmark, not of the product.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

PRICES_DATE = "2026-12-02"
REGION = "us-east-1"
# (price, unit, source). "confirmed": found in this session's search of public pages; "unconfirmed": the
# well-known list price, not confirmed from a page here.
PRICES: dict[str, tuple[float, str, str]] = {
    "lambda_requests": (0.20 / 1e6, "request", "confirmed (aws.amazon.com/lambda/pricing, via a price table)"),
    "lambda_gb_s": (0.0000166667, "GB-second, x86_64", "confirmed (same)"),
    "sqs_requests": (0.40 / 1e6, "request, standard queue, <= 64 KB", "confirmed (secondary pages, 2026)"),
    "dynamodb_wru": (0.625 / 1e6, "write request unit, on-demand", "confirmed (secondary page; after the 2024 cut)"),
    "dynamodb_rru": (0.125 / 1e6, "read request unit, on-demand", "confirmed (same)"),
    "kms_requests": (0.03 / 1e4, "symmetric request", "confirmed (secondary pages, 2026)"),
    "secrets_requests": (0.05 / 1e4, "API call", "unconfirmed for AWS (the same figure seen for another cloud)"),
    "log_gb": (0.50, "GB ingested, standard class", "confirmed (secondary pages, 2026)"),
}
# Lambda's own START/END/REPORT lines per invocation (about 350 bytes; an estimate, not measured here).
PLATFORM_LOG_BYTES = 350
SQS_MESSAGES_PER_CALL = 10  # ReceiveMessage and DeleteMessageBatch carry at most 10


class AwsCalls:
    """Counts every botocore API call of this process while installed (pynamodb goes through botocore too)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.rru = 0.0
        self.wru = 0.0
        self._lock = threading.Lock()
        self._original: Any = None

    def install(self) -> AwsCalls:
        from botocore.client import BaseClient

        original = getattr(BaseClient, "_make_api_call")  # noqa: B009 - private to botocore, untyped
        self._original = original
        counter = self

        def counted(client: Any, operation: str, params: dict[str, Any]) -> Any:
            counter.record(client.meta.service_model.service_name, operation, params)
            return original(client, operation, params)

        setattr(BaseClient, "_make_api_call", counted)  # noqa: B010
        return self

    def uninstall(self) -> None:
        from botocore.client import BaseClient

        if self._original is not None:
            setattr(BaseClient, "_make_api_call", self._original)  # noqa: B010

    def record(self, service: str, operation: str, params: dict[str, Any]) -> None:
        rru, wru = request_units(service, operation, params)
        with self._lock:
            self.calls[f"{service}:{operation}"] += 1
            self.rru += rru
            self.wru += wru

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"calls": dict(self.calls), "rru": self.rru, "wru": self.wru}


def request_units(service: str, operation: str, params: dict[str, Any]) -> tuple[float, float]:
    """DynamoDB's read and write request units of one call, for keaplink's small items (< 1 KB): a strongly
    consistent read 1, an eventually consistent one 0.5, a write 1; batch calls per item."""
    if service != "dynamodb":
        return 0.0, 0.0
    if operation in ("GetItem", "Query"):
        return (1.0 if params.get("ConsistentRead") else 0.5), 0.0
    if operation == "BatchGetItem":
        reads = 0.0
        for spec in params.get("RequestItems", {}).values():
            reads += len(spec.get("Keys", [])) * (1.0 if spec.get("ConsistentRead") else 0.5)
        return reads, 0.0
    if operation in ("PutItem", "UpdateItem", "DeleteItem"):
        return 0.0, 1.0
    if operation == "BatchWriteItem":
        return 0.0, float(sum(len(v) for v in params.get("RequestItems", {}).values()))
    return 0.0, 0.0


def usage(events: int, invocations: int, busy_s: float, memory_mb: int, calls: dict[str, int], rru: float,
          wru: float, log_bytes: float, sqs_receives: float, sqs_deletes: float) -> dict[str, float]:
    """Billable quantities per event. ``calls``: the function's own AWS calls; the application's SendMessage
    (one per event: ``keaplink.client.publish`` sends one message a call) and Lambda's receives and deletes are
    added here."""
    def count(prefix: str) -> int:
        return sum(n for k, n in calls.items() if k.startswith(prefix))

    return {
        "lambda_requests": invocations / events,
        "lambda_gb_s": busy_s * memory_mb / 1024 / events,
        "sqs_requests": (events + sqs_receives + sqs_deletes + count("sqs:")) / events,
        "dynamodb_wru": wru / events,
        "dynamodb_rru": rru / events,
        "kms_requests": count("kms:") / events,
        "secrets_requests": count("secretsmanager:") / events,
        "log_gb": (log_bytes + invocations * PLATFORM_LOG_BYTES) / 1e9 / events,
    }


def per_million(per_event: dict[str, float]) -> dict[str, float]:
    """Dollars per million events, by item."""
    return {k: v * 1e6 * PRICES[k][0] for k, v in per_event.items()}


def largest(costs: dict[str, float]) -> tuple[str, float]:
    name = max(costs, key=lambda k: costs[k])
    return name, costs[name]
