"""The composition root: the one place that builds keaplink's collaborators from configuration.

Everything is built on first use and kept for the container's life (the admin password for 5 minutes, so a
rotation counts in warm containers too). Every cache registers itself (:func:`per_container`,
:class:`Expiring`) and :func:`reset` forgets them all, so tests point keaplink elsewhere through the
environment. Packages are imported inside the factories: a function imports only the part of the layer it uses.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from keaplink.aws import bind_table, make_client, refresh_path
from keaplink.config import Settings, get_settings
from keaplink.observability import MetricsPort

if TYPE_CHECKING:
    from keaplink.actions.batch import ActionsDeps
    from keaplink.actions.facts import KeapFacts
    from keaplink.actions.hold.check import CheckDeps
    from keaplink.actions.hold.holding import Holding
    from keaplink.actions.hold.store import HoldStore, QuotaLog
    from keaplink.actions.hold.switch import MappingSwitch
    from keaplink.actions.hold.table import HoldItem
    from keaplink.actions.queue import ActionsQueue
    from keaplink.actions.table import DataItem
    from keaplink.actions.tags import TagIds
    from keaplink.actions.users import UserStore
    from keaplink.admin.gate import Gate
    from keaplink.admin.lockout import FailedSignIns
    from keaplink.admin.routes import StatusSources
    from keaplink.connection.credentials import ClientCredentials
    from keaplink.connection.crypto import RememberingCipher
    from keaplink.connection.oauth import OAuthClient
    from keaplink.connection.pair import TokenImporter
    from keaplink.connection.refresh import Refresher, RefreshTimings
    from keaplink.connection.states import StateStore
    from keaplink.connection.store import TokenStore
    from keaplink.connection.table import ConnectionItem
    from keaplink.connection.timeline import TableTimeline
    from keaplink.keap.budget import SharedBudget
    from keaplink.keap.budget_table import BudgetItem
    from keaplink.keap.deadline import Deadline
    from keaplink.keap.quota import QuotaGauge
    from keaplink.keap.session import AuthSource, FailureStreak, KeapSession

Clock = Callable[[], float]

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()  # botocore's session is not safe for concurrent client creation

#: What :func:`reset` forgets: every cache below registers its own ``cache_clear`` here when it is made.
_forgetters: list[Callable[[], None]] = [get_settings.cache_clear]


def _forgets[C: Callable[[], None]](clear: C) -> C:
    _forgetters.append(clear)
    return clear


class Cached[T](Protocol):
    def __call__(self) -> T: ...
    def cache_clear(self) -> None: ...


def per_container[T](factory: Callable[[], T]) -> Cached[T]:
    """Build on first use, keep for the container's life, forgotten by :func:`reset`."""
    cached = lru_cache(maxsize=1)(factory)
    _forgets(cached.cache_clear)
    return cached


@_forgets
def _forget_clients() -> None:
    with _clients_lock:
        _clients.clear()


ADMIN_SECRET_TTL_S = 300.0  # how long a rotated admin password may take to count in a warm container


class Expiring[T]:
    """A value loaded on first use and again once it is older than ``ttl_s``."""

    def __init__(self, load: Callable[[], T], ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._load = load
        self.ttl_s = ttl_s
        self.clock = clock
        self._lock = threading.Lock()
        self._value: tuple[float, T] | None = None
        _forgets(self.cache_clear)

    def __call__(self) -> T:
        with self._lock:
            if self._value is None or self.clock() - self._value[0] >= self.ttl_s:
                self._value = (self.clock(), self._load())
            return self._value[1]

    def cache_clear(self) -> None:
        with self._lock:
            self._value = None


def settings() -> Settings:
    return get_settings()


# --- AWS ------------------------------------------------------------------------------------------------
def aws_client(service: str) -> Any:
    """One botocore client per service and container, honouring ``AWS_ENDPOINT_URL``."""
    found = _clients.get(service)
    if found is None:
        with _clients_lock:
            found = _clients.get(service) or make_client(service, settings())
            _clients[service] = found
    return found


def _secret(secret_id: str) -> str:
    return str(aws_client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"])


@per_container
def connection_table() -> type[ConnectionItem]:
    from keaplink.connection.table import ConnectionItem

    # The token, its lease and the sign-in lockout: bounded to fit the refresh's save (keaplink.aws).
    return bind_table(ConnectionItem, settings().need("connection_table"), settings(), refresh_path(settings()))


@per_container
def data_table() -> type[DataItem]:
    from keaplink.actions.table import DataItem

    return bind_table(DataItem, settings().need("data_table"), settings())


# --- the connection -----------------------------------------------------------------------------------
@per_container
def client_credentials() -> ClientCredentials:
    """Keap client id/secret or API key, from Secrets Manager (they change only when an installer rotates)."""
    from keaplink.connection.credentials import ClientCredentials

    return ClientCredentials.from_secret(_secret(settings().need("credentials_secret_id")))


def token_store(connection_id: str | None = None) -> TokenStore:
    from keaplink.connection.store import TokenStore

    return TokenStore(connection_id or settings().connection_id, connection_table, token_cipher())


@per_container
def token_cipher() -> RememberingCipher:
    """Per container: KMS, remembering what it decrypted (a batch's token read costs no KMS call when the token
    has not changed since the last one)."""
    from keaplink.connection.crypto import KmsCipher, RememberingCipher

    return RememberingCipher(KmsCipher(lambda: aws_client("kms"), lambda: settings().need("token_kms_key_id")))


def state_store() -> StateStore:
    from keaplink.connection.states import StateStore

    return StateStore(connection_table)


def timeline() -> TableTimeline:
    from keaplink.connection.timeline import TableTimeline

    return TableTimeline(settings().connection_id, connection_table)


def oauth_client() -> OAuthClient:
    """Keap's token endpoint, each call on a priority slot of the shared Keap budget (a burst never starves a
    refresh)."""
    from keaplink.connection.oauth import OAuthClient

    return OAuthClient(settings().keap_token_url, client_credentials, settings().http_timeout_s,
                       gate=lambda: priority_budget().acquire())


def refresh_timings() -> RefreshTimings:
    """The lease outlives every function that may hold it; a token call may take the HTTP timeout."""
    from keaplink.connection.refresh import RefreshTimings

    return RefreshTimings(lease_ttl_s=settings().refresh_lease_s, keap_call_s=settings().http_timeout_s)


def refresher(metrics: MetricsPort | None = None, clock: Clock = time.time) -> Refresher:
    from keaplink.connection.refresh import Refresher
    from keaplink.observability import NullMetrics

    return Refresher(store=token_store(), oauth=oauth_client(), clock=clock, metrics=metrics or NullMetrics(),
                     timings=refresh_timings(), timeline=timeline())


def token_importer() -> TokenImporter:
    """Starts the connection from a token pair made in Keap's developer portal."""
    from keaplink.connection.pair import TokenImporter, keap_probe

    return TokenImporter(store=token_store(), oauth=oauth_client(), timeline=timeline(),
                         probe=keap_probe(settings().keap_api_url, settings().http_timeout_s))


def keap_auth(metrics: MetricsPort | None = None, through: Refresher | None = None) -> AuthSource:
    """The credential source for Keap calls in the configured auth mode (OAuth ``through`` a given refresher)."""
    from keaplink.connection.access import ApiKeyAccess, OAuthAccess

    if settings().is_api_key_mode:
        return ApiKeyAccess(lambda: client_credentials().api_key)
    return OAuthAccess(through or refresher(metrics))


# --- the admin panel ----------------------------------------------------------------------------------
def _load_admin_password() -> str:
    from keaplink.admin.auth import password_from_secret

    return password_from_secret(_secret(settings().need("admin_secret_id")))


admin_password = Expiring(_load_admin_password, ADMIN_SECRET_TTL_S)


def failed_sign_ins() -> FailedSignIns:
    from keaplink.admin.lockout import FailedSignIns

    return FailedSignIns(connection_table)


def admin_gate() -> Gate:
    """Who may use the admin routes: the password read only for a session cookie of the right shape or
    well-formed credentials of an unlocked source, and then from the 5-minute cache."""
    from keaplink.admin.gate import Gate

    return Gate(password=admin_password, failures=failed_sign_ins, session_salt=settings().admin_secret_id or "")


def dead_letter_glance() -> dict[str, Any]:
    """The DLQ's count and newest reasons, peeked and released at once (nothing is hidden)."""
    from keaplink.contract.dead_letters import DeadLetterQueue

    return DeadLetterQueue(lambda: aws_client("sqs"), settings().need("dlq_url")).glance()


def status_sources() -> StatusSources:
    from keaplink.admin.routes import StatusSources

    return StatusSources(store=token_store(), timeline=timeline(), dead_letters=dead_letter_glance,
                         queue=queue_status)


def client_id() -> str:
    return client_credentials().client_id


# --- the actions --------------------------------------------------------------------------------------
def mapping_switch() -> MappingSwitch:
    from keaplink.actions.hold.switch import MappingSwitch

    return MappingSwitch(lambda: aws_client("lambda"), settings().actions_function, timeline())


@per_container
def hold_table() -> type[HoldItem]:
    """The hold's items live in the connection table (``HOLD#<id>``, ``QUOTA#<id>``): every function sees them."""
    from keaplink.actions.hold.table import HoldItem

    return bind_table(HoldItem, settings().need("connection_table"), settings())


def hold_store() -> HoldStore:
    from keaplink.actions.hold.store import HoldStore

    return HoldStore(settings().connection_id, hold_table)


def holding(metrics: MetricsPort | None = None) -> Holding:
    from keaplink.actions.hold.holding import Holding

    return Holding(hold_store(), mapping_switch(), metrics)


def resume_queue() -> None:
    """The connection works again (a reconnect, a refresh): make a held queue's probe due now; the actions
    function's minute check lifts the hold and resumes the queue (it alone may change the mapping)."""
    from keaplink.actions.hold.holding import after_reconnect_quietly

    after_reconnect_quietly(hold_store(), time.time())


def queue_status() -> dict[str, Any]:
    """The hold and Keap's latest quota reading, as plain values for the admin panel."""
    from keaplink.actions.hold.store import describe

    store = hold_store()
    state, mapping = store.load_all()
    return describe(state, store.load_quota(), mapping)


@per_container
def actions_queue() -> ActionsQueue:
    """Per container: its redrive policy is looked up once."""
    from keaplink.actions.queue import ActionsQueue

    return ActionsQueue(lambda: aws_client("sqs"), lambda: settings().need("queue_url"))


@per_container
def quota_gauge() -> QuotaGauge:
    """Per container: Keap's latest quota reading paces the next batch's first call too."""
    from keaplink.keap.quota import QuotaGauge

    return QuotaGauge()


@per_container
def failure_streak() -> FailureStreak:
    """Per container: Keap calls failing in a row across batches (one record per batch still sees an outage)."""
    from keaplink.keap.session import FailureStreak

    return FailureStreak()


@per_container
def quota_log() -> QuotaLog:
    from keaplink.actions.hold.store import QuotaLog

    return QuotaLog(hold_store, settings().keap_rate_budget, 1)  # the pace of the deployment's shared budget


@per_container
def budget_table() -> type[BudgetItem]:
    """The shared Keap budget's item lives in the connection table (``BUDGET#<id>``)."""
    from keaplink.keap.budget_table import BudgetItem

    return bind_table(BudgetItem, settings().need("connection_table"), settings())


def _shared_budget(priority: bool) -> SharedBudget:
    """The deployment's Keap budget as this container uses it. Out of reach, the container falls back to a
    conservative share: the budget less the priority reserve, over the event source's maximum concurrency."""
    from keaplink.keap.budget import BudgetRules, SharedBudget, fallback_share
    from keaplink.keap.budget_table import TableBudgetStore

    s = settings()
    rules = BudgetRules(rate_per_s=s.keap_rate_budget)
    share = min(fallback_share(rules, s.actions_containers), s.keap_max_rps)
    return SharedBudget(TableBudgetStore(s.connection_id, budget_table), rules, fallback_rps=share, priority=priority,
                        max_rate=s.keap_max_rps)


@per_container
def rate_limiter() -> SharedBudget:
    """Per container: the actions' way into the deployment's shared Keap budget (normal priority)."""
    return _shared_budget(priority=False)


@per_container
def priority_budget() -> SharedBudget:
    """Per container: the probe's and the refresh path's way in, with the reserve the actions never take."""
    return _shared_budget(priority=True)


def user_store() -> UserStore:
    from keaplink.actions.users import UserStore

    return UserStore(data_table)


@per_container
def tag_ids() -> TagIds:
    """Per container: the steady state of a first press is one Keap call."""
    from keaplink.actions.tags import TagIds

    return TagIds(user_store())


@per_container
def keap_facts() -> KeapFacts:
    """Per container: the connection's Keap user (notes), read once per Keap app."""
    from keaplink.actions.facts import KeapFacts

    return KeapFacts()


def keap_session(metrics: MetricsPort | None = None, through: Refresher | None = None,
                 deadline: Deadline | None = None, clock: Clock = time.time, probe: bool = False) -> KeapSession:
    """A session with a fresh credential read (the one token read of an SQS batch), within ``deadline``, paced
    by Keap's daily quota (``clock``: epoch seconds, for the quota's reset). A ``probe`` is one attempt."""
    from keaplink.keap.quota import DEPLOYMENT_STEADY_RPS
    from keaplink.keap.session import KeapSession, Pacing, Retries

    return KeapSession(settings().keap_api_url, keap_auth(metrics, through), settings().http_timeout_s,
                       limiter=priority_budget() if probe else rate_limiter(), metrics=metrics, deadline=deadline,
                       retries=Retries(transient_attempts=1, rate_limited_attempts=1) if probe else None,
                       pacing=Pacing(quota_gauge(), 1, clock, DEPLOYMENT_STEADY_RPS), streak=failure_streak())


def actions(metrics: MetricsPort, through: Refresher | None = None, clock: Clock = time.time) -> ActionsDeps:
    """The actions function's collaborators (``through``: a refresher of the caller's, e.g. the benchmark's;
    ``clock``: epoch seconds, simulated by tests that need hours to pass)."""
    from keaplink.actions.batch import ActionsDeps
    from keaplink.actions.service import ActionService
    from keaplink.contract.dead_letters import DeadLetterQueue

    via = through or (refresher(metrics, clock) if not settings().is_api_key_mode else None)
    return ActionsDeps(
        service=ActionService(users=user_store(), tags=tag_ids(), button_tag=settings().button_tag, metrics=metrics,
                              facts=keap_facts(), clock=clock),
        open_session=lambda deadline: keap_session(metrics, via, deadline, clock),
        dead_letters=DeadLetterQueue(lambda: aws_client("sqs"), settings().need("dlq_url")),
        holding=holding(metrics),
        queue=actions_queue(),
        concurrency=settings().actions_concurrency,
        metrics=metrics,
        record_quota=quota_log().record,
        clock=clock,
    )


def hold_check(metrics: MetricsPort, through: Refresher | None = None, clock: Clock = time.time) -> CheckDeps:
    """The actions function's scheduled check: probe a held Keap, resume the queue. A probe reads Keap's client
    credentials (or API key) afresh: an operator who fixed a refused secret is heard at the next probe."""
    from keaplink.actions.hold.check import CheckDeps

    client_credentials.cache_clear()

    via = through or (refresher(metrics, clock) if not settings().is_api_key_mode else None)
    return CheckDeps(
        holding=holding(metrics),
        open_session=lambda deadline: keap_session(metrics, via, deadline, clock, probe=True),
        queue=actions_queue(),
        metrics=metrics,
        record_quota=quota_log().record,
        clock=clock,
    )


def reset() -> None:
    """Forget every cached setting, client, table, secret and per-container cache (tests, the local runner)."""
    for forget in _forgetters:
        forget()
