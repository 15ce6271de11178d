"""Keap's contract as a test gate: a test whose requests (or the sandbox's answers to them) break the
vendored OpenAPI v2 contract fails, unless it is marked as sending off-spec requests on purpose.

A sandbox fixture *arms* the gate for its test with a function that takes (returns and clears) the
violations recorded so far. The ``pytest_runtest_call`` wrapper in ``tests/conftest.py`` then fails the
test itself right after its body ran; the fixture's teardown takes again, for what arrived later (or
was left unchecked because the test had already failed), and fails the teardown with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from keap_sandbox.testing import describe_violations

MARKER = "contract_violations_expected"

Take = Callable[[], list[dict[str, Any]]]
GATE = pytest.StashKey[Take]()


def arm(request: pytest.FixtureRequest, take: Take) -> None:
    """Check the test behind ``request`` once its body has run (see :func:`check_after_call`)."""
    request.node.stash[GATE] = take


def check_after_call(item: pytest.Item) -> None:
    take = item.stash.get(GATE, None)
    if take is not None:
        fail_on_violations(item, take())


def fail_on_violations(node: pytest.Item, violations: list[dict[str, Any]]) -> None:
    """``pytest.fail`` the test ``node`` with the list of violations, unless it carries
    ``@pytest.mark.contract_violations_expected`` (it then asserts what it expects itself)."""
    if not violations or node.get_closest_marker(MARKER) is not None:
        return
    pytest.fail(
        f"{node.nodeid}: {len(violations)} request(s)/answer(s) broke Keap's v2 contract "
        f"(sandbox/keap_sandbox/spec/keap-openapi-v2.yml):\n{describe_violations(violations)}\n"
        f"(a test that sends off-spec requests on purpose is marked @pytest.mark.{MARKER} and asserts them)",
        pytrace=False,
    )


def fail_on_leftovers(node: pytest.Item, violations: list[dict[str, Any]]) -> None:
    """Violations already recorded when a test begins were caused outside any test that checks them (a
    previous test's late request, or a test that reached the sandbox without its fixture): fail loudly
    rather than let the reset drop them."""
    if violations:
        pytest.fail(
            f"{len(violations)} contract violation(s) were recorded before {node.nodeid} began "
            f"(by an earlier test's late request, or a test not using the sandbox fixture):\n"
            f"{describe_violations(violations)}",
            pytrace=False,
        )
