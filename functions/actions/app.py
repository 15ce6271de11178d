"""Contact and tag actions, triggered by SQS (partial batch responses); and, every minute (EventBridge), the check
that probes a held Keap and resumes the queue."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keaplink import root
from keaplink.actions.batch import ActionsDeps, process_batch
from keaplink.actions.hold.check import CheckDeps, check, is_queue_event
from keaplink.observability import logger, metrics

if TYPE_CHECKING:  # typing only: keeps Powertools' typing module off the cold-start path
    from aws_lambda_powertools.utilities.typing import LambdaContext


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext, deps: ActionsDeps | None = None,
                   checks: CheckDeps | None = None) -> dict[str, Any]:
    if is_queue_event(event):
        return process_batch(event, deps or root.actions(metrics), context)
    return check(checks or root.hold_check(metrics), context)  # the schedule: is a held queue free to go?
