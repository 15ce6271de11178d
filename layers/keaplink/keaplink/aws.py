"""How keaplink talks to AWS: botocore clients and pynamodb models bound to the configured endpoint.

These build; the composition root (:mod:`keaplink.root`) caches what they build, once per container.
"""

from __future__ import annotations

from typing import Any

from keaplink.config import Settings


def make_client(service: str, settings: Settings) -> Any:
    """A botocore client for ``service`` honouring ``AWS_ENDPOINT_URL``.

    botocore directly, not boto3: the clients are the same, and boto3's import (s3transfer and all) would
    add ~130 ms to every cold start for nothing. Imported on first use for the same reason.
    """
    import botocore.session
    from botocore.config import Config

    config = Config(connect_timeout=3, read_timeout=10, retries={"mode": "standard", "max_attempts": 4})
    return botocore.session.get_session().create_client(
        service, region_name=settings.region, endpoint_url=settings.aws_endpoint_url, config=config
    )


def conditional_failed(exc: Exception) -> bool:
    """A pynamodb write refused because its condition did not hold (as opposed to any other failure)."""
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"


def bind_table[M: type](model: M, table_name: str, settings: Settings) -> M:
    """A subclass of the pynamodb ``model`` bound to a table name, region and endpoint.

    pynamodb reads ``Meta`` when the class is created, so binding at run time means a new subclass.
    """
    meta = type(
        "Meta",
        (),
        {
            "table_name": table_name,
            "region": settings.region,
            "host": settings.aws_endpoint_url,
            "connect_timeout_seconds": 3,
            "read_timeout_seconds": 5,
            "max_retry_attempts": 5,
        },
    )
    return type(model.__name__, (model,), {"Meta": meta, "__module__": model.__module__})  # type: ignore[return-value]
