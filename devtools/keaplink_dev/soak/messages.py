"""Message soak: simulated days of the actions function, its scheduled check and the hourly refresh (keaplink's own
handlers on moto, the Keap sandbox over HTTP, one simulated clock) while Keap goes down for hours, spends its daily
quota, throttles and fails at its token endpoint, AWS's control plane is slow or refuses (``local.aws_faults``),
and poison arrives among the messages (:data:`EVENTS`). Targets: nothing lost, nothing dead-lettered without a
reason, the queue never paused without a hold record. Figures: docs/connecting-keap.md, "The soak test".
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import requests

from keaplink import root
from keaplink.connection.schedule import run_scheduled
from keaplink.connection.token import Token
from keaplink.contract.messages import parse
from keaplink.errors import InvalidMessage
from keaplink.keap.deadline import Deadline
from keaplink.observability import MetricUnit, NullMetrics
from keaplink_dev.local.handlers import load_handler
from keaplink_dev.local.lambda_local import register_actions_function
from keaplink_dev.local.moto_server import AwsResources
from keaplink_dev.local.sqs_poller import to_record

HOUR = 3600.0
DAY = 86400.0
REDIRECT_URI = "https://keaplink.example/callback"
SCHEDULED_EVENT = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


@dataclass(frozen=True)
class Event:
    """Something Keap does from ``at`` (hours after the day's start) for ``hours``."""

    name: str
    at: float
    hours: float


# One simulated day, from the start hour (16:00 UTC by default, so that 00:00 UTC, the quota's reset, falls at
# hour 8). "quota" means: another client of the same client id spends the day's quota at that hour.
EVENTS = (
    Event("outage", 1.0, 4.0),  # 17:00-21:00: every REST call 503
    Event("throttle", 5.5, 1.0),  # 21:30-22:30: every REST call 429, Retry-After 120
    Event("quota", 6.5, 1.4),  # 22:30: another client spends the quota; Keap answers 429 until 00:00 UTC
    Event("token_outage", 10.0, 3.0),  # 02:00-05:00: the token endpoint and REST 503 (a refresh falls due)
    Event("flaky", 14.0, 1.0),  # 06:00-07:00: 30 % of REST calls 503
)


@dataclass
class MessageSoakConfig:
    days: float = 3.0
    seed: int = 1
    start_hour_utc: float = 16.0
    messages_per_hour: int = 24
    poison_share: float = 0.03
    early_press_share: float = 0.1  # presses published before their user's signup
    tick_s: float = 300.0  # the scheduled check runs every minute on AWS; every tick here
    context_ms: int = 30_000  # the actions function's timeout
    refresh_context_ms: int = 120_000
    events: tuple[Event, ...] = EVENTS
    control_plane_faults: bool = True
    transition_s: tuple[float, float] = (60.0, 540.0)  # how long a mapping change takes (simulated), per change
    throttle_rate: float = 0.05  # share of Lambda control-plane calls answered TooManyRequestsException
    empty_short_poll_rate: float = 0.1


@dataclass
class MessageSoakReport:
    days: float
    seed: int
    wall_time_s: float = 0.0
    ticks: int = 0
    published_valid: int = 0
    published_poison: int = 0
    published_by_type: dict[str, int] = field(default_factory=dict)
    effects_expected: int = 0
    effects_missing: int = 0  # valid messages lost: an effect that never happened
    valid_dead_lettered: int = 0
    poison_dead_lettered: int = 0
    poison_with_reason: int = 0
    left_in_queue: int = 0
    holds: int = 0
    hold_reasons: dict[str, int] = field(default_factory=dict)  # every reason a hold had, counted when it began
    longest_hold_h: float = 0.0
    hours_held: float = 0.0
    batches: int = 0
    batches_meeting_a_hold: int = 0
    probes: int = 0
    keap_calls: int = 0
    keap_refused: dict[str, int] = field(default_factory=dict)  # status -> count, all REST calls
    refused_before_hold: int = 0  # REST calls refused in batches, before they held the queue (or without a hold)
    refused_while_held: int = 0  # REST calls refused while the queue was held: probes
    max_receive_count: int = 0
    requeued: int = 0
    refreshes_at_keap: int = 0
    dead_lettered_without_reason: int = 0
    paused_without_hold_s: float = 0.0  # longest span the mapping was not Enabled while no HOLD# existed
    paused_without_hold_total_s: float = 0.0
    control_plane: dict[str, int] = field(default_factory=dict)  # faults injected, by kind
    final_status: str = ""
    bugs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        line = "-" * 62
        rows: dict[str, Any] = {
            "valid messages published": self.published_valid,
            "  signups / presses / tags": " / ".join(str(self.published_by_type.get(t, 0)) for t in
                                                     ("user.signed_up", "button.pressed", "contact.tag")),
            "poison messages published": self.published_poison,
            "valid messages dead-lettered": self.valid_dead_lettered,
            "valid messages lost (effect missing)": self.effects_missing,
            "messages dead-lettered without a reason": self.dead_lettered_without_reason,
            "longest paused without a hold record (s)": round(self.paused_without_hold_s),
            "poison dead-lettered, with a reason": f"{self.poison_with_reason} of {self.published_poison}",
            "left in the queue at the end": self.left_in_queue,
            "holds": self.holds,
            "hours held / longest hold (h)": f"{self.hours_held:.1f} / {self.longest_hold_h:.1f}",
            "batches / batches that met a hold": f"{self.batches} / {self.batches_meeting_a_hold}",
            "probes": self.probes,
            "Keap REST calls": self.keap_calls,
            "refused calls while held (probes)": self.refused_while_held,
            "refused calls in batches (before a hold)": self.refused_before_hold,
            "highest receive count of any message": self.max_receive_count,
            "records re-sent on their last receive": self.requeued,
            "token refreshes at Keap": self.refreshes_at_keap,
            "final connection status": self.final_status,
            "wall time (s)": self.wall_time_s,
        }
        out = [line, f"keaplink message soak: {self.days:g} simulated days, seed {self.seed}", line, "  figures"]
        out += [f"    {k:<44} {v!s:>14}" for k, v in rows.items()]
        out.append("  hold reasons (a hold's reason changes as the probes meet Keap)")
        out += [f"    {k:<44} {v:>14}" for k, v in sorted(self.hold_reasons.items())] or ["    (none)"]
        out.append("  AWS control-plane faults injected")
        out += [f"    {k:<44} {v:>14}" for k, v in sorted(self.control_plane.items())] or ["    (none)"]
        out.append("  Keap REST answers refused (all)")
        out += [f"    {k:<44} {v:>14}" for k, v in sorted(self.keap_refused.items())] or ["    (none)"]
        out += [line, "bugs: none" if not self.bugs else "bugs:", *[f"  - {b}" for b in self.bugs], line]
        return "\n".join(out)


class CountingMetrics:
    """keaplink's metrics, counted (MessagesRequeued, MessagesHeld, QueueHeld, …)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add_metric(self, name: str, unit: MetricUnit | str, value: float) -> None:
        self.counts[name] += int(value) if unit == MetricUnit.Count else 1


class Sim:
    """keaplink's clock and the sandbox's, moved together (moto's SQS keeps real time)."""

    def __init__(self, sandbox_url: str) -> None:
        self.sandbox_url = sandbox_url
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds
        requests.post(f"{self.sandbox_url}/_sandbox/clock", json={"advance": seconds}, timeout=10).raise_for_status()


class MessageSoak:
    def __init__(self, cfg: MessageSoakConfig, sandbox_url: str, aws: Any) -> None:
        self.cfg = cfg
        self.url = sandbox_url.rstrip("/")
        self.aws = aws  # keaplink_dev.local.moto_server.AwsResources
        self.rng = random.Random(cfg.seed)
        self.sim = Sim(self.url)
        self.report = MessageSoakReport(days=cfg.days, seed=cfg.seed)
        self.sqs = aws.client("sqs")
        self.function = ""
        self.queue_arn = ""
        self.users: list[str] = []
        self.signed_up: set[str] = set()
        self.expected_contacts: set[str] = set()  # e-mails
        self.expected_tags: set[tuple[str, str]] = set()  # (e-mail, tag name)
        self.poison_bodies: list[str] = []
        self.pending_signups: list[str] = []  # users pressed early: their signup comes next hour
        self.hold_started: float | None = None
        self.hold_spans: list[tuple[float, float]] = []  # (start, end) in keaplink/sandbox time
        self.metrics = CountingMetrics()
        self.last_reason: str | None = None
        self.faults: Any = None  # keaplink_dev.local.aws_faults.Faults, when control-plane faults are on
        self.unheld_pause_since: float | None = None

    # -- setup ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        day0 = math.floor(self.sim.now() / DAY) * DAY + DAY
        self.sim.advance(day0 + self.cfg.start_hour_utc * HOUR - self.sim.now())
        self.function = register_actions_function(self.aws)
        os.environ["ACTIONS_FUNCTION"] = self.function  # what the template tells the callback and refresh
        root.reset()
        self.queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.aws.queue_url,
                                                       AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        from keap_sandbox.testing import SandboxControl

        control = SandboxControl(self.url)
        control.configure(throttle=True)
        body = control.obtain_tokens(REDIRECT_URI)
        now = self.sim.now()
        root.token_store().store_authorized(Token.from_keap(body, now), now)
        requests.delete(f"{self.url}/_sandbox/requests", timeout=10).raise_for_status()

    def mapping_state(self) -> str:
        lam = self.aws.client("lambda")
        for _ in range(5):  # the played event source is throttled too; Lambda's poller just tries again
            try:
                mappings = lam.list_event_source_mappings(FunctionName=self.function)["EventSourceMappings"]
                return str(mappings[0]["State"])
            except Exception:  # noqa: BLE001, S112 - TooManyRequestsException beyond botocore's retries
                continue
        return "Unknown"

    def mapping_enabled(self) -> bool:
        return self.mapping_state() == "Enabled"  # Lambda polls once the change is done, not while Enabling

    def watch_mapping(self) -> None:
        """The queue paused (the mapping not Enabled) while no HOLD# record says why: the span, in simulated s."""
        now = self.sim.now()
        unheld = root.hold_store().load() is None and self.mapping_state() not in ("Enabled", "Unknown")
        if unheld and self.unheld_pause_since is None:
            self.unheld_pause_since = now
        if not unheld and self.unheld_pause_since is not None:
            span = now - self.unheld_pause_since
            self.report.paused_without_hold_total_s += span
            self.report.paused_without_hold_s = max(self.report.paused_without_hold_s, span)
            self.unheld_pause_since = None
            self.report.bugs.append(f"the queue was paused without a hold record for {span:.0f} s")

    # -- Keap's day ------------------------------------------------------------------------------------------
    def active(self, hour_of_day: float) -> set[str]:
        return {e.name for e in self.cfg.events if e.at <= hour_of_day < e.at + e.hours}

    def apply_keap(self, active: set[str], was: set[str]) -> None:
        if active == was:
            return
        requests.delete(f"{self.url}/_sandbox/faults", timeout=10).raise_for_status()
        faults: list[dict[str, Any]] = []
        if "outage" in active:
            faults.append({"path_prefix": "/crm/rest", "status": 503, "count": None})
        if "token_outage" in active:
            faults += [{"path_prefix": "/crm/rest", "status": 503, "count": None},
                       {"path_prefix": "/token", "status": 503, "count": None}]
        if "throttle" in active:
            faults.append({"path_prefix": "/crm/rest", "status": 429, "count": None,
                           "headers": {"Retry-After": "120"}})
        if "flaky" in active:
            faults.append({"path_prefix": "/crm/rest", "status": 503, "failure_rate": 0.3,
                           "seed": self.rng.randrange(2**31)})
        for spec in faults:
            requests.post(f"{self.url}/_sandbox/faults", json=spec, timeout=10).raise_for_status()
        if "quota" in active and "quota" not in was:
            # Another client spends what is left of today's quota: Keap answers 429 until 00:00 UTC.
            requests.post(f"{self.url}/_sandbox/config", json={"limits": {"oauth_per_day": 1}},
                          timeout=10).raise_for_status()
        if "quota" in was and "quota" not in active:  # just before midnight, while the queue is held for it
            requests.post(f"{self.url}/_sandbox/config", json={"limits": {"oauth_per_day": 150000}},
                          timeout=10).raise_for_status()

    # -- the application -------------------------------------------------------------------------------------
    def publish(self, count: int) -> None:
        bodies: list[str] = []
        for user in self.pending_signups:
            bodies.append(self._signup(user))
        self.pending_signups = []
        for _ in range(count):
            roll = self.rng.random()
            if roll < self.cfg.poison_share:
                poison = self.rng.choice(["[" * 3000 + "]" * 3000, '{"type": "user.signed_up"}', "{broken",
                                          json.dumps({"type": "button.pressed", "user_id": "u", "x": "é" * 9000},
                                                     ensure_ascii=False)])
                self.poison_bodies.append(poison)
                bodies.append(poison)
            elif roll < 0.45 or not self.signed_up:
                bodies.append(self._signup(self._new_user()))
            elif roll < 0.45 + self.cfg.early_press_share:
                user = self._new_user()  # pressed before its signup was published
                self.pending_signups.append(user)
                bodies.append(self._press(user))
            elif roll < 0.85:
                bodies.append(self._press(self.rng.choice(sorted(self.signed_up))))
            else:
                user = self.rng.choice(sorted(self.signed_up))
                tag = self.rng.choice(["vip", "newsletter", "trial"])
                self.expected_tags.add((f"{user}@example.com", tag))
                bodies.append(self._count(json.dumps({"type": "contact.tag", "user_id": user, "tag": tag})))
        for i in range(0, len(bodies), 10):
            self.sqs.send_message_batch(QueueUrl=self.aws.queue_url, Entries=[
                {"Id": str(n), "MessageBody": b} for n, b in enumerate(bodies[i:i + 10])])

    def _new_user(self) -> str:
        user = f"u{len(self.users)}"
        self.users.append(user)
        return user

    def _count(self, body: str) -> str:
        kind = json.loads(body)["type"]
        self.report.published_by_type[kind] = self.report.published_by_type.get(kind, 0) + 1
        self.report.published_valid += 1
        return body

    def _signup(self, user: str) -> str:
        self.signed_up.add(user)
        self.expected_contacts.add(f"{user}@example.com")
        return self._count(json.dumps({"type": "user.signed_up", "user_id": user, "email": f"{user}@example.com"}))

    def _press(self, user: str) -> str:
        self.expected_tags.add((f"{user}@example.com", "buttonpushed"))
        return self._count(json.dumps({"type": "button.pressed", "user_id": user}))

    # -- Lambda's part -------------------------------------------------------------------------------------
    def context(self, ms: int) -> Any:
        class Context:
            function_name = "keaplink-actions"
            memory_limit_in_mb = 256
            invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:keaplink-actions"
            aws_request_id = uuid.uuid4().hex

            @staticmethod
            def get_remaining_time_in_millis() -> int:
                return ms

        return Context()

    def handler(self) -> Any:
        return load_handler("actions").lambda_handler

    def batches(self, limit: int = 20) -> None:
        for _ in range(limit):
            if not self.mapping_enabled():
                return
            msgs = self.sqs.receive_message(QueueUrl=self.aws.queue_url, MaxNumberOfMessages=10,
                                            AttributeNames=["All"], MessageAttributeNames=["All"],
                                            WaitTimeSeconds=0).get("Messages", [])
            if not msgs:
                return
            self.report.batches += 1
            records = []
            for m in msgs:
                self.report.max_receive_count = max(self.report.max_receive_count,
                                                    int(m["Attributes"]["ApproximateReceiveCount"]))
                record = to_record(m, self.queue_arn)
                record["messageAttributes"] = {k: {"stringValue": v.get("StringValue"), "dataType": v["DataType"]}
                                               for k, v in m.get("MessageAttributes", {}).items()}
                records.append(record)
            deps = root.actions(self.metrics, clock=self.sim.now)
            response = self.handler()({"Records": records}, self.context(self.cfg.context_ms), deps=deps)
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
            done = [m for m in msgs if m["MessageId"] not in failed]
            if done:
                self.sqs.delete_message_batch(QueueUrl=self.aws.queue_url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)])
            if root.hold_store().load() is not None:
                self.report.batches_meeting_a_hold += 1

    def check(self) -> dict[str, Any]:
        checks = root.hold_check(self.metrics, clock=self.sim.now)
        result: dict[str, Any] = self.handler()(dict(SCHEDULED_EVENT), self.context(self.cfg.context_ms),
                                                checks=checks)
        if result.get("probe"):
            self.report.probes += 1
        return result

    def hourly_refresh(self) -> None:
        refresher = root.refresher(NullMetrics(), clock=self.sim.now)
        run_scheduled(refresher, NullMetrics(), resume_queue=root.resume_queue,
                      deadline=Deadline.after(self.cfg.refresh_context_ms / 1000 - 3))

    def watch_hold(self) -> None:
        state = root.hold_store().load()
        now = self.sim.now()
        if state is not None and self.hold_started is None:
            self.hold_started = state.since
            self.report.holds += 1
        if state is not None and state.reason.value != self.last_reason:
            self.report.hold_reasons[state.reason.value] = self.report.hold_reasons.get(state.reason.value, 0) + 1
        self.last_reason = state.reason.value if state is not None else None
        if state is None and self.hold_started is not None:
            self.hold_spans.append((self.hold_started, now))
            self.hold_started = None

    # -- the run ----------------------------------------------------------------------------------------------
    def run(self) -> MessageSoakReport:
        started = time.monotonic()
        self.start()
        cfg = self.cfg
        ticks = round(cfg.days * DAY / cfg.tick_s)
        per_tick = cfg.messages_per_hour * cfg.tick_s / HOUR
        owed, active = 0.0, set[str]()
        for tick in range(ticks):
            hour_of_day = ((tick * cfg.tick_s) / HOUR) % 24
            now_active = self.active(hour_of_day)
            self.apply_keap(now_active, active)
            active = now_active
            owed += per_tick
            self.publish(int(owed))
            owed -= int(owed)
            self.sim.advance(cfg.tick_s)
            if tick % round(HOUR / cfg.tick_s) == 0:
                self.hourly_refresh()
            if self.faults is not None:
                self.faults.transition_s = self.rng.uniform(*cfg.transition_s)
            self.check()
            self.batches()
            self.watch_hold()
            self.watch_mapping()
            self.report.ticks += 1
        self.apply_keap(set(), active)
        self.drain()
        self.report.wall_time_s = round(time.monotonic() - started, 1)
        self.finish()
        return self.report

    def drain(self) -> None:
        """Keap is fine again: run until every message is done (or a generous bound of simulated time)."""
        for _ in range(round(2 * DAY / self.cfg.tick_s)):
            self.sim.advance(self.cfg.tick_s)
            self.check()
            self.batches()
            self.watch_hold()
            self.watch_mapping()
            if self.waiting() == 0 and root.hold_store().load() is None:
                time.sleep(1.2)  # records returned in the last batch come back after moto's 1 s visibility
                self.batches()
                if self.waiting() == 0:
                    return
            time.sleep(0.05)

    def waiting(self) -> int:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                 "ApproximateNumberOfMessagesDelayed"]
        attrs = self.sqs.get_queue_attributes(QueueUrl=self.aws.queue_url, AttributeNames=names)["Attributes"]
        return sum(int(attrs.get(n, 0)) for n in names)

    # -- figures ----------------------------------------------------------------------------------------------
    def finish(self) -> None:
        rep = self.report
        rep.published_poison = len(self.poison_bodies)
        state = requests.get(f"{self.url}/_sandbox/state", timeout=30).json()
        tag_names = {t["id"]: t["name"] for t in state["tags"]}
        emails_to_tags: dict[str, set[str]] = {}
        for contact in state["contacts"]:
            for e in contact["email_addresses"]:
                emails_to_tags.setdefault(e["email"], set()).update(tag_names[t] for t in contact["tag_ids"])
        missing_contacts = self.expected_contacts - set(emails_to_tags)
        missing_tags = {(e, t) for e, t in self.expected_tags if t not in emails_to_tags.get(e, set())}
        rep.effects_expected = len(self.expected_contacts) + len(self.expected_tags)
        rep.effects_missing = len(missing_contacts) + len(missing_tags)
        rep.refreshes_at_keap = int(state["tokens"]["refreshes"])
        for letter in self._dlq():
            body = letter["Body"]
            reason = letter.get("MessageAttributes", {}).get("keaplink-reason", {}).get("StringValue")
            try:
                parse(body)
                valid = True
            except InvalidMessage:
                valid = False
            if not reason:
                rep.dead_lettered_without_reason += 1
                rep.bugs.append(f"dead-lettered without a reason: {body[:80]}")
            if valid:
                rep.valid_dead_lettered += 1
                rep.bugs.append(f"valid message dead-lettered ({reason or 'no reason'}): {body[:80]}")
            else:
                rep.poison_dead_lettered += 1
                rep.poison_with_reason += int(bool(reason))
        rep.left_in_queue = self.waiting()
        if rep.effects_missing:
            rep.bugs.append(f"{rep.effects_missing} effect(s) missing: {sorted(missing_contacts)[:3]} "
                            f"{sorted(missing_tags)[:3]}")
        if rep.poison_with_reason != rep.published_poison:
            rep.bugs.append(f"{rep.published_poison - rep.poison_with_reason} poison message(s) without a reason")
        log = requests.get(f"{self.url}/_sandbox/requests", timeout=60).json()
        rest = [r for r in log if r["path"].startswith("/crm/rest")]
        rep.keap_calls = len(rest)
        rep.keap_refused = dict(Counter(str(r["status"]) for r in rest if r["status"] >= 400 or r["status"] == 0))
        spans = self.hold_spans + ([(self.hold_started, self.sim.now())] if self.hold_started else [])
        rep.hours_held = round(sum(b - a for a, b in spans) / HOUR, 1)
        rep.longest_hold_h = round(max((b - a for a, b in spans), default=0.0) / HOUR, 1)
        rep.refused_while_held = sum(1 for r in rest if (r["status"] >= 400 or r["status"] == 0)
                                     and any(a <= r["t"] <= b for a, b in spans))
        rep.refused_before_hold = sum(rep.keap_refused.values()) - rep.refused_while_held
        rep.requeued = self.metrics.counts["MessagesRequeued"]
        rep.final_status = root.token_store().load().status.value
        if self.faults is not None:
            rep.control_plane = dict(self.faults.counts)

    def _dlq(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.aws.dlq_url, MaxNumberOfMessages=10,
                                             MessageAttributeNames=["All"], VisibilityTimeout=300).get("Messages", [])
            if not batch:
                return out
            out.extend(batch)


def _resources_from_environment() -> AwsResources:
    """The moto resources keaplink's environment points at (what keaplink_dev.local.moto_server created)."""
    env = os.environ
    return AwsResources(
        endpoint=env["AWS_ENDPOINT_URL"], connection_table=env["CONNECTION_TABLE"], data_table=env["DATA_TABLE"],
        credentials_secret=env["KEAP_CREDENTIALS_SECRET"], admin_secret=env["ADMIN_SECRET"],
        kms_key_id=env["TOKEN_KMS_KEY_ID"], queue_url=env["QUEUE_URL"], dlq_url=env["DLQ_URL"])


@contextlib.contextmanager
def _restore(name: str) -> Iterator[None]:
    previous = os.environ.get(name)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous
        root.reset()


def run_message_soak(days: float = 3.0, seed: int = 1, *, sandbox_url: str | None = None,
                     **overrides: Any) -> MessageSoakReport:
    """Run the message soak. With ``sandbox_url`` the environment must already point keaplink at moto and that
    sandbox (as the test fixture ``aws`` does); without it, a private moto server and sandbox are started."""
    from keaplink_dev.soak.stack import local_stack, quiet_keaplink

    cfg = MessageSoakConfig(days=days, seed=seed, **overrides)
    with contextlib.ExitStack() as stack:
        url = sandbox_url if sandbox_url is not None else stack.enter_context(local_stack())
        stack.enter_context(quiet_keaplink())
        stack.enter_context(_restore("ACTIONS_FUNCTION"))
        stack.enter_context(_restore("AWS_ENDPOINT_URL"))
        aws = _resources_from_environment()
        faults = None
        if cfg.control_plane_faults:
            from dataclasses import replace

            from keaplink_dev.local.aws_faults import FaultProxy, Faults

            sim_clock: list[Any] = []
            faults = Faults(throttle_rate=cfg.throttle_rate, empty_short_poll_rate=cfg.empty_short_poll_rate,
                            seed=cfg.seed, clock=lambda: sim_clock[0]())
            proxy = FaultProxy(aws.endpoint, faults).start()
            stack.callback(proxy.stop)
            os.environ["AWS_ENDPOINT_URL"] = proxy.endpoint  # every AWS call of keaplink's goes through it
            root.reset()
            aws = replace(aws, endpoint=proxy.endpoint)
        soak = MessageSoak(cfg, url, aws)
        if faults is not None:
            sim_clock.append(soak.sim.now)
            soak.faults = faults
        return soak.run()
