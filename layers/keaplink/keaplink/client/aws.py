"""boto3 clients for the application's side, pointed at the configured (or the local stack's) endpoint."""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=8)
def sqs_client(region: str | None, endpoint_url: str | None, local: bool = False) -> Any:
    """An SQS client; ``local`` gives the emulator the dummy credentials it accepts."""
    import boto3

    key = "test" if local else None
    return boto3.client("sqs", region_name=region or "us-east-1", endpoint_url=endpoint_url,
                        aws_access_key_id=key, aws_secret_access_key=key)


@lru_cache(maxsize=8)
def dynamodb_client(region: str | None, endpoint_url: str | None, local: bool = False) -> Any:
    """A DynamoDB client (``keaplink pause``/``resume`` write the hold into the connection table)."""
    import boto3

    key = "test" if local else None
    return boto3.client("dynamodb", region_name=region or "us-east-1", endpoint_url=endpoint_url,
                        aws_access_key_id=key, aws_secret_access_key=key)
