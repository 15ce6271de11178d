"""A short refresh soak (5 simulated days) against the sandbox and the moto server, in the normal suite.

The full run is ``python -m keaplink_dev.soak --days 90`` (see devtools/keaplink_dev/soak.py).
"""

from __future__ import annotations

from keaplink_dev.soak import STEPS, UNCLOSABLE, run_soak


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
