"""Scheduled (EventBridge) token refresh: an hourly check that refreshes only when the token is due."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keaplink import root
from keaplink.connection.refresh import Refresher
from keaplink.connection.schedule import run_scheduled
from keaplink.observability import logger, metrics

if TYPE_CHECKING:  # typing only: keeps Powertools' typing module off the cold-start path
    from aws_lambda_powertools.utilities.typing import LambdaContext


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext, refresher: Refresher | None = None) -> dict[str, Any]:
    # {"force": true} in a manual invoke refreshes even a fresh token (e.g. `make invoke`).
    force = bool(event.get("force")) if isinstance(event, dict) else False
    return run_scheduled(refresher or root.refresher(metrics), metrics, force=force, resume_queue=root.resume_queue,
                         context=context)  # the refresh path stops before this function's timeout
