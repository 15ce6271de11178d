"""Short soaks against the sandbox and the moto server, in the normal suite: the refresh path (5 simulated days,
and functions killed at their timeout) and the actions function with messages flowing through a day of Keap
outages, a spent quota, throttling and poison.

The full runs are ``make soak`` (``python -m keaplink_dev.soak --days 90 --message-days 3``).
"""

from __future__ import annotations

import pytest

from keaplink_dev.soak.messages import run_message_soak
from keaplink_dev.soak.refresh import STEPS, UNCLOSABLE, run_soak

pytestmark = pytest.mark.slow  # simulated days: 20 s to 2 min each


def test_five_day_soak_loses_no_token_except_in_the_unclosable_window(aws, sandbox) -> None:
    report = run_soak(days=5, seed=7, concurrency=10, sandbox_url=sandbox.url, bursts_per_day=4.0,
                      fault_5xx_rate=0.05, fault_timeout_rate=0.03, fault_drop_rate=0.02)
    print(report.table())

    # The run did what it is meant to: hourly runs, on-demand bursts, rotations, faults, crashes everywhere.
    assert report.scheduler_runs >= 5 * 24
    assert report.bursts > 0 and report.rotations_at_keap >= 5
    assert all(report.crashes_by_step[step] >= 1 for step in STEPS), report.crashes_by_step
    assert sum(report.faults_injected.values()) >= 1, report.faults_injected

    # No refresh token burned by two refreshers racing, and no lost connection outside the unclosable window.
    assert report.burned_by_races == 0, report.bugs
    assert report.reauth_bugs == 0, report.bugs
    assert set(report.reauth_by_cause) <= set(UNCLOSABLE), report.reauth_by_cause
    assert report.unexpected_errors == {}, report.unexpected_errors
    assert report.bugs == []

    # A crash after Keap rotated the token and before it was saved loses the connection (every such crash).
    assert report.reauth_by_cause.get("crash_before_save", 0) >= 1
    assert report.code_exchanges_at_keap == 1 + report.reauthorizations

    # Nobody was ever handed an expired token, and the connection ends connected with a token Keap accepts.
    assert report.expired_token_at_tick == 0
    assert report.expired_token_seen_by_callers == 0
    assert report.final_status == "connected" and report.final_token_valid


HARSH = dict(concurrency=4, bursts_per_day=12.0, fault_5xx_rate=0.0, fault_timeout_rate=0.0, fault_drop_rate=0.0,
             slow_rate=1.0, crash_rates={},
             budget_s={"scheduler": (110.0, 120.0), "action_401": (1.0, 9.0), "refresh_now": (1.0, 9.0)})


def test_functions_killed_at_their_timeout_lose_no_refresh_token(aws, sandbox) -> None:
    """Every Keap answer slow (5-10 s), callers with 1-9 s left: keaplink does not start what it cannot finish."""
    report = run_soak(days=3, seed=7, sandbox_url=sandbox.url, **HARSH)  # type: ignore[arg-type]
    print(report.table())
    assert report.tokens_lost_to_timeout == 0 and sum(report.killed_at_timeout.values()) == 0, report.bugs
    assert report.refreshes_not_started_for_time > 0  # the short budgets really were met
    assert set(report.reauth_by_cause) <= set(UNCLOSABLE) and report.unexpected_errors == {}


def test_without_deadlines_the_same_kills_lose_tokens(aws, sandbox) -> None:
    """The instrument: the same run with callers passing keaplink no deadline (as before) loses tokens."""
    report = run_soak(days=3, seed=7, sandbox_url=sandbox.url, deadlines=False, **HARSH)  # type: ignore[arg-type]
    assert report.tokens_lost_to_timeout > 0 and report.reauth_by_cause.get("timeout_before_save", 0) > 0
    assert report.bugs  # reported as bugs, not as the unclosable window


def test_a_day_of_outages_quota_and_throttling_loses_and_dead_letters_no_valid_message(aws, sandbox) -> None:
    report = run_message_soak(days=1, seed=5, sandbox_url=sandbox.url, messages_per_hour=8)
    print(report.table())
    # The day really had its events: holds for an outage, throttling and the spent quota, poison among messages.
    assert {"keap_unavailable", "throttled", "quota_spent"} <= set(report.hold_reasons), report.hold_reasons
    assert report.published_valid > 100 and report.published_poison > 0
    # Nothing valid lost or dead-lettered; every poison message in the DLQ with its reason; the queue empty.
    assert report.effects_missing == 0 and report.valid_dead_lettered == 0, report.bugs
    assert report.poison_with_reason == report.published_poison and report.left_in_queue == 0
    # Holding cost a record a receive or two, and Keap a probe now and then (one call each).
    assert report.max_receive_count <= 5 and report.batches_meeting_a_hold <= 2 * report.holds
    assert report.refused_while_held <= report.probes
    assert report.bugs == [] and report.final_status == "connected"
    # AWS's control plane as it behaves (slow and refused mapping updates, throttling, empty short polls): no
    # message dead-lettered without a reason, the queue never paused without a hold record.
    assert report.control_plane.get("mapping_updates", 0) >= 2 and report.control_plane.get("throttled", 0) > 0
    assert report.dead_lettered_without_reason == 0 and report.paused_without_hold_s == 0
