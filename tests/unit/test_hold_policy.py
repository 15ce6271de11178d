"""The pure decision to hold the actions queue, until when, and when to probe Keap again."""

from __future__ import annotations

from itertools import pairwise

import pytest

from keaplink.actions.hold.policy import (
    AFTER_RESET_S,
    FIRST_PROBE_S,
    MAX_PROBE_INTERVAL_S,
    Hold,
    HoldReason,
    after_failed_probe,
    probe_interval,
    should_hold,
    stronger,
)
from keaplink.errors import (
    InvalidMessage,
    KeapAuthError,
    KeapClientConfigError,
    KeapDown,
    KeapQuotaSpent,
    KeapRateLimited,
    KeapRequestRejected,
    KeapThrottledPersistently,
    KeapUnavailable,
    LeaseBusy,
    NeedsReauth,
    NotConnected,
    NotReady,
    OutOfTime,
)

NOW = 1_800_000_000.0


@pytest.mark.parametrize(("signal", "reason"), [
    (NotConnected("x"), HoldReason.NOT_CONNECTED),
    (NeedsReauth("x"), HoldReason.NEEDS_REAUTH),
    (KeapClientConfigError("invalid_client", 401), HoldReason.CREDENTIALS_REFUSED),
    (KeapAuthError("API key refused", 401), HoldReason.CREDENTIALS_REFUSED),
    (KeapQuotaSpent("spent", resets_at=NOW + 3600), HoldReason.QUOTA_SPENT),
    (KeapThrottledPersistently("429s", 120), HoldReason.THROTTLED),
    (KeapDown("5 calls failed", 503), HoldReason.KEAP_UNAVAILABLE),
    (LeaseBusy("busy"), HoldReason.REFRESH_BUSY),
])
def test_errors_that_mean_keap_cannot_serve_anyone_hold(signal: Exception, reason: HoldReason) -> None:
    hold = should_hold(signal, NOW)
    assert hold is not None and hold.reason is reason and hold.next_probe_at > NOW
    assert type(signal).__name__ in hold.detail


@pytest.mark.parametrize("signal", [
    KeapUnavailable("one 503", 503), KeapRateLimited("one 429", 3.0), KeapRequestRejected("400", 400),
    NotReady("no contact yet"), OutOfTime("no time"), InvalidMessage("bad body"), ValueError("bug"),
])
def test_errors_of_one_record_do_not_hold(signal: Exception) -> None:
    assert should_hold(signal, NOW) is None


def test_a_spent_quota_holds_until_its_reset_and_probes_just_after() -> None:
    hold = should_hold(KeapQuotaSpent("spent", resets_at=NOW + 5 * 3600), NOW)
    assert hold is not None and hold.until == NOW + 5 * 3600 and hold.next_probe_at == hold.until + AFTER_RESET_S
    unknown = should_hold(KeapQuotaSpent("spent"), NOW)
    assert unknown is not None and unknown.until is not None and unknown.until > NOW  # never "now" again


def test_a_long_retry_after_holds_for_exactly_that_long() -> None:
    hold = should_hold(KeapThrottledPersistently("Retry-After", 6 * 3600), NOW)
    assert hold is not None and hold.until == hold.next_probe_at == NOW + 6 * 3600


def test_an_outage_has_no_known_end_and_is_probed_in_a_minute() -> None:
    hold = should_hold(KeapDown("down", 503), NOW)
    assert hold == Hold(HoldReason.KEAP_UNAVAILABLE, hold.detail, None, NOW + FIRST_PROBE_S)


def test_probes_back_off_to_every_fifteen_minutes() -> None:
    intervals = [probe_interval(n) for n in range(8)]
    assert intervals[:4] == [60, 120, 240, 480] and intervals[-1] == MAX_PROBE_INTERVAL_S
    assert all(a <= b for a, b in pairwise(intervals))
    # A 10-hour outage costs Keap a handful of probes, not a stream of calls.
    t, probes, failed = 0.0, 0, 0
    while t < 10 * 3600:
        t += probe_interval(failed)
        probes, failed = probes + 1, failed + 1
    assert probes <= 45


def test_a_failed_probe_keeps_the_reason_or_takes_the_one_it_met() -> None:
    held = should_hold(KeapDown("down", 503), NOW)
    assert held is not None
    again = after_failed_probe(held, KeapUnavailable("503", 503), failed_probes=2, now=NOW)
    assert again.reason is HoldReason.KEAP_UNAVAILABLE and again.next_probe_at == NOW + probe_interval(3)
    spent = after_failed_probe(held, KeapQuotaSpent("spent", resets_at=NOW + 7200), failed_probes=0, now=NOW)
    assert spent.reason is HoldReason.QUOTA_SPENT and spent.next_probe_at == NOW + 7200 + AFTER_RESET_S


def test_the_reason_a_human_must_act_on_wins() -> None:
    down = should_hold(KeapDown("down", 503), NOW)
    reauth = should_hold(NeedsReauth("dead"), NOW)
    spent = should_hold(KeapQuotaSpent("spent", resets_at=NOW + 3600), NOW)
    assert down and reauth and spent
    assert stronger(down, reauth) is reauth and stronger(reauth, down) is reauth
    assert stronger(down, spent) is spent and stronger(None, down) is down


# --- the reconciler's decision, and holds for batches that cannot open ----------------------------------------
def test_converge_makes_the_mapping_agree_with_the_hold() -> None:
    from keaplink.actions.hold.policy import converge

    table = [  # (held, lifting, mapping) → action
        ((True, False, "Enabled"), "pause"), ((True, False, "Mixed"), "pause"), ((True, False, "Disabled"), "none"),
        ((False, True, "Disabled"), "resume"), ((False, True, "Enabled"), "clear"), ((False, True, None), "clear"),
        ((False, False, "Disabled"), "resume"), ((False, False, "Enabled"), "none"), ((False, False, None), "none"),
        ((True, False, None), "none"),
    ]
    for args, action in table:
        assert converge(*args) == action, args
    for changing in ("Creating", "Enabling", "Disabling", "Updating", "Deleting"):
        for held, lifting in ((True, False), (False, True), (False, False)):
            assert converge(held, lifting, changing) == "wait"  # AWS refuses updates meanwhile


def test_a_batch_that_cannot_open_is_held_whatever_failed() -> None:
    from keaplink.actions.hold.policy import opening_hold
    from keaplink.errors import ConfigError, OutOfTime

    class ClientError(Exception):  # what botocore raises for KMS, DynamoDB, Secrets Manager
        pass

    aws = opening_hold(ClientError("KMS: DisabledException"), NOW)
    assert aws is not None and aws.reason is HoldReason.OPENING_FAILED and "DisabledException" in aws.detail
    config = opening_hold(ConfigError("api_key is not set"), NOW)
    assert config is not None and config.reason is HoldReason.CONFIG_ERROR
    assert opening_hold(OutOfTime("no time"), NOW) is None  # one invocation's problem: the records go back
    quota = opening_hold(KeapQuotaSpent("spent", resets_at=NOW + 60), NOW)
    assert quota is not None and quota.reason is HoldReason.QUOTA_SPENT


def test_an_operators_pause_outranks_every_other_reason() -> None:
    paused = Hold(HoldReason.PAUSED_BY_OPERATOR, "maintenance", None, NOW)
    for reason in HoldReason:
        assert stronger(paused, Hold(reason, "x", NOW + 99, NOW + 99)).reason is HoldReason.PAUSED_BY_OPERATOR
