"""Typed errors. Raised at the boundary where they are detected and mapped by type, never by text."""

from __future__ import annotations


class KeaplinkError(Exception):
    """Base class of every error keaplink raises on purpose."""


class ConfigError(KeaplinkError):
    """A setting is missing or invalid: the template (or the environment of a local run) must change."""


# --- Keap HTTP API -------------------------------------------------------------------------------
class KeapError(KeaplinkError):
    """Keap answered with an error (``status`` is the HTTP status, 0 when there was no answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class KeapAuthError(KeapError):
    """401: the access token or API key was refused."""


class KeapRateLimited(KeapError):
    """429: over one of Keap's throttles; ``retry_after`` seconds when Keap said so."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message, 429)
        self.retry_after = retry_after


class KeapUnavailable(KeapError):
    """5xx, timeout or connection error: try again later."""


class KeapDown(KeapUnavailable):
    """Several Keap calls in a row failed (5xx, timeouts) even after their in-place retries: the session stopped
    calling Keap. Not one record's bad luck but an outage: hold the queue and probe."""


class KeapThrottledPersistently(KeapRateLimited):
    """Keap kept answering 429 (or asked for a long wait): the session stopped calling Keap until ``retry_after``."""


class KeapQuotaSpent(KeapRateLimited):
    """Keap's daily quota (per client id, or per Keap app) is spent, or down to the reserve keaplink keeps.

    ``resets_at``: epoch seconds when Keap's quota window ends (``x-keap-product-quota-expiry-time``), if known.
    """

    def __init__(self, message: str, resets_at: float | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after)
        self.resets_at = resets_at


class KeapRequestRejected(KeapError):
    """400/403/404/409…: the request itself is wrong; retrying the same request will not help."""


# --- OAuth -------------------------------------------------------------------------------------
class RefreshTokenDead(KeapError):
    """Keap answered invalid_grant to a refresh: only a new authorization helps."""


class RefreshTokenDoubtful(RefreshTokenDead):
    """Keap answered invalid_request to a refresh. One reported case meant a dead refresh token, but OAuth also
    answers it to a malformed request, so the refresh path asks once more before declaring the token dead."""


class KeapClientConfigError(KeapError):
    """invalid_client: the client id or secret is wrong. A configuration error, not a dead token."""


class CodeExchangeFailed(KeapError):
    """The authorization code could not be exchanged (bad, used or expired code)."""


class TokenPairInvalid(KeaplinkError):
    """Pasted tokens that are not a token pair's shape: nothing was sent to Keap, nothing changed."""


class TokenPairRefused(KeapError):
    """Keap refused the refresh token of a pair to import: nothing was stored."""


class TokenPairUnconfirmed(KeapError):
    """Keap did not answer the refresh of a pair to import: nothing was stored, and Keap may have used the
    pair's refresh token up."""


class OutcomeUnknown(KeaplinkError):
    """An action that must not happen twice (a goal, a note) may have happened: an earlier attempt stopped while
    Keap was being asked. Never retried: dead-lettered for a human to check in Keap."""


class OAuthStateInvalid(KeaplinkError):
    """The callback's ``state`` is missing, unknown, expired, already used or not this admin's."""


class OAuthDenied(KeaplinkError):
    """Keap redirected back with ``error=…`` (e.g. access_denied)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


# --- Connection and token store ---------------------------------------------------------------
class NotConnected(KeaplinkError):
    """No token has been stored yet: the admin has to connect Keap."""


class NeedsReauth(KeaplinkError):
    """The refresh token is dead: the admin has to reconnect Keap."""


class TokenConflict(KeaplinkError):
    """A conditional write lost against a concurrent writer (version number moved on)."""


class LeaseBusy(KeaplinkError):
    """Another caller holds the refresh lease and did not finish in time."""


# --- Time ----------------------------------------------------------------------------------------
class OutOfTime(KeaplinkError):
    """The invocation has too little time left to start this wait or call (and still finish its work after it).

    Nothing was started: no Keap call whose answer could be lost, no sleep past the function's timeout.
    """


# --- Messages ----------------------------------------------------------------------------------
class InvalidMessage(KeaplinkError):
    """An SQS message that can never be processed (malformed, unknown type, invalid field)."""


class NotReady(KeaplinkError):
    """A message that cannot be processed *yet* (e.g. a press before the user's signup)."""
