"""Refresh soak: simulated months of keaplink's real refresh path (DynamoDB, KMS, Secrets Manager on moto) against
the Keap sandbox over HTTP, one simulated clock shared by both. Concurrent callers with deadlines, Keap faults on
``/token`` and crashes between every step of the refresh path; every ``needs_reauth`` is traced to its cause, and
any cause but the window no client can close (a crash or a lost answer after Keap rotated) is a bug (exit 1).
What it simulates and the latest figures: docs/connecting-keap.md, "The soak test".

    PYTHONPATH=layers/keaplink:sandbox:devtools:. .venv/bin/python -m keaplink_dev.soak --days 90 --seed 1 \
        [--concurrency 10] [--stall-rate 0.1] [--no-deadlines] [--message-days 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qs

import requests

from keaplink import root
from keaplink.connection.oauth import OAuthClient
from keaplink.connection.refresh import STEPS, Refresher, RefreshTimings
from keaplink.connection.schedule import run_scheduled
from keaplink.connection.token import Status, Token
from keaplink.errors import (
    KeapClientConfigError,
    KeapError,
    KeapRateLimited,
    KeapUnavailable,
    LeaseBusy,
    NeedsReauth,
    NotConnected,
    OutOfTime,
    RefreshTokenDead,
)
from keaplink.keap.deadline import DEFAULT_RESERVE_S, Deadline
from keaplink.observability import NullMetrics
from keaplink_dev.soak.stack import local_stack, quiet_keaplink

HOUR = 3600.0
DAY = 86400.0
REDIRECT_URI = "https://keaplink.example/callback"
UNCLOSABLE = ("crash_before_save", "succeed_then_drop", "client_timeout_after_success")
RACE_CAUSES = ("race", "stale_token_reused")
ROLES = ("scheduler", "action_401", "refresh_now")

DEFAULT_CRASH_RATES = {"loaded": 0.002, "lease_taken": 0.02, "reread": 0.02, "keap_refreshed": 0.01, "saved": 0.02}


# How a refresh call ended, by error type (looked up along the MRO, like keaplink's own mappings).
CALL_OUTCOMES: dict[type[Exception], str] = {
    RefreshTokenDead: "dead",
    KeapUnavailable: "unavailable",
    KeapRateLimited: "rate_limited",
    KeapClientConfigError: "config_error",
}


class SimulatedCrash(BaseException):
    """Raised by the checkpoint hook: the caller dies between two steps of the refresh path."""


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


# --- configuration and report ---------------------------------------------------------------------------
@dataclass
class SoakConfig:
    days: float = 90.0
    seed: int = 1
    concurrency: int = 10
    bursts_per_day: float = 1.0  # on-demand bursts (Poisson); each has 1..concurrency callers
    burst_at_tick: float = 0.3  # share of bursts that start together with the hourly scheduler
    action_share: float = 0.7  # share of on-demand callers that are actions on a 401 (rest: refresh now)
    fault_5xx_rate: float = 0.03  # per request to /token
    fault_timeout_rate: float = 0.02
    fault_drop_rate: float = 0.01  # succeed_then_drop
    crash_rates: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_CRASH_RATES))
    armed_crashes_per_step: int = 0  # 0: one per 30 simulated days, at least one
    # Stalls (off by default): after Keap answered and before the save, the caller pauses for stall_s simulated
    # seconds (slow AWS, retries; the refresh function may run 120 s) while another caller forces a refresh.
    stall_rate: float = 0.0
    stall_s: float = 0.0  # 0: lease_ttl_s + 30
    http_timeout_s: float = 1.0  # real seconds; a timeout fault holds the answer longer than this
    timeout_fault_delay_s: float = 1.3
    lease_ttl_s: float = 60.0  # simulated seconds: far below the hour between scheduler runs
    wait_for_other_s: float = 20.0
    keap_attempts: int = 3
    backoff_base_s: float = 0.5
    save_attempts: int = 5
    real_sleep_scale: float = 0.05  # real seconds per simulated second slept, capped by real_sleep_cap_s
    real_sleep_cap_s: float = 0.05
    connection_id: str = "default"
    # Function timeouts: the simulated seconds each caller has left when its refresh starts (uniform in a range),
    # and how long Keap's token endpoint takes to answer. A caller is killed when its time is up.
    deadlines: bool = True  # False: callers pass keaplink no deadline (the instrument's own check)
    budget_s: dict[str, tuple[float, float]] = field(default_factory=lambda: {
        "scheduler": (110.0, 120.0), "action_401": (1.0, 27.0), "refresh_now": (20.0, 27.0)})
    keap_call_s: float = 10.0  # KEAP_HTTP_TIMEOUT in simulated seconds: what a timeout fault costs
    answer_s: float = 0.3
    slow_rate: float = 0.05  # share of successful refreshes whose answer takes slow_s
    slow_s: tuple[float, float] = (5.0, 10.0)
    save_s: float = 5.0

    def timings(self) -> RefreshTimings:
        return RefreshTimings(
            lease_ttl_s=self.lease_ttl_s,
            wait_for_other_s=self.wait_for_other_s,
            keap_attempts=self.keap_attempts,
            backoff_base_s=self.backoff_base_s,
            save_attempts=self.save_attempts,
            keap_call_s=self.keap_call_s,
            save_s=self.save_s,
        )


@dataclass
class SoakReport:
    days: float
    seed: int
    concurrency: int
    wall_time_s: float = 0.0
    scheduler_runs: int = 0
    bursts: int = 0
    invocations: dict[str, int] = field(default_factory=dict)  # by role
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)  # role -> outcome -> count
    rotations_at_keap: int = 0  # successful refreshes (the sandbox's own counter)
    code_exchanges_at_keap: int = 0  # authorizations: the first connect plus every re-authorization
    refresh_requests_at_keap: int = 0  # refresh requests that reached the token endpoint (faulted or not)
    refresh_answers: dict[str, int] = field(default_factory=dict)  # sandbox log: status / fault
    faults_injected: dict[str, int] = field(default_factory=dict)  # faults that fired, by kind
    crashes_by_step: dict[str, int] = field(default_factory=dict)
    crashes_by_role: dict[str, int] = field(default_factory=dict)
    stalls_injected: int = 0
    slow_answers: int = 0  # successful refreshes whose answer took 5-10 simulated seconds
    killed_at_timeout: dict[str, int] = field(default_factory=dict)  # by step: callers whose time ran out
    tokens_lost_to_timeout: int = 0  # rotated at Keap, then the caller was killed before saving
    refreshes_not_started_for_time: int = 0  # OutOfTime: no Keap call without time to save its answer
    invalid_grant_answers: int = 0
    invalid_grant_by_cause: dict[str, int] = field(default_factory=dict)
    burned_by_races: int = 0
    races_recovered: int = 0
    reauthorizations: int = 0
    reauth_by_cause: dict[str, int] = field(default_factory=dict)
    reauth_unclosable: int = 0
    reauth_bugs: int = 0
    expired_token_at_tick: int = 0
    expired_token_seen_by_callers: int = 0
    unexpected_errors: dict[str, int] = field(default_factory=dict)
    final_status: str = ""
    final_token_valid: bool = False
    bugs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        return format_table(self)


# --- simulated time --------------------------------------------------------------------------------------
class SandboxClock:
    """The sandbox's clock, moved through its control API (an HTTP client, or the in-process control)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def _post(self, body: dict[str, float]) -> float:
        response = requests.post(f"{self.base_url}/_sandbox/clock", json=body, timeout=10)
        response.raise_for_status()
        return float(response.json()["clock"])

    def now(self) -> float:
        response = requests.get(f"{self.base_url}/_sandbox/clock", timeout=10)
        response.raise_for_status()
        return float(response.json()["clock"])

    def advance(self, seconds: float) -> float:
        return self._post({"advance": seconds})


class SimClock:
    """Shared simulated time (``time.time() + offset``, the sandbox's model too) plus per-thread extra time.

    ``sleep`` adds to the calling thread's extra time only: a waiting or backing-off caller moves on in its
    own simulated time without moving anyone else's clock (and without really sleeping long).
    """

    def __init__(self, sandbox: SandboxClock, scale: float, cap: float) -> None:
        self._sandbox = sandbox
        self._scale = scale
        self._cap = cap
        self._local = threading.local()
        sandbox_now = sandbox.now()
        self._offset = sandbox_now - time.time()
        self.start = sandbox_now

    def shared(self) -> float:
        return time.time() + self._offset

    def now(self) -> float:
        return self.shared() + float(getattr(self._local, "extra", 0.0))

    def sleep(self, seconds: float) -> None:
        seconds = max(0.0, float(seconds))
        self._local.extra = float(getattr(self._local, "extra", 0.0)) + seconds
        time.sleep(min(seconds * self._scale, self._cap))

    def begin_invocation(self) -> None:
        self._local.extra = 0.0

    def advance_shared(self, seconds: float) -> None:
        self._offset += seconds
        self._sandbox.advance(seconds)

    def advance_to(self, when: float) -> None:
        """Move shared time (and the sandbox's clock) forward to ``when``; only between events."""
        delta = when - self.shared()
        if delta > 0:
            self.advance_shared(delta)


# --- instrumentation -------------------------------------------------------------------------------------
@dataclass
class KeapCall:
    call_id: int
    invocation: int
    role: str
    refresh_fp: str
    started: float
    ended: float = 0.0
    outcome: str = "pending"  # rotated | dead | unavailable | rate_limited | config_error | <error type>
    new_fp: str | None = None


@dataclass
class Invocation:
    invocation: int
    role: str
    last_new_fp: str | None = None
    ended: float | None = None  # shared time when the caller finished (or crashed)
    deadline_at: float = math.inf  # the caller's simulated time when its function times out
    stalled: bool = False  # the stall injection outlives any function's timeout on purpose: not killed


class Tracker:
    """Client-side record of every refresh call, crash and saved token (thread-safe)."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.calls: dict[int, KeapCall] = {}
        self._next_call = 0
        self._next_invocation = 0
        self._local = threading.local()
        self.saved_fps: set[str] = set()
        self.lost_fps: set[str] = set()
        self.timeout_lost_fps: set[str] = set()  # rotated, then the caller was killed at its timeout
        self.crashes: list[tuple[str, str, float]] = []  # (step, role, shared time)
        self.timeouts: list[tuple[str, str]] = []  # (step, role): callers killed when their time was up
        self.slow_answers = 0
        self.dead_calls_since_auth: list[int] = []
        self.invocations: dict[int, Invocation] = {}

    def begin(self, role: str, budget_s: float = math.inf) -> Invocation:
        with self.lock:
            self._next_invocation += 1
            inv = Invocation(self._next_invocation, role)
            self.invocations[inv.invocation] = inv
        self._local.inv = inv
        self.clock.begin_invocation()
        inv.deadline_at = self.clock.now() + budget_s
        return inv

    def current(self) -> Invocation:
        inv: Invocation | None = getattr(self._local, "inv", None)
        return inv if inv is not None else Invocation(0, "none")

    def next_call_id(self) -> int:
        with self.lock:
            self._next_call += 1
            return self._next_call

    def start_call(self, call_id: int, refresh_token: str) -> KeapCall:
        inv = self.current()
        call = KeapCall(call_id, inv.invocation, inv.role, fingerprint(refresh_token), self.clock.shared())
        with self.lock:
            self.calls[call_id] = call
        return call

    def finish_call(self, call: KeapCall, outcome: str, new_token: str | None = None) -> None:
        call.ended = self.clock.shared()
        call.outcome = outcome
        if new_token is not None:
            call.new_fp = fingerprint(new_token)
            self.current().last_new_fp = call.new_fp
        if outcome == "dead":
            with self.lock:
                self.dead_calls_since_auth.append(call.call_id)


class TracingOAuthClient(OAuthClient):
    """keaplink's own OAuth client; records each refresh (the URL carries ``?soak_call=N`` for the log) and charges
    the caller the simulated time Keap's answer takes (a timeout fault: the HTTP timeout; sometimes a slow success)."""

    def __init__(self, tracker: Tracker, token_url: str, credentials: Any, timeout: float,
                 cfg: SoakConfig | None = None) -> None:
        super().__init__(token_url, lambda: credentials, timeout)
        self._tracker = tracker
        self._cfg = cfg or SoakConfig()

    def refresh(self, refresh_token: str, now: float) -> Token:
        call_id = self._tracker.next_call_id()
        sep = "&" if "?" in self.token_url else "?"
        traced = OAuthClient(f"{self.token_url}{sep}soak_call={call_id}", self._credentials, self.timeout)
        call = self._tracker.start_call(call_id, refresh_token)
        rng = random.Random(self._cfg.seed * 1_000_003 + call_id)
        try:
            token = traced.refresh(refresh_token, now)
        except Exception as exc:
            label = next((CALL_OUTCOMES[c] for c in type(exc).__mro__ if c in CALL_OUTCOMES), type(exc).__name__)
            timed_out = isinstance(exc, KeapUnavailable) and exc.status == 0
            self._tracker.clock.sleep(self._cfg.keap_call_s if timed_out else self._cfg.answer_s)
            self._tracker.finish_call(call, label)
            raise
        if rng.random() < self._cfg.slow_rate:
            with self._tracker.lock:
                self._tracker.slow_answers += 1
            self._tracker.clock.sleep(rng.uniform(*self._cfg.slow_s))
        else:
            self._tracker.clock.sleep(self._cfg.answer_s)
        self._tracker.finish_call(call, "rotated", token.refresh_token)
        return token


class CrashPlan:
    """Decides, at each checkpoint, whether the caller crashes there (random rate, plus armed crashes)."""

    def __init__(
        self,
        rng: random.Random,
        rates: dict[str, float],
        tracker: Tracker,
        stall_rate: float = 0.0,
        on_stall: Callable[[], None] | None = None,
    ) -> None:
        self._rng = rng
        self._rates = rates
        self._tracker = tracker
        self._stall_rate = stall_rate
        self._on_stall = on_stall
        self._lock = threading.Lock()
        self._armed: Counter[str] = Counter()
        self.stalls = 0

    def arm(self, step: str) -> None:
        with self._lock:
            self._armed[step] += 1

    def checkpoint(self, step: str) -> None:
        inv = self._tracker.current()
        if step == "saved" and inv.last_new_fp is not None:
            with self._tracker.lock:
                self._tracker.saved_fps.add(inv.last_new_fp)
        if not inv.stalled and self._tracker.clock.now() > inv.deadline_at:
            # The function's time is up: Lambda stops it here, whatever it was doing.
            with self._tracker.lock:
                self._tracker.timeouts.append((step, inv.role))
                if step == "keap_refreshed" and inv.last_new_fp is not None:
                    self._tracker.timeout_lost_fps.add(inv.last_new_fp)
            raise SimulatedCrash(f"timeout at {step}")
        with self._lock:
            crash = self._armed[step] > 0 or self._rng.random() < self._rates.get(step, 0.0)
            if crash and self._armed[step] > 0:
                self._armed[step] -= 1
            stall = (not crash and step == "keap_refreshed" and self._on_stall is not None
                     and self._rng.random() < self._stall_rate)
            if stall:
                self.stalls += 1
        if stall and self._on_stall is not None:
            inv.stalled = True
            self._on_stall()
        if not crash:
            return
        with self._tracker.lock:
            self._tracker.crashes.append((step, inv.role, self._tracker.clock.shared()))
            if step == "keap_refreshed" and inv.last_new_fp is not None:
                self._tracker.lost_fps.add(inv.last_new_fp)
        raise SimulatedCrash(step)


class FaultInjector:
    """Random faults on the sandbox's ``/token`` (removed while the admin re-authorizes)."""

    def __init__(self, base_url: str, rng: random.Random, cfg: SoakConfig) -> None:
        self.base_url = base_url.rstrip("/")
        self._rng = rng
        self._cfg = cfg

    def _add(self, **spec: Any) -> None:
        response = requests.post(f"{self.base_url}/_sandbox/faults", json=spec, timeout=10)
        response.raise_for_status()

    def install(self) -> None:
        cfg, seed = self._cfg, self._rng.randrange(2**31)
        specs: list[dict[str, Any]] = []
        if cfg.fault_drop_rate > 0:
            specs.append({"action": "succeed_then_drop", "failure_rate": cfg.fault_drop_rate})
        if cfg.fault_timeout_rate > 0:
            specs.append({"action": "timeout", "failure_rate": cfg.fault_timeout_rate,
                          "delay_s": cfg.timeout_fault_delay_s})
        if cfg.fault_5xx_rate > 0:
            for status in (500, 503):
                specs.append({"action": "error", "status": status, "failure_rate": cfg.fault_5xx_rate / 2})
        for i, spec in enumerate(specs):
            self._add(path_prefix="/token", method="POST", seed=seed + i, **spec)

    def remove(self) -> None:
        requests.delete(f"{self.base_url}/_sandbox/faults", timeout=10).raise_for_status()


def _poisson(rng: random.Random, mean: float) -> int:
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


# --- the simulation --------------------------------------------------------------------------------------
class Soak:
    def __init__(self, cfg: SoakConfig, sandbox_url: str) -> None:
        self.cfg = cfg
        self.sandbox_url = sandbox_url.rstrip("/")
        self.rng = random.Random(cfg.seed)
        self.clock = SimClock(SandboxClock(self.sandbox_url), cfg.real_sleep_scale, cfg.real_sleep_cap_s)
        self.tracker = Tracker(self.clock)
        self.crashes = CrashPlan(
            random.Random(cfg.seed * 7919 + 1), cfg.crash_rates, self.tracker, cfg.stall_rate, self.stall
        )
        self.faults = FaultInjector(self.sandbox_url, random.Random(cfg.seed * 104729 + 2), cfg)
        settings = root.settings()
        self.token_url = settings.keap_token_url
        self.api_url = settings.keap_api_url
        self.credentials = root.client_credentials()
        self.store = root.token_store(cfg.connection_id)
        self.timings = cfg.timings()
        self.report = SoakReport(days=cfg.days, seed=cfg.seed, concurrency=cfg.concurrency)
        self.outcomes: dict[str, Counter[str]] = {role: Counter() for role in ROLES}
        self.errors: Counter[str] = Counter()
        self.reauths: list[tuple[float, list[int]]] = []
        self.http = requests.Session()
        self.rotated_by: dict[int, int] = {}  # dead call id -> the earlier call that rotated the same token
        self._lock = threading.Lock()
        self.budget_rng = random.Random(cfg.seed * 31337 + 3)

    # -- collaborators ----------------------------------------------------------------------------------
    def refresher(self) -> Refresher:
        return Refresher(
            store=root.token_store(self.cfg.connection_id),
            oauth=TracingOAuthClient(self.tracker, self.token_url, self.credentials, self.cfg.http_timeout_s, self.cfg),
            clock=self.clock.now,
            sleep=self.clock.sleep,
            metrics=NullMetrics(),
            checkpoint=self.crashes.checkpoint,
            timings=self.timings,
        )

    def token_valid(self, access_token: str) -> bool:
        """Whether Keap (the sandbox, on its clock) accepts the access token."""
        response = self.http.get(
            f"{self.api_url}/v2/tags", params={"page_size": 1}, timeout=10,
            headers={"Authorization": f"Bearer {access_token}"},
        )
        if response.status_code not in (200, 401):
            raise RuntimeError(f"unexpected answer checking a token: HTTP {response.status_code}")
        return response.status_code == 200

    # -- admin ------------------------------------------------------------------------------------------
    def authorize(self) -> None:
        """Connect (or reconnect) as the admin would: consent at Keap, exchange the code, store the token."""
        self.faults.remove()
        try:
            body = _obtain_tokens(self.sandbox_url)
            now = self.clock.shared()
            self.store.store_authorized(Token.from_keap(body, now), now)
        finally:
            self.faults.install()
        with self.tracker.lock:
            self.tracker.dead_calls_since_auth = []

    def stall(self) -> None:
        """In the caller that holds a rotated, unsaved token: time passes (for everyone) while it is stuck, and
        meanwhile an action gets a 401 and forces a refresh. Then the stuck caller goes on to save."""
        self.clock.advance_shared(self.cfg.stall_s or self.cfg.lease_ttl_s + 30)
        budget = self.cfg.budget_s["action_401"][1]
        intruder = threading.Thread(target=self._caller, args=("action_401", threading.Barrier(1), budget), daemon=True)
        intruder.start()
        intruder.join()

    # -- one caller ---------------------------------------------------------------------------------------
    def deadline(self, inv: Invocation) -> Deadline:
        """What keaplink's handler builds from the Lambda context: the time left, minus its reserve."""
        if not self.cfg.deadlines:
            return Deadline.unbounded(self.clock.now, self.clock.sleep)
        return Deadline(inv.deadline_at - DEFAULT_RESERVE_S, self.clock.now, self.clock.sleep)

    def _caller(self, role: str, barrier: threading.Barrier, budget_s: float = math.inf) -> None:
        inv = self.tracker.begin(role, budget_s)
        refresher = self.refresher()
        outcome: str
        try:
            seen = refresher.store.load().version if role == "action_401" else None
            barrier.wait()
            inv.deadline_at = self.clock.now() + budget_s  # the time starts when the work does
            if role == "scheduler":
                summary = run_scheduled(refresher, NullMetrics(), deadline=self.deadline(inv))
                outcome, conn = str(summary["outcome"]), None  # its token is checked after the event
            else:
                result = refresher.ensure_fresh(force=True, seen_version=seen, deadline=self.deadline(inv))
                outcome, conn = result.outcome.value, result.connection
            if conn is not None and conn.token is not None and not self.token_valid(conn.token.access_token):
                with self._lock:
                    self.report.expired_token_seen_by_callers += 1
        except SimulatedCrash:
            outcome = "crashed"
        except NeedsReauth:
            outcome = "needs_reauth"
        except LeaseBusy:
            outcome = "busy"
        except OutOfTime:
            outcome = "out_of_time"
        except NotConnected:
            outcome = "not_connected"
        except KeapError as exc:
            outcome = f"failed:{type(exc).__name__}"
        except Exception as exc:  # noqa: BLE001 - anything else is a finding, counted and reported
            outcome = "error"
            with self._lock:
                self.errors[f"{role}: {type(exc).__name__}: {str(exc)[:120]}"] += 1
        inv.ended = self.clock.shared()
        with self._lock:
            self.outcomes[role][outcome] += 1

    def run_event(self, at: float, roles: list[str]) -> None:
        self.clock.advance_to(at)
        barrier = threading.Barrier(len(roles), timeout=120)
        budgets = [self.budget_rng.uniform(*self.cfg.budget_s[role]) for role in roles]
        threads = [
            threading.Thread(target=self._caller, args=(role, barrier, budget), name=f"soak-{role}-{i}", daemon=True)
            for i, (role, budget) in enumerate(zip(roles, budgets, strict=True))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.after_event(hourly_check="scheduler" in roles)

    def after_event(self, hourly_check: bool) -> None:
        """Re-authorize if the connection was lost; at the hourly check, the stored token must work at Keap."""
        conn = self.store.load()
        if conn.status is Status.NEEDS_REAUTH:
            with self.tracker.lock:
                dead = list(self.tracker.dead_calls_since_auth)
            self.reauths.append((self.clock.shared(), dead))
            self.authorize()
            conn = self.store.load()
        if hourly_check and (
            conn.status is not Status.CONNECTED or conn.token is None or not self.token_valid(conn.token.access_token)
        ):
            self.report.expired_token_at_tick += 1

    # -- the run ------------------------------------------------------------------------------------------
    def plan(self) -> list[tuple[float, list[str]]]:
        cfg, rng = self.cfg, self.rng
        hours = max(1, round(cfg.days * 24))
        events: list[tuple[float, list[str]]] = []
        for h in range(hours):
            hour_start = self.clock.start + h * HOUR
            tick = hour_start + HOUR
            tick_roles = ["scheduler"]
            bursts = []
            for _ in range(_poisson(rng, cfg.bursts_per_day / 24)):
                size = rng.randint(1, max(1, cfg.concurrency))
                roles = ["action_401" if rng.random() < cfg.action_share else "refresh_now" for _ in range(size)]
                if rng.random() < cfg.burst_at_tick:
                    tick_roles = (tick_roles + roles)[: max(1, cfg.concurrency)]
                else:
                    bursts.append((hour_start + rng.uniform(60, HOUR - 60), roles))
            events += sorted(bursts)
            events.append((tick, tick_roles))
        return events

    def arm_crashes(self, events: list[tuple[float, list[str]]]) -> dict[float, list[str]]:
        """Armed crashes per step, spread over the first 80% of the run (so each step gets at least one)."""
        per_step = self.cfg.armed_crashes_per_step or max(1, round(self.cfg.days / 30))
        span = max(1, int(len(events) * 0.8))
        schedule: dict[float, list[str]] = {}
        for step in STEPS:
            for _ in range(per_step):
                at = events[self.rng.randrange(span)][0]
                schedule.setdefault(at, []).append(step)
        return schedule

    def run(self) -> SoakReport:
        started = time.monotonic()
        self.authorize()
        events = self.plan()
        armed = self.arm_crashes(events)
        for at, roles in events:
            for step in armed.get(at, []):
                self.crashes.arm(step)
            self.run_event(at, roles)
        self.report.wall_time_s = round(time.monotonic() - started, 1)
        self.report.bursts = sum(1 for _, roles in events if roles != ["scheduler"])
        self.finish()
        return self.report

    # -- figures ------------------------------------------------------------------------------------------
    def finish(self) -> None:
        rep = self.report
        state = requests.get(f"{self.sandbox_url}/_sandbox/state", timeout=10).json()
        rep.rotations_at_keap = int(state["tokens"]["refreshes"])
        rep.code_exchanges_at_keap = int(state["tokens"]["code_exchanges"])
        by_call = self._read_request_log()
        rep.stalls_injected = self.crashes.stalls
        rep.slow_answers = self.tracker.slow_answers
        rep.crashes_by_step = {step: 0 for step in STEPS}
        for step, role, _ in self.tracker.crashes:
            rep.crashes_by_step[step] += 1
            rep.crashes_by_role[role] = rep.crashes_by_role.get(role, 0) + 1
        rep.killed_at_timeout = dict(Counter(step for step, _ in self.tracker.timeouts))
        rep.tokens_lost_to_timeout = len(self.tracker.timeout_lost_fps)
        rep.refreshes_not_started_for_time = sum(c.get("out_of_time", 0) for c in self.outcomes.values())
        if rep.tokens_lost_to_timeout:
            rep.bugs.append(f"{rep.tokens_lost_to_timeout} refresh token(s) rotated at Keap and lost when the caller "
                            "was killed at its function's timeout")
        self._classify(by_call)
        rep.invocations = {role: sum(c.values()) for role, c in self.outcomes.items()}
        rep.scheduler_runs = rep.invocations.get("scheduler", 0)
        rep.outcomes = {role: dict(sorted(c.items())) for role, c in self.outcomes.items()}
        rep.unexpected_errors = dict(self.errors)
        for text, n in self.errors.items():
            rep.bugs.append(f"unexpected error x{n}: {text}")
        conn = self.store.load()
        rep.final_status = conn.status.value
        rep.final_token_valid = conn.token is not None and self.token_valid(conn.token.access_token)

    def _read_request_log(self) -> dict[int, dict[str, Any]]:
        """Count refresh requests, answers and fired faults from the sandbox's log; index it by soak call id."""
        rep = self.report
        log = requests.get(f"{self.sandbox_url}/_sandbox/requests", timeout=30).json()
        by_call: dict[int, dict[str, Any]] = {}
        answers: Counter[str] = Counter()
        faults: Counter[str] = Counter()
        for entry in log:
            if entry["path"] != "/token" or entry.get("grant_type") != "refresh_token":
                continue
            rep.refresh_requests_at_keap += 1
            fault = entry.get("fault")
            if fault == "error":
                faults[f"5xx ({entry['status']})"] += 1
                answers[f"fault {entry['status']}"] += 1
            elif fault == "timeout":
                faults["timeout"] += 1
                answers["fault timeout (no answer)"] += 1
            elif fault == "succeed_then_drop":
                faults["succeed_then_drop"] += 1
                answers[f"{entry['status']} then dropped"] += 1
            else:
                answers[str(entry["status"])] += 1
            ids = parse_qs(entry.get("query") or "").get("soak_call")
            if ids:
                by_call[int(ids[0])] = entry
        rep.refresh_answers = dict(sorted(answers.items()))
        rep.faults_injected = dict(sorted(faults.items()))
        return by_call

    def _classify(self, by_call: dict[int, dict[str, Any]]) -> None:
        """Classify every invalid_grant answer, and every re-authorization by the answer that caused it."""
        rep = self.report
        causes: dict[int, str] = {}
        for call in sorted(self.tracker.calls.values(), key=lambda c: c.call_id):
            if call.outcome == "dead":
                causes[call.call_id] = self.classify_dead(call, by_call)
        rep.invalid_grant_answers = len(causes)
        rep.invalid_grant_by_cause = dict(Counter(causes.values()))
        rep.burned_by_races = sum(1 for c in causes.values() if c in RACE_CAUSES)
        rep.races_recovered = sum(1 for c in causes.values() if c == "race_recovered")
        reauth_causes: Counter[str] = Counter()
        for at, dead in self.reauths:
            cause = causes.get(dead[0], "unexplained") if dead else "no_invalid_grant_seen"
            reauth_causes[cause] += 1
            if cause not in UNCLOSABLE:
                day = (at - self.clock.start) / DAY
                evidence = "; ".join(self.describe(i) for i in dead)
                rep.bugs.append(f"re-authorization on day {day:.2f} caused by {cause}: {evidence}")
        rep.reauthorizations = len(self.reauths)
        rep.reauth_by_cause = dict(reauth_causes)
        rep.reauth_unclosable = sum(n for c, n in reauth_causes.items() if c in UNCLOSABLE)
        rep.reauth_bugs = rep.reauthorizations - rep.reauth_unclosable
        for call_id, cause in causes.items():
            if cause in RACE_CAUSES:
                rep.bugs.append(f"refresh token burned ({cause}): {self.describe(call_id)}")

    def describe(self, dead_call_id: int) -> str:
        """Evidence for one invalid_grant answer: who used the token, and who had rotated it before."""
        def one(call: KeapCall) -> str:
            inv = self.tracker.invocations.get(call.invocation)
            ended = "running" if inv is None or inv.ended is None else f"ended at +{inv.ended - call.started:.1f}s"
            return (f"call {call.call_id} ({call.role}, invocation {call.invocation}, refresh token {call.refresh_fp}, "
                    f"day {(call.started - self.clock.start) / DAY:.3f}, {call.outcome}, invocation {ended})")
        dead = self.tracker.calls[dead_call_id]
        text = f"Keap refused {one(dead)}"
        first = self.rotated_by.get(dead_call_id)
        if first is not None:
            rot = self.tracker.calls[first]
            saved = "saved" if rot.new_fp in self.tracker.saved_fps else "never saved"
            text += (f"; that token was rotated {dead.started - rot.started:.1f}s earlier by {one(rot)}, "
                     f"its new token {rot.new_fp} {saved}")
        return text

    def classify_dead(self, call: KeapCall, log: dict[int, dict[str, Any]]) -> str:
        """Why Keap refused ``call``'s refresh token: find the call that rotated that token before."""
        rotating = [
            c for c in self.tracker.calls.values()
            if c.refresh_fp == call.refresh_fp and c.call_id != call.call_id
            and log.get(c.call_id, {}).get("status") == 200
        ]
        if not rotating:
            return "unexplained"
        first = min(rotating, key=lambda c: c.call_id)
        self.rotated_by[call.call_id] = first.call_id
        entry = log[first.call_id]
        if entry.get("fault") == "succeed_then_drop":
            return "succeed_then_drop"
        if first.outcome != "rotated":
            return "client_timeout_after_success"
        if first.new_fp in self.tracker.timeout_lost_fps:
            return "timeout_before_save"  # a bug: the call should not have started without time to save
        if first.new_fp in self.tracker.lost_fps:
            return "crash_before_save"
        holder = self.tracker.invocations.get(first.invocation)
        if first.invocation != call.invocation and holder is not None and (
            holder.ended is None or holder.ended > call.started
        ):
            # The rotating caller was still at work (its new token not saved yet) when this one began: only
            # possible once its lease ran out (the stall injection). If its newest token was saved anyway,
            # the connection survived; that is the recovery path, not a loss.
            return "race_recovered" if first.new_fp in self.tracker.saved_fps else "race"
        if first.new_fp not in self.tracker.saved_fps:
            return "rotated_not_saved"
        return "stale_token_reused"


def _obtain_tokens(base_url: str) -> dict[str, Any]:
    from keap_sandbox.testing import SandboxControl

    return SandboxControl(base_url).obtain_tokens(REDIRECT_URI)


# --- running it --------------------------------------------------------------------------------------------
def run_soak(
    days: float = 90.0,
    seed: int = 1,
    concurrency: int = 10,
    *,
    sandbox_url: str | None = None,
    **overrides: Any,
) -> SoakReport:
    """Run the soak. With ``sandbox_url`` the environment must already point keaplink at moto and that
    sandbox (as the test fixture ``aws`` does); without it, a private moto server and sandbox are started."""
    cfg = SoakConfig(days=days, seed=seed, concurrency=concurrency, **overrides)
    if sandbox_url is None:
        with local_stack() as url, quiet_keaplink():
            return Soak(cfg, url).run()
    with quiet_keaplink():
        return Soak(cfg, sandbox_url).run()


def _rows(title: str, values: dict[str, Any]) -> list[str]:
    lines = [f"  {title}"]
    if not values:
        lines.append("    (none)")
    for key, value in values.items():
        lines.append(f"    {key:<44} {value:>8}")
    return lines


def format_table(rep: SoakReport) -> str:
    line = "-" * 62
    out = [
        line,
        f"keaplink refresh soak: {rep.days:g} simulated days, seed {rep.seed}, up to {rep.concurrency} concurrent",
        line,
    ]
    main: dict[str, Any] = {
        "scheduler runs (hourly)": rep.scheduler_runs,
        "on-demand bursts": rep.bursts,
        "on-demand callers (action on 401)": rep.invocations.get("action_401", 0),
        "on-demand callers (refresh now)": rep.invocations.get("refresh_now", 0),
        "refreshes done (rotations at Keap)": rep.rotations_at_keap,
        "refresh calls that reached Keap": rep.refresh_requests_at_keap,
        "authorizations at Keap (connect + reauth)": rep.code_exchanges_at_keap,
        "refresh tokens burned by races": rep.burned_by_races,
        "  races after a lease expiry, newest token kept": rep.races_recovered,
        "stalls injected (pause before save)": rep.stalls_injected,
        "slow Keap answers (5-10 s)": rep.slow_answers,
        "refreshes not started: no time to save the answer": rep.refreshes_not_started_for_time,
        "callers killed at their function's timeout": sum(rep.killed_at_timeout.values()),
        "refresh tokens lost to a timeout": rep.tokens_lost_to_timeout,
        "invalid_grant answers": rep.invalid_grant_answers,
        "re-authorizations (needs_reauth)": rep.reauthorizations,
        "  of which unclosable window": rep.reauth_unclosable,
        "  of which bugs": rep.reauth_bugs,
        "expired/invalid token at an hourly check": rep.expired_token_at_tick,
        "expired/invalid token handed to a caller": rep.expired_token_seen_by_callers,
        "final status": rep.final_status,
        "final token valid at Keap": "yes" if rep.final_token_valid else "NO",
        "wall time (s)": rep.wall_time_s,
    }
    out += _rows("figures", main)
    out += _rows("re-authorizations by cause", rep.reauth_by_cause)
    out += _rows("invalid_grant answers by cause", rep.invalid_grant_by_cause)
    out += _rows("faults injected (fired at /token, refresh grant)", rep.faults_injected)
    out += _rows("refresh answers at Keap (sandbox log)", rep.refresh_answers)
    out += _rows("crashes by step (checkpoint after ...)", rep.crashes_by_step)
    out += _rows("crashes by caller", rep.crashes_by_role)
    out += _rows("killed at the function's timeout, by step", rep.killed_at_timeout)
    for role, outcomes in rep.outcomes.items():
        out += _rows(f"outcomes: {role}", outcomes)
    out += _rows("unexpected errors", rep.unexpected_errors)
    out.append(line)
    out.append("bugs: none" if not rep.bugs else "bugs:")
    out += [f"  - {bug}" for bug in rep.bugs]
    out.append(line)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m keaplink_dev.soak", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--days", type=float, default=90.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--stall-rate", type=float, default=0.0,
                        help="share of refreshes that pause past the lease between Keap's answer and the save")
    parser.add_argument("--no-deadlines", action="store_true",
                        help="callers pass keaplink no deadline (shows what a kill at the timeout does without one)")
    parser.add_argument("--message-days", type=float, default=3.0,
                        help="then the message soak (keaplink_dev.soak.messages) for this many days; 0: skip it")
    parser.add_argument("--json", metavar="PATH", help="also write the report(s) as JSON")
    args = parser.parse_args(argv)
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "keaplink")
    report = run_soak(days=args.days, seed=args.seed, concurrency=args.concurrency, stall_rate=args.stall_rate,
                      deadlines=not args.no_deadlines)
    print(report.table(), flush=True)
    reports: dict[str, Any] = {"refresh": report.to_dict()}
    bugs = list(report.bugs)
    if args.message_days > 0:
        from keaplink_dev.soak.messages import run_message_soak

        messages = run_message_soak(days=args.message_days, seed=args.seed)
        print(messages.table(), flush=True)
        reports["messages"] = messages.to_dict()
        bugs += messages.bugs
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(reports, fh, indent=2, sort_keys=True)
    return 1 if bugs else 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "STEPS",
    "SimulatedCrash",
    "SoakConfig",
    "SoakReport",
    "format_table",
    "main",
    "run_soak",
]
