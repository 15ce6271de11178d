"""Fixtures for the Keap sandbox tests: one sandbox per module (checking Keap's contract), reset before
every test; a test whose requests or answers break the contract fails (see tests/support/contract.py;
the check after each test's body is the wrapper in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from keap_sandbox.state import SandboxConfig
from keap_sandbox.testing import SandboxHandle, start_sandbox
from tests.sandbox.sandbox_helpers import REDIRECT_URI, Api
from tests.support.contract import arm, fail_on_leftovers, fail_on_violations

_MUTABLE_DEFAULTS = {k: v for k, v in SandboxConfig().to_json().items() if k in SandboxConfig.MUTABLE}


@pytest.fixture(scope="module")
def _sandbox() -> Iterator[SandboxHandle]:
    with start_sandbox(validate_contract=True) as handle:
        yield handle


@pytest.fixture
def sb(_sandbox: SandboxHandle, request: pytest.FixtureRequest) -> Iterator[SandboxHandle]:
    fail_on_leftovers(request.node, _sandbox.control.contract_violations())
    _sandbox.control.reset()
    _sandbox.control.configure(**{**_MUTABLE_DEFAULTS, "validate_contract": True})

    def take() -> list[dict[str, Any]]:
        found = _sandbox.control.contract_violations()
        _sandbox.control.clear_contract_violations()
        return found

    arm(request, take)
    yield _sandbox
    fail_on_violations(request.node, take())


@pytest.fixture
def tokens(sb: SandboxHandle) -> dict[str, Any]:
    return sb.control.obtain_tokens(REDIRECT_URI)


@pytest.fixture
def api(sb: SandboxHandle, tokens: dict[str, Any]) -> Api:
    return Api(sb, token=tokens["access_token"])
