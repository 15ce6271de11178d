"""Keap's contract as a test gate: a test whose requests (or the sandbox's answers to them) break the
vendored OpenAPI v2 contract fails, unless it is marked as sending off-spec requests on purpose."""

from __future__ import annotations

from typing import Any

import pytest

from keap_sandbox.testing import describe_violations

MARKER = "contract_violations_expected"


def fail_on_violations(request: pytest.FixtureRequest, violations: list[dict[str, Any]]) -> None:
    """``pytest.fail`` the test behind ``request`` with the list of violations, unless it carries
    ``@pytest.mark.contract_violations_expected`` (it then asserts what it expects itself)."""
    if not violations or request.node.get_closest_marker(MARKER) is not None:
        return
    pytest.fail(
        f"{request.node.nodeid}: {len(violations)} request(s)/answer(s) broke Keap's v2 contract "
        f"(sandbox/keap_sandbox/spec/keap-openapi-v2.yml):\n{describe_violations(violations)}\n"
        f"(a test that sends off-spec requests on purpose is marked @pytest.mark.{MARKER} and asserts them)",
        pytrace=False,
    )
