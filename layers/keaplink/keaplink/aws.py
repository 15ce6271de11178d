"""Small cached factories for AWS clients, so tests can point them at a local endpoint."""

from __future__ import annotations

import threading
from typing import Any

from keaplink.config import get_settings

_clients: dict[str, Any] = {}
_lock = threading.Lock()  # botocore's session is not safe for concurrent client creation


def client(service: str) -> Any:
    """A botocore client for ``service`` honouring ``AWS_ENDPOINT_URL`` (one per container).

    botocore directly, not boto3: the clients are the same, and boto3's import (s3transfer and all) would
    add ~130 ms to every cold start for nothing. Imported on first use for the same reason.
    """
    found = _clients.get(service)
    if found is not None:
        return found
    with _lock:
        if service not in _clients:
            import botocore.session
            from botocore.config import Config

            settings = get_settings()
            config = Config(connect_timeout=3, read_timeout=10, retries={"mode": "standard", "max_attempts": 4})
            _clients[service] = botocore.session.get_session().create_client(
                service, region_name=settings.region, endpoint_url=settings.aws_endpoint_url, config=config
            )
        return _clients[service]


def reset() -> None:
    with _lock:
        _clients.clear()
