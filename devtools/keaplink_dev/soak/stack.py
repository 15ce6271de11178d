"""The local stack the soaks share: a moto server and a Keap sandbox, keaplink's environment pointing at them."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator

from keaplink import root
from keaplink.observability import logger


@contextlib.contextmanager
def quiet_keaplink() -> Iterator[None]:
    """keaplink logs every refresh and failure as JSON; the report says it all, so keep stdout clean."""
    previous = logger.log_level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


@contextlib.contextmanager
def local_stack() -> Iterator[str]:
    """A moto server and a Keap sandbox, and the environment pointing keaplink at them; yields the sandbox URL."""
    from keap_sandbox.testing import start_sandbox
    from keaplink_dev.local.moto_server import apply_env, create_resources, restore_env, start_moto

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    server, endpoint = start_moto()
    sandbox = start_sandbox(throttle=False)
    creds = {"client_id": sandbox.client_id, "client_secret": sandbox.client_secret}
    resources = create_resources(endpoint, uuid.uuid4().hex[:8], creds)
    previous = apply_env(
        {
            **resources.env(),
            "KEAP_AUTHORIZE_URL": sandbox.authorize_url,
            "KEAP_TOKEN_URL": sandbox.token_url,
            "KEAP_API_URL": sandbox.api_url,
            "KEAP_AUTH_MODE": "oauth",
            "CONNECTION_ID": "default",
        }
    )
    _reset_keaplink()
    try:
        yield sandbox.url
    finally:
        restore_env(previous)
        _reset_keaplink()
        sandbox.stop()
        server.stop()


def _reset_keaplink() -> None:
    root.reset()
