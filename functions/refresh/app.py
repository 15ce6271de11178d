"""Scheduled (EventBridge) token refresh: an hourly check that refreshes only when the token is due."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keaplink.observability import logger, metrics
from keaplink.queue_gate import QueueGate
from keaplink.refresh import Refresher
from keaplink.refresh_job import run_scheduled
from keaplink.wiring import refresher as build_refresher

if TYPE_CHECKING:  # typing only: keeps Powertools' typing module off the cold-start path
    from aws_lambda_powertools.utilities.typing import LambdaContext


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext, refresher: Refresher | None = None) -> dict[str, Any]:
    # {"force": true} in a manual invoke refreshes even a fresh token (e.g. `make invoke`).
    force = bool(event.get("force")) if isinstance(event, dict) else False
    return run_scheduled(refresher or build_refresher(metrics), metrics, force=force, gate=QueueGate())
