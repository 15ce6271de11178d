"""Exactly once for the actions Keap cannot repeat safely (a goal achieved twice starts a campaign twice; a note
written twice is two notes): the application names each event (``event_id``), keaplink claims it per user before
calling Keap and marks it done after. What a claim found means is decided here (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from keaplink.errors import KeapDown, KeapUnavailable

CLAIM_STALE_S = 900.0  # longer than the actions function's timeout: a claim this old belongs to an attempt that died
EVENT_MEMORY_S = 90 * 86400  # longer than a message can live: 7 days queued + 14 in the DLQ, redriven, again


@dataclass(frozen=True)
class Claim:
    """The event's item as the claim left or found it: ``mine`` when this attempt just wrote it."""

    mine: bool
    done: bool = False
    claimed_at: float | None = None
    outcome: str | None = None


class Seen(str, Enum):
    NEW = "new"  # this attempt holds the claim: call Keap
    DUPLICATE = "duplicate"  # done before: nothing to do
    IN_FLIGHT = "in_flight"  # another attempt holds a fresh claim: come back later
    UNKNOWN = "unknown"  # an attempt died mid-call: whether Keap acted is unknown, a human decides


def seen(claim: Claim, now: float) -> Seen:
    if claim.mine:
        return Seen.NEW
    if claim.done:
        return Seen.DUPLICATE
    if claim.claimed_at is not None and now - claim.claimed_at < CLAIM_STALE_S:
        return Seen.IN_FLIGHT
    return Seen.UNKNOWN


def may_have_acted(error: BaseException) -> bool:
    """Whether Keap may have done what a call that raised ``error`` asked: only when no answer came back (a
    timeout, a dropped connection). A refusal, a 5xx answer, a throttle, or a call never sent did nothing."""
    return isinstance(error, KeapUnavailable) and not isinstance(error, KeapDown) and error.status == 0
