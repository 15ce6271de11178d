"""Shared fixtures: a moto server and the Keap sandbox over real HTTP, and fresh resources per test."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator

import pytest
import requests

from keaplink_dev.local.moto_server import AwsResources, apply_env, create_resources, restore_env, start_moto
from tests.support.contract import arm, check_after_call, fail_on_leftovers, fail_on_violations

SANDBOX_CLIENT = {"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret"}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):  # type: ignore[no-untyped-def]
    """Right after a test's body: fail it if its Keap requests broke Keap's contract (tests/support/contract.py)."""
    result = yield
    check_after_call(item)
    return result


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server, endpoint = start_moto()
    yield endpoint
    server.stop()


@pytest.fixture(scope="session")
def sandbox_server():  # type: ignore[no-untyped-def]
    from keap_sandbox.testing import start_sandbox

    # Every REST request keaplink sends, and every answer the sandbox gives, is checked against Keap's
    # published v2 contract; the `sandbox` fixture fails the test that broke it.
    # KEAP_SANDBOX_CONFIG='{"apply_tags_missing_contact": "http_404", ...}' runs the suite against other
    # answers where the contract is silent (keaplink must tolerate every plausible one).
    overrides = json.loads(os.environ.get("KEAP_SANDBOX_CONFIG") or "{}")
    handle = start_sandbox(**{"throttle": False, "validate_contract": True, **overrides})
    yield handle
    handle.stop()


class Sandbox:
    """The sandbox's control API, as tests use it."""

    def __init__(self, handle) -> None:  # type: ignore[no-untyped-def]
        self.handle = handle
        self.url = handle.url

    def control(self, method: str, path: str, **kwargs):  # type: ignore[no-untyped-def]
        response = requests.request(method, f"{self.url}/_sandbox/{path}", timeout=10, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def requests_log(self, path_prefix: str = "") -> list[dict]:
        return [r for r in self.control("GET", "requests") if r["path"].startswith(path_prefix)]

    def advance(self, seconds: float) -> None:
        self.control("POST", "clock", json={"advance": seconds})

    def fault(self, **spec: object) -> None:
        self.control("POST", "faults", json=spec)

    def configure(self, **config: object) -> None:
        self.control("POST", "config", json=config)

    def contract_violations(self) -> list[dict]:
        """Requests/answers that broke Keap's v2 contract since the test began."""
        return self.control("GET", "contract")

    def take_contract_violations(self) -> list[dict]:
        found = self.contract_violations()
        self.control("DELETE", "contract")
        return found


@pytest.fixture
def sandbox(sandbox_server, request: pytest.FixtureRequest) -> Iterator[Sandbox]:  # type: ignore[no-untyped-def]
    """The session's sandbox, reset before and after each test (state, and the config a test changed).

    If any REST request or answer broke Keap's contract, the test fails with the list (unless it is
    marked ``contract_violations_expected``)."""
    sb = Sandbox(sandbox_server)
    read_only = {"client_id", "client_secret", "tenant", "app_name"}
    defaults = {k: v for k, v in sb.control("GET", "config").items() if k not in read_only}
    fail_on_leftovers(request.node, sb.contract_violations())
    sb.control("POST", "reset")
    arm(request, sb.take_contract_violations)
    yield sb
    late = sb.take_contract_violations()
    sb.control("POST", "reset")
    sb.control("POST", "config", json=defaults)
    fail_on_violations(request.node, late)


@pytest.fixture
def aws(moto_endpoint: str, sandbox: Sandbox) -> Iterator[AwsResources]:
    """Fresh tables/secrets/queues on the moto server, and the environment pointing at them."""
    from keaplink import root

    resources = create_resources(moto_endpoint, uuid.uuid4().hex[:8], SANDBOX_CLIENT)
    previous = apply_env(
        {
            **resources.env(),
            "KEAP_AUTHORIZE_URL": f"{sandbox.url}/app/oauth/authorize",
            "KEAP_TOKEN_URL": f"{sandbox.url}/token",
            "KEAP_API_URL": f"{sandbox.url}/crm/rest",
            "KEAP_AUTH_MODE": "oauth",
            "POWERTOOLS_METRICS_NAMESPACE": "keaplink",
        }
    )
    root.reset()
    yield resources
    restore_env(previous)
    root.reset()
