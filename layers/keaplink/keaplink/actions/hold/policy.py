"""Pure decisions about holding the actions queue: does this error mean Keap cannot serve *any* record for a
while, why, until when, and when to look again. No I/O here: everything is unit-tested alone.

A hold is the answer to "retrying this record later will not help sooner than Keap recovers": returning
records one by one would only spend their receive count toward the DLQ (20 receives, about an hour) and
hammer Keap. So the queue is paused instead, and a probe — one cheap call, when :attr:`Hold.next_probe_at`
comes — decides when to resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from keaplink.errors import (
    ConfigError,
    KeapAuthError,
    KeapClientConfigError,
    KeapDown,
    KeaplinkError,
    KeapQuotaSpent,
    KeapThrottledPersistently,
    LeaseBusy,
    NeedsReauth,
    NotConnected,
)

FIRST_PROBE_S = 60.0  # the scheduled check runs every minute
MAX_PROBE_INTERVAL_S = 900.0  # an outage is probed at most every 15 minutes once it has lasted a while
CREDENTIALS_PROBE_S = 900.0  # refused credentials need a human: look every 15 minutes
AFTER_RESET_S = 5.0  # probe a few seconds after Keap's quota window ends, not on the dot
UNKNOWN_RESET_S = 3600.0  # a spent quota without a reset time: look again in an hour


class HoldReason(str, Enum):
    NOT_CONNECTED = "not_connected"  # the admin has not connected Keap yet
    NEEDS_REAUTH = "needs_reauth"  # the refresh token is dead: the admin must reconnect
    CREDENTIALS_REFUSED = "credentials_refused"  # invalid_client, or a revoked API key: fix the secret
    QUOTA_SPENT = "quota_spent"  # Keap's daily quota is spent (or down to keaplink's reserve) until it resets
    THROTTLED = "throttled"  # Keap keeps answering 429 or asked for a long wait
    KEAP_UNAVAILABLE = "keap_unavailable"  # calls in a row failed (5xx, timeouts) after their retries
    REFRESH_BUSY = "refresh_busy"  # the token is expired and another caller's refresh holds the lease
    OPENING_FAILED = "opening_failed"  # a batch could not open: KMS, DynamoDB, Secrets Manager (not Keap)
    CONFIG_ERROR = "config_error"  # a deployment that cannot work, e.g. api_key mode with an empty key
    PAUSED_BY_OPERATOR = "paused_by_operator"  # `keaplink pause`: only `keaplink resume` lifts it


# When two records of a batch meet different reasons, the one a human must act on, then the longest, wins.
_RANK = [HoldReason.PAUSED_BY_OPERATOR, HoldReason.CONFIG_ERROR, HoldReason.NEEDS_REAUTH, HoldReason.NOT_CONNECTED,
         HoldReason.CREDENTIALS_REFUSED, HoldReason.QUOTA_SPENT,
         HoldReason.THROTTLED, HoldReason.KEAP_UNAVAILABLE, HoldReason.OPENING_FAILED,
         HoldReason.REFRESH_BUSY]


@dataclass(frozen=True)
class Hold:
    reason: HoldReason
    detail: str
    until: float | None  # when Keap is expected to serve again, if known (a quota's reset, a Retry-After)
    next_probe_at: float  # when the scheduled check may call Keap once to see whether it serves

    def outranks(self, other: Hold) -> bool:
        return _RANK.index(self.reason) < _RANK.index(other.reason)


def _reason_for(signal: BaseException) -> HoldReason | None:
    table: dict[type[BaseException], HoldReason] = {
        NotConnected: HoldReason.NOT_CONNECTED,
        NeedsReauth: HoldReason.NEEDS_REAUTH,
        KeapClientConfigError: HoldReason.CREDENTIALS_REFUSED,
        KeapAuthError: HoldReason.CREDENTIALS_REFUSED,  # a fresh credential refused too (e.g. a revoked API key)
        KeapQuotaSpent: HoldReason.QUOTA_SPENT,
        KeapThrottledPersistently: HoldReason.THROTTLED,
        KeapDown: HoldReason.KEAP_UNAVAILABLE,
        LeaseBusy: HoldReason.REFRESH_BUSY,
    }
    return next((table[c] for c in type(signal).__mro__ if c in table), None)


def should_hold(signal: BaseException, now: float) -> Hold | None:
    """The hold this error calls for, or None when it concerns one record (retry it, or dead-letter it)."""
    reason = _reason_for(signal)
    if reason is None:
        return None
    detail = f"{type(signal).__name__}: {signal}"[:500]
    until: float | None = None
    if isinstance(signal, KeapQuotaSpent):
        until = signal.resets_at or (now + signal.retry_after if signal.retry_after else now + UNKNOWN_RESET_S)
        return Hold(reason, detail, until, until + AFTER_RESET_S)
    if isinstance(signal, KeapThrottledPersistently):
        until = now + (signal.retry_after if signal.retry_after else FIRST_PROBE_S)
        return Hold(reason, detail, until, until)
    if reason is HoldReason.CREDENTIALS_REFUSED:
        return Hold(reason, detail, None, now + CREDENTIALS_PROBE_S)
    return Hold(reason, detail, None, now + FIRST_PROBE_S)


def opening_hold(signal: BaseException, now: float) -> Hold | None:
    """The hold for an error met while a batch *opens* (its one token read): Keap's errors as
    :func:`should_hold` says; a configuration error, or any error that is not keaplink's own (KMS, DynamoDB,
    Secrets Manager, botocore), fails every batch alike — held and alarmed, never drained to the DLQ by SQS's
    ``maxReceiveCount``. The probe opens the same way, so it lifts the hold once opening works again."""
    hold = should_hold(signal, now)
    if hold is not None:
        return hold
    detail = f"{type(signal).__name__}: {signal}"[:500]
    if isinstance(signal, ConfigError):
        return Hold(HoldReason.CONFIG_ERROR, detail, None, now + CREDENTIALS_PROBE_S)
    if not isinstance(signal, KeaplinkError):
        return Hold(HoldReason.OPENING_FAILED, detail, None, now + FIRST_PROBE_S)
    return None


def probe_interval(failed_probes: int) -> float:
    """1, 2, 4, 8, then every 15 minutes: an outage of hours costs Keap a handful of calls."""
    return float(min(MAX_PROBE_INTERVAL_S, FIRST_PROBE_S * 2.0 ** min(10, max(0, failed_probes))))


def after_failed_probe(held: Hold, error: BaseException, failed_probes: int, now: float) -> Hold:
    """The hold after a probe failed with ``error`` (``failed_probes`` before this one).

    A probe is one call, so a single failure of any kind means Keap still cannot serve: the reason the probe
    met wins when it is one (a quota spent meanwhile), else the hold keeps its reason. A known end (a quota's
    reset, a Retry-After) decides the next probe; else it backs off.
    """
    met = should_hold(error, now)
    if met is not None and met.until is not None:
        return met
    reason = met.reason if met is not None else held.reason
    slow = reason in (HoldReason.CREDENTIALS_REFUSED, HoldReason.CONFIG_ERROR)
    backoff = CREDENTIALS_PROBE_S if slow else probe_interval(failed_probes + 1)
    detail = f"probe failed: {type(error).__name__}: {error}"[:500]
    return Hold(reason, detail, None, now + backoff)


def stronger(current: Hold | None, new: Hold) -> Hold:
    """The hold to keep when ``new`` meets ``current`` (two records, or two batches, met different reasons)."""
    if current is None or new.outranks(current):
        return new
    if current.outranks(new):
        return current
    return new if (new.until or new.next_probe_at) >= (current.until or current.next_probe_at) else current


# --- the reconciler: what should be (the hold) and what is (the event source mapping) -------------------------
# An event source mapping is Creating, Enabling, Enabled, Disabling, Disabled, Updating or Deleting (Lambda API,
# GetEventSourceMapping ``State``); UpdateEventSourceMapping is refused while it changes (ResourceInUseException).
TRANSITIONAL_STATES = frozenset({"Creating", "Enabling", "Disabling", "Updating", "Deleting"})
MIXED = "Mixed"  # more than one SQS mapping, some enabled and some not


def converge(held: bool, lifting: bool, mapping: str | None) -> str:
    """What the minute check does so that the mapping agrees with the hold.

    ``held``: a hold stands (the queue should be paused); ``lifting``: Keap serves again (or the operator
    resumed) and the hold's record waits for the mapping to be enabled; ``mapping``: its state, None when there
    is none. Returns ``pause``, ``resume``, ``clear`` (the mapping is enabled: the lifted hold's record may go),
    ``wait`` (the mapping is changing: look again next minute) or ``none``.
    """
    if mapping is None:
        return "clear" if lifting else "none"
    if mapping in TRANSITIONAL_STATES:
        return "wait"
    if held:
        return "pause" if mapping in ("Enabled", MIXED) else "none"
    if mapping == "Enabled":
        return "clear" if lifting else "none"
    return "resume"  # Disabled (a lift under way, a failed lift, a change by hand) or partly disabled
