"""How keaplink talks to AWS: botocore clients and pynamodb models bound to the configured endpoint.

These build; the composition root (:mod:`keaplink.root`) caches what they build, once per container.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keaplink.config import Settings


@dataclass(frozen=True)
class CallBounds:
    """How long one AWS call may take: a connect and a read timeout per attempt, and the attempts (the first
    included), in botocore's standard retry mode."""

    connect_s: float
    read_s: float
    attempts: int

    def worst_case_s(self) -> float:
        """Every attempt timing out, with botocore's longest backoff between them (a throttled answer:
        up to ``min(2 ** (n - 1), 20)`` s before attempt n + 1). A read timeout bounds each wait for bytes, not
        a whole answer; an endpoint that dribbles can take longer, which no botocore setting prevents."""
        backoff = sum(min(2.0 ** (n - 1), 20.0) for n in range(1, self.attempts))
        return self.attempts * (self.connect_s + self.read_s) + backoff

    def scaled(self, factor: float) -> CallBounds:
        return CallBounds(self.connect_s * factor, self.read_s * factor, self.attempts)


# The refresh and save path (KMS, Secrets Manager, the connection table): one save of a refreshed token is
# three calls (connection.store.SAVE_CALLS) and must fit in the time the deadline keeps for it
# (connection.refresh.RefreshTimings.save_s, 5 s): 3 x 1 x (0.5 + 1.0) = 4.5 s. One attempt each: the retries
# are the refresher's own (Refresher._save), which knows the deadline; a botocore retry would not.
REFRESH_PATH = CallBounds(connect_s=0.5, read_s=1.0, attempts=1)
REFRESH_PATH_SERVICES = frozenset({"kms", "secretsmanager"})
# Everything else (SQS, Lambda, the data table): no deadline to keep that tightly.
CLIENT_DEFAULT = CallBounds(connect_s=3.0, read_s=10.0, attempts=5)  # 4 retries
TABLE_DEFAULT = CallBounds(connect_s=3.0, read_s=5.0, attempts=6)  # 5 retries


def refresh_path(settings: Settings) -> CallBounds:
    """:data:`REFRESH_PATH`, its timeouts times ``AWS_TIMEOUT_SCALE`` (1 on AWS; the local stack sets more: an
    emulator on a busy machine answers in seconds what AWS answers in milliseconds)."""
    return REFRESH_PATH.scaled(settings.aws_timeout_scale)


def bounds_for(service: str, settings: Settings) -> CallBounds:
    return refresh_path(settings) if service in REFRESH_PATH_SERVICES else CLIENT_DEFAULT


def make_client(service: str, settings: Settings) -> Any:
    """A botocore client for ``service`` honouring ``AWS_ENDPOINT_URL``, bounded by :func:`bounds_for`.

    botocore directly, not boto3: the clients are the same, and boto3's import (s3transfer and all) would
    add ~130 ms to every cold start for nothing. Imported on first use for the same reason.
    """
    import botocore.session
    from botocore.config import Config

    bounds = bounds_for(service, settings)
    config = Config(connect_timeout=bounds.connect_s, read_timeout=bounds.read_s,
                    retries={"mode": "standard", "total_max_attempts": bounds.attempts})
    return botocore.session.get_session().create_client(
        service, region_name=settings.region, endpoint_url=settings.aws_endpoint_url, config=config
    )


def conditional_failed(exc: Exception) -> bool:
    """A pynamodb write refused because its condition did not hold (as opposed to any other failure)."""
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"


def bind_table[M: type](model: M, table_name: str, settings: Settings, bounds: CallBounds = TABLE_DEFAULT) -> M:
    """A subclass of the pynamodb ``model`` bound to a table name, region and endpoint, its calls bounded by
    ``bounds`` (pynamodb makes ``1 + max_retry_attempts`` attempts in botocore's standard mode).

    pynamodb reads ``Meta`` when the class is created, so binding at run time means a new subclass.
    """
    meta = type(
        "Meta",
        (),
        {
            "table_name": table_name,
            "region": settings.region,
            "host": settings.aws_endpoint_url,
            "connect_timeout_seconds": bounds.connect_s,
            "read_timeout_seconds": bounds.read_s,
            "max_retry_attempts": bounds.attempts - 1,
        },
    )
    return type(model.__name__, (model,), {"Meta": meta, "__module__": model.__module__})  # type: ignore[return-value]
