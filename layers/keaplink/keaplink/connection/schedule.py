"""The scheduled check: refresh when due, and turn every outcome into one summary for logs and metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keaplink.connection.refresh import Refresher
from keaplink.errors import (
    KeapClientConfigError,
    KeapError,
    LeaseBusy,
    NeedsReauth,
    NotConnected,
    OutOfTime,
    TokenConflict,
)
from keaplink.keap.deadline import Deadline
from keaplink.observability import MetricsPort, MetricUnit, logger

# Outcome by error type. Errors are not re-raised: the next scheduled run is the retry, and Lambda's own
# async retries would only add refresh attempts against a token endpoint that is already struggling.
_OUTCOMES: dict[type[Exception], str] = {
    NotConnected: "not_connected",
    NeedsReauth: "needs_reauth",
    LeaseBusy: "busy",
    TokenConflict: "conflict",
    OutOfTime: "out_of_time",
    KeapClientConfigError: "config_error",
    KeapError: "failed",
}


def run_scheduled(
    refresher: Refresher,
    metrics: MetricsPort,
    force: bool = False,
    resume_queue: Callable[[], None] | None = None,
    context: Any = None,
    deadline: Deadline | None = None,
) -> dict[str, Any]:
    deadline = deadline or Deadline.from_context(context, sleep=refresher.sleep)
    try:
        result = refresher.ensure_fresh(force=force, deadline=deadline)
    except tuple(_OUTCOMES) as exc:
        outcome = next(_OUTCOMES[c] for c in type(exc).__mro__ if c in _OUTCOMES)
        logger.warning("scheduled refresh did not refresh", extra={"outcome": outcome, "error": str(exc)})
        return {"outcome": outcome, "error": str(exc)}
    if resume_queue is not None:
        resume_queue()  # the connection works: a hold's probe is due now (a safety net for the callback)
    token = result.connection.token
    seconds_left = (token.expires_at - refresher.clock()) if token else 0.0
    metrics.add_metric("SecondsUntilExpiry", MetricUnit.Seconds, seconds_left)
    logger.info("scheduled refresh check", extra={"outcome": result.outcome.value, "reason": result.reason.value})
    return {
        "outcome": result.outcome.value,
        "reason": result.reason.value,
        "version": result.connection.version,
        "seconds_until_expiry": round(seconds_left),
    }
