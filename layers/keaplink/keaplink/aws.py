"""Small cached factories for AWS clients, so tests can point them at a local endpoint."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

from keaplink.config import get_settings

_CONFIG = Config(connect_timeout=3, read_timeout=10, retries={"mode": "standard", "max_attempts": 4})


@cache
def client(service: str) -> Any:
    """A boto3 client for ``service`` honouring ``AWS_ENDPOINT_URL`` (one per container)."""
    settings = get_settings()
    return boto3.session.Session().client(  # type: ignore[call-overload]  # service is dynamic
        service, region_name=settings.region, endpoint_url=settings.aws_endpoint_url, config=_CONFIG
    )


def reset() -> None:
    client.cache_clear()
    from keaplink import models  # local import: models build on settings too

    models.reset()
