"""Structured logs and CloudWatch metrics (EMF), shared by every function."""

from __future__ import annotations

from typing import Protocol

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger(service="keaplink")
metrics = Metrics(namespace="keaplink", service="keaplink")


class MetricsPort(Protocol):
    def add_metric(self, name: str, unit: MetricUnit | str, value: float) -> None: ...


class NullMetrics:
    def add_metric(self, name: str, unit: MetricUnit | str, value: float) -> None:
        return None


class TimelinePort(Protocol):
    """The connection's recent events, for humans (the status page): connected, refreshed, refresh failed,
    re-authorization needed, queue held/resumed. Writing one must never fail the operation that caused it."""

    def record(self, kind: str, detail: str = "") -> None: ...


class NullTimeline:
    def record(self, kind: str, detail: str = "") -> None:
        return None


__all__ = ["MetricUnit", "MetricsPort", "NullMetrics", "NullTimeline", "TimelinePort", "logger", "metrics"]
