"""Benchmark of the actions path against a local moto server and the Keap sandbox (issues 6 and 12).

CLI: ``python -m keaplink_dev.perf.bench [--latency-ms 50] [--burst 5000] [--mix 2000] [--json …] [--smoke]``
(``PYTHONPATH=devtools``; the other source directories are added here).

Everything runs locally: a moto server and a Keap sandbox (throttling on, at Keap's OAuth limits: 1,500/minute,
150,000/day, 25/second spike), connected through the real OAuth flow. The SQS event source is modelled as
``template.yaml`` configures the actions function's (batch size, batching window, maximum concurrency): the
parent process plays Lambda's poller, each "container" is a process with its own handler, limiter and caches.
Measured:

1. Keap calls per event (sandbox request log) for each kind of event; token-store reads per SQS batch.
2. A burst of first presses of known users (in Keap, signed up in the app, not yet tagged).
3. 50/50 mixes of signups and first presses: signups of new people, and of people already in Keap.
4. Event-to-effect latency at a light load (1 event/s), with the poller as AWS documents it at very low traffic
   (with a batching window, Lambda may wait up to 20 s before invoking), for the template's setting and for a
   low-latency one (batch size 10, no window).
5. The naive way (``perf.naive``) on the 50/50 mix at 50 ms and 150 ms of Keap latency.
6. Cold start (``coldstart``): handler import time, RSS after import, layer size.
7. Cost per million events (``perf.cost``), from the invocations, busy seconds, AWS calls and log bytes counted.

All containers share one Keap budget (``BUDGET#``, keap/budget.py); during the burst the parent also probes Keap
and refreshes the token, as the minute check and the hourly refresh would. Every run checks every effect at the
sandbox afterwards: 0 lost (missing effect or DLQ) and the 429s counted.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import logging
import math
import multiprocessing
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from keaplink_dev.local import flows, handlers, lambda_events, moto_server, sqs_poller
from keaplink_dev.local import template as local_template
from keaplink_dev.perf.report import KEAP_PER_DAY, KEAP_PER_MINUTE, KEAP_SPIKE_PER_S, render, rows

ROOT = Path(__file__).resolve().parents[3]
SOURCE_DIRS = (ROOT, ROOT / "layers" / "keaplink", ROOT / "sandbox", ROOT / "devtools")

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def _paths() -> None:
    for directory in reversed(SOURCE_DIRS):
        if str(directory) not in sys.path:
            sys.path.insert(0, str(directory))


# --------------------------------------------------------------------------------------------- events
def signup(user: str, email: str) -> str:
    return json.dumps({"type": "user.signed_up", "user_id": user, "email": email,
                       "given_name": "Bench", "family_name": user[-40:]})


def press(user: str, email: str | None = None) -> str:
    body = {"type": "button.pressed", "user_id": user}
    if email:
        body["email"] = email  # lets a press that overtakes its signup create the contact itself
    return json.dumps(body)


def action(kind: str, user: str, **fields: Any) -> str:
    """One of the further actions (contact.untag, .goal, .note, .fields) for a user who signed up."""
    return json.dumps({"type": kind, "user_id": user, **fields})


def people(prefix: str, count: int) -> list[tuple[str, str]]:
    return [(f"{prefix}-{i:05d}", f"{prefix}-{i:05d}@bench.example.com") for i in range(count)]


def half_and_half(signups: list[tuple[str, str]], presses: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """A signup, then a first press, alternating: (user, email, body). The presses are of people who signed up
    before (known users); each press carries the e-mail, as the naive way needs it."""
    out: list[tuple[str, str, str]] = []
    for (su, se), (pu, pe) in zip(signups, presses, strict=True):
        out += [(su, se, signup(su, se)), (pu, pe, press(pu, pe))]
    return out


# --------------------------------------------------------------------------------------------- the event source
@dataclass(frozen=True)
class EventSource:
    """The actions function's SQS event source, as ``template.yaml`` sets it."""

    batch_size: int
    window_s: float
    concurrency: int
    function_timeout_s: int
    memory_mb: int
    visibility_s: int
    env: dict[str, str]  # the function's plain variables (OAuth mode's where the template chooses)

    @classmethod
    def from_template(cls) -> EventSource:
        template = local_template.load_template()
        defaults = {k: v.get("Default") for k, v in template.get("Parameters", {}).items()}

        def resolve(value: Any) -> Any:  # a parameter's default for ``!Ref Parameter``
            return defaults.get(value["Ref"], value) if isinstance(value, dict) and "Ref" in value else value

        function = template["Resources"]["ActionsFunction"]["Properties"]
        source = function["Events"]["Queue"]["Properties"]
        globals_ = template.get("Globals", {}).get("Function", {})
        queue = template["Resources"]["ActionsQueue"]["Properties"]
        return cls(batch_size=int(source.get("BatchSize", 10)),
                   window_s=float(source.get("MaximumBatchingWindowInSeconds", 0)),
                   concurrency=int(resolve(source.get("ScalingConfig", {}).get("MaximumConcurrency", 2))),
                   function_timeout_s=int(function.get("Timeout", globals_.get("Timeout", 3))),
                   memory_mb=int(function.get("MemorySize", globals_.get("MemorySize", 128))),
                   visibility_s=int(queue.get("VisibilityTimeout", 30)),
                   env={str(k): str(resolve(_oauth_choice(v)))
                        for k, v in function["Environment"]["Variables"].items()
                        if isinstance(resolve(_oauth_choice(v)), str | int | float)})


def _oauth_choice(value: Any) -> Any:
    """``!If [IsApiKeyMode, a, b]`` → b: the benchmark connects through OAuth."""
    if isinstance(value, dict) and "Fn::If" in value and value["Fn::If"][0] == "IsApiKeyMode":
        return value["Fn::If"][2]
    return value


# --------------------------------------------------------------------------------------------- counting
def counting_handler() -> tuple[Handler, list[int]]:
    """The actions handler with a Refresher over a TokenStore that counts ``load`` calls; returns the
    handler and the list of token reads of each batch it has handled."""
    from keaplink import root
    from keaplink.connection.refresh import Refresher
    from keaplink.connection.token import Connection
    from keaplink.observability import metrics

    lock = threading.Lock()
    loads = [0]

    module = handlers.load_handler("actions")
    per_batch: list[int] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        store = root.token_store()
        load = store.load

        def counting_load() -> Connection:
            with lock:
                loads[0] += 1
            return load()

        store.load = counting_load  # type: ignore[method-assign]
        refresher = Refresher(store=store, oauth=root.oauth_client(), metrics=metrics)
        before = loads[0]
        result: dict[str, Any] = module.lambda_handler(event, context, deps=root.actions(metrics, refresher))
        per_batch.append(loads[0] - before)
        return result

    return handler, per_batch


# --------------------------------------------------------------------------------------------- containers
@dataclass
class WorkerReport:
    name: str
    token_reads: list[int] = field(default_factory=list)
    rss_ready_mb: float = 0.0
    rss_peak_mb: float = 0.0
    invocations: int = 0
    busy_s: float = 0.0  # the handler's wall time, summed: Lambda's billed duration
    log_bytes: int = 0  # what the handler wrote to stdout (logs, EMF metrics): CloudWatch Logs' ingestion
    aws: dict[str, Any] = field(default_factory=dict)  # perf.cost.AwsCalls.snapshot()
    budget: dict[str, int] = field(default_factory=dict)  # the shared budget's writes, conflicts, dropped slots
    cpu_s: float = 0.0  # the container's CPU time over its batches (every thread)
    error: str = ""


class _CountingSink:
    """stdout of a container: counts the bytes, keeps none."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, text: str) -> int:
        self.bytes += len(text.encode())
        return len(text)

    def flush(self) -> None:
        pass


def sqs_record(message_id: str, body: str, receive_count: int) -> dict[str, Any]:
    return {
        "messageId": message_id, "receiptHandle": f"rh-{message_id}-{receive_count}", "body": body,
        "attributes": {"ApproximateReceiveCount": str(receive_count), "SentTimestamp": "0",
                       "SenderId": "bench", "ApproximateFirstReceiveTimestamp": "0"},
        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:bench", "awsRegion": "us-east-1",
    }


def _rss_mb(field_name: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (the peak since the last reset) of this process, from /proc (Linux)."""
    try:
        with open("/proc/self/status") as f:
            line = next((x for x in f if x.startswith(field_name + ":")), "")
        return int(line.split()[1]) / 1024
    except (OSError, IndexError, ValueError):
        return math.nan


def _reset_peak_rss() -> None:
    """Start the peak (VmHWM) afresh: the harness's own imports must not count as the batches' memory."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _worker(index: int, env: dict[str, str], inbox: Any, feedback: Any, ready: Any, stop: Any,
            results: Any) -> None:
    """One "container": its own process, handler module, limiter and caches; its batches come from the
    parent, which plays the event source."""
    import queue as queue_module

    from keaplink_dev.perf.cost import AwsCalls

    report = WorkerReport(f"container-{index}")
    sink = _CountingSink()
    try:
        sys.stdout = sink  # type: ignore[assignment]  # the handler's logs and metrics: counted, kept nowhere
        os.environ.update(env)
        _paths()
        context = lambda_events.FakeContext()
        handler, per_batch = counting_handler()
        aws_calls = AwsCalls().install()
        report.rss_ready_mb = _rss_mb("VmRSS")
        _reset_peak_rss()
        ready.set()
        while not stop.is_set():
            try:
                batch = inbox.get(timeout=0.02)
            except queue_module.Empty:
                continue
            began, cpu = time.time(), time.process_time()
            response = handler({"Records": batch}, context)
            ended = time.time()
            report.cpu_s += time.process_time() - cpu
            report.invocations += 1
            report.busy_s += ended - began
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
            feedback.put((index, ended, [r["messageId"] for r in batch if r["messageId"] not in failed],
                          [r for r in batch if r["messageId"] in failed]))
        report.token_reads = per_batch
        report.rss_peak_mb = _rss_mb("VmHWM")
        report.log_bytes = sink.bytes
        report.aws = aws_calls.snapshot()
        from keaplink import root

        budget = root.rate_limiter()
        report.budget = {"writes": budget.writes, "conflicts": budget.conflicts, "reads": budget.reads,
                         "dropped": budget.dropped, "late": budget.late,
                         "fallbacks": budget.fallbacks}
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the run
        report.error = f"{type(exc).__name__}: {exc}"
        ready.set()
    results.put(asdict(report))


@dataclass
class Run:
    """What one scenario measured, on the parent's side."""

    events: int
    elapsed_s: float
    latencies_s: list[float]
    batch_sizes: list[int]
    returned: int
    reports: list[WorkerReport]


class Containers:
    """``n`` container processes, each with its own inbox of batches; one feedback queue for their answers."""

    def __init__(self, n: int, env: dict[str, str]) -> None:
        ctx = multiprocessing.get_context("spawn")
        ready = [ctx.Event() for _ in range(n)]
        self.inboxes = [ctx.Queue() for _ in range(n)]
        self.stopping, self.results, self.feedback = ctx.Event(), ctx.Queue(), ctx.Queue()
        self.workers = [ctx.Process(target=_worker, args=(i, env, self.inboxes[i], self.feedback, ready[i],
                                                          self.stopping, self.results), daemon=True)
                        for i in range(n)]
        for w in self.workers:
            w.start()
        for r in ready:
            if not r.wait(120):
                raise RuntimeError("a container did not start in 120 s")

    def stop(self) -> list[WorkerReport]:
        self.stopping.set()
        reports = [WorkerReport(**self.results.get(timeout=60)) for _ in self.workers]
        for w in self.workers:
            w.join(timeout=30)
        errors = [f"{r.name}: {r.error}" for r in reports if r.error]
        if errors:
            raise RuntimeError("; ".join(errors))
        return reports


class Poller:
    """Lambda's SQS poller, modelled: at most ``concurrency`` batches in flight; a batch goes out as soon as
    ``batch_size`` records are visible, or once the first visible record has waited ``window_s``; a returned
    record is visible again after ``visibility_s``. Lambda's own polling is AWS's part (and the emulator's SQS
    would be what got measured), so the queue lives here, in memory."""

    def __init__(self, source: EventSource, visibility_s: float, low_traffic_cycle_s: float | None = None) -> None:
        self.source = source
        self.visibility_s = visibility_s
        # AWS: "If you're using a batch window and your SQS queue contains very low traffic, Lambda might wait for
        # up to 20 seconds before invoking your function", even with a shorter window. Modelled for the light load:
        # a batch that is not full goes out at the end of the poller's current 20 s long poll (phase random).
        self.low_traffic_cycle_s = low_traffic_cycle_s if source.window_s > 0 else None
        self._phase = 0.0

    def _released(self, oldest: float, now: float) -> bool:
        """May a batch that is not full go out now?"""
        if now - oldest < self.source.window_s:
            return False
        cycle = self.low_traffic_cycle_s
        if not cycle:
            return True
        # The end of the long poll that was under way when the oldest record arrived.
        boundary = self._phase + math.ceil(max(0.0, oldest - self._phase) / cycle) * cycle
        return now >= boundary

    def run(self, env: dict[str, str], schedule: list[tuple[float, str]], timeout_s: float) -> Run:
        """``schedule``: (seconds after the start, body) of each event."""
        import queue as queue_module

        n = self.source.concurrency
        containers = Containers(n, env)
        inboxes, feedback = containers.inboxes, containers.feedback
        start = time.time()
        sent_at: dict[str, float] = {}
        visible: list[tuple[float, int, dict[str, Any]]] = []  # heap: (visible at, sequence, record)
        for seq, (offset, body) in enumerate(schedule):
            message_id = f"m{seq}"
            sent_at[message_id] = start + offset
            heapq.heappush(visible, (start + offset, seq, sqs_record(message_id, body, 1)))
        seq = len(schedule)
        idle = set(range(n))
        outstanding = len(schedule)
        latencies: list[float] = []
        batch_sizes: list[int] = []
        returned = 0
        last_end = start
        cycle = self.low_traffic_cycle_s
        self._phase = start + (random.uniform(0, cycle) if cycle else 0.0)
        deadline = time.monotonic() + timeout_s
        while outstanding and time.monotonic() < deadline:
            now = time.time()
            while idle and visible and visible[0][0] <= now:
                due = sum(1 for at, _, _ in visible if at <= now)  # heap: cheap enough at these sizes
                oldest = visible[0][0]
                if due < self.source.batch_size and not self._released(oldest, now):
                    break
                batch = [heapq.heappop(visible)[2] for _ in range(min(due, self.source.batch_size))]
                inboxes[idle.pop()].put(batch)
                batch_sizes.append(len(batch))
            try:
                index, ended, succeeded, failed = feedback.get(timeout=0.005)
            except queue_module.Empty:
                continue
            idle.add(index)
            last_end = max(last_end, ended)
            outstanding -= len(succeeded)
            latencies += [ended - sent_at[m] for m in succeeded]
            returned += len(failed)
            for rec in failed:
                count = int(rec["attributes"]["ApproximateReceiveCount"]) + 1
                seq += 1
                heapq.heappush(visible, (ended + self.visibility_s, seq,
                                         sqs_record(rec["messageId"], rec["body"], count)))
        reports = containers.stop()
        if outstanding:
            raise RuntimeError(f"{outstanding} events not processed within {timeout_s} s")
        return Run(len(schedule), last_end - start, latencies, batch_sizes, returned, reports)


# --------------------------------------------------------------------------------------------- bench
@dataclass
class Settings:
    latency_ms: float = 50.0
    burst: int = 5000
    mix: int = 2000
    light_events: int = 60
    light_rate: float = 1.0
    naive_events: int = 400
    naive_events_slow: int = 150
    naive_slow_latency_ms: float = 150.0
    count_users: int = 10
    visibility_s: int = 10  # the template's 360 s, shortened: a returned record would stall the run
    coldstart_runs: int = 5
    layer: bool = True
    timeout_s: float = 900.0
    concurrency: int | None = None  # MaximumConcurrency for every run (None: the template's)
    burst_concurrency: int = 4  # the burst's: what the shared budget allows, DynamoDB work spread wider
    poll_cycle_s: float = 20.0  # the poller's long poll at very low traffic (AWS: "up to 20 seconds")
    callers_during_burst: bool = True  # the minute probe and a refresh, during the burst
    rate_budget: float | None = None  # KEAP_RATE_BUDGET for the containers (None: the template's)


class Bench:
    def __init__(self, settings: Settings, say: Callable[[str], None]) -> None:
        self.s = settings
        self.say = say
        self.results: dict[str, Any] = {}
        self.source = EventSource.from_template()

    # --- setup ------------------------------------------------------------------------------------
    def start(self) -> None:
        _paths()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
        from keap_sandbox.testing import SandboxControl
        from keaplink_dev.local.stack import keap_sandbox

        # The emulators run as their own processes: in-process threads would share one GIL with each other
        # and with the benchmark, and the local emulator, not keaplink, would be what is measured.
        self.procs: list[subprocess.Popen[bytes]] = []
        self.exit_stack = contextlib.ExitStack()
        moto_port, sandbox_port = moto_server.free_port(), moto_server.free_port()
        self._spawn([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
                    f"http://127.0.0.1:{moto_port}/moto-api/")
        logs = Path(self.exit_stack.enter_context(tempfile.TemporaryDirectory(prefix="keaplink-bench-")))
        sandbox_url = self.exit_stack.enter_context(keap_sandbox(sandbox_port, logs, out=lambda line: None,
                                                                           validate_contract=False))
        control = SandboxControl(sandbox_url)
        control.configure(latency_ms=self.s.latency_ms, throttle=True,
                          limits={"oauth_per_minute": KEAP_PER_MINUTE, "oauth_per_day": KEAP_PER_DAY,
                                  "spike_per_second": int(KEAP_SPIKE_PER_S)})
        self.sandbox = SimpleNamespace(
            url=sandbox_url, control=control, client_id="sandbox-client-id", client_secret="sandbox-client-secret",
            authorize_url=f"{sandbox_url}/app/oauth/authorize", token_url=f"{sandbox_url}/token",
            api_url=f"{sandbox_url}/crm/rest",
        )
        endpoint = f"http://127.0.0.1:{moto_port}"
        creds = {"client_id": self.sandbox.client_id, "client_secret": self.sandbox.client_secret}
        self.aws = moto_server.create_resources(endpoint, uuid.uuid4().hex[:8], creds)
        self.env = {
            **self.source.env,  # KEAP_RATE_BUDGET, ACTIONS_CONCURRENCY, ACTIONS_CONTAINERS as deployed
            **self.aws.env(),
            "KEAP_AUTHORIZE_URL": self.sandbox.authorize_url,
            "KEAP_TOKEN_URL": self.sandbox.token_url,
            "KEAP_API_URL": self.sandbox.api_url,
            "KEAP_AUTH_MODE": "oauth",
            "POWERTOOLS_METRICS_NAMESPACE": "keaplink",
            "POWERTOOLS_SERVICE_NAME": "keaplink",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
        # The containers log and emit metrics as deployed (template: INFO): their bytes are part of the cost.
        self.container_env = {"POWERTOOLS_LOG_LEVEL": "INFO", "POWERTOOLS_METRICS_DISABLED": "false"}
        self.previous_env = moto_server.apply_env(self.env)
        from keaplink import root

        root.reset()
        status = flows.connect()
        token = root.token_store().load().token
        self.tenant = token.tenant if token else None
        self.say(f"connected to the sandbox Keap app ({status.get('status', status)})")

    def _spawn(self, cmd: list[str], ready_url: str) -> None:
        import requests

        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)  # noqa: S603
        self.procs.append(proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(ready_url, timeout=1).status_code < 500:
                    return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(f"{cmd[2]} did not start")

    def stop(self) -> None:
        moto_server.restore_env(self.previous_env)
        self.exit_stack.close()
        for proc in getattr(self, "procs", []):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()

    def rest_log(self, since: float = 0.0, until: float = math.inf) -> list[dict[str, Any]]:
        return [r for r in self.sandbox.control.requests()
                if r["path"].startswith("/crm/rest") and since <= r["t"] <= until]

    def keap_log(self, since: float = 0.0, until: float = math.inf) -> list[dict[str, Any]]:
        """Every call to Keap, the token endpoint included."""
        return [r for r in self.sandbox.control.requests()
                if r["path"].startswith(("/crm/rest", "/token")) and since <= r["t"] <= until]

    @contextlib.contextmanager
    def other_callers(self, enabled: bool) -> Iterator[dict[str, int]]:
        """The minute probe and a refresh ("Refresh now", the hourly check) while a run goes on: in this process,
        through the root, on priority slots of the same shared budget."""
        done = {"probes": 0, "refreshes": 0, "failed": 0}
        stop = threading.Event()

        def call() -> None:
            from keaplink import root

            stop.wait(1.0)
            while not stop.is_set():
                try:
                    session = root.keap_session(probe=True)
                    session.request("GET", "/v2/tags", "probe", params={"page_size": 1})
                    done["probes"] += 1
                    if done["refreshes"] == 0:
                        root.refresher().ensure_fresh(force=True)
                        done["refreshes"] += 1
                except Exception:  # noqa: BLE001 - counted: a caller the burst starved would show here
                    done["failed"] += 1
                stop.wait(2.0)

        thread = threading.Thread(target=call, daemon=True)
        if enabled:
            thread.start()
        try:
            yield done
        finally:
            stop.set()
            if enabled:
                thread.join(30)

    def send(self, bodies: list[str]) -> None:
        sqs = self.aws.client("sqs")
        for i in range(0, len(bodies), 10):
            chunk = bodies[i:i + 10]
            sqs.send_message_batch(QueueUrl=self.aws.queue_url,
                                   Entries=[{"Id": str(j), "MessageBody": b} for j, b in enumerate(chunk)])

    def in_keap(self, users: list[tuple[str, str]], work_address: bool = True,
                tag_names: tuple[str, ...] = ()) -> list[str]:
        """Contacts as the customer already has them in Keap (made through the control API, not REST), with a
        second, work e-mail address unless told otherwise; their ids."""
        ids = []
        for user, email in users:
            addresses = [{"email": email, "field": "EMAIL1"}]
            if work_address:
                addresses.append({"email": f"work.{email}", "field": "EMAIL2"})
            tags = {"tag_names": list(tag_names)} if tag_names else {}
            contact = self.sandbox.control.create_contact(email_addresses=addresses, given_name="Bench",
                                                          family_name=user[-40:], **tags)
            ids.append(str(contact["id"]))
        return ids

    def known_users(self, prefix: str, count: int) -> list[tuple[str, str]]:
        """People in the customer's Keap (two e-mail addresses, no tag) who signed up in the app before: their
        contact id is in the data table. Seeded directly, so that the burst measures only the presses."""
        from keaplink import root

        users = people(prefix, count)
        table = root.data_table()
        with table.batch_write() as batch:
            for (user, email), contact_id in zip(users, self.in_keap(users), strict=True):
                batch.save(table(f"USER#{user}", contact_id=contact_id, email=email, tenant=self.tenant,
                                 updated_at=time.time()))
        return users

    @contextlib.contextmanager
    def keap_latency(self, latency_ms: float) -> Iterator[None]:
        """The sandbox answers with ``latency_ms`` for a while, then with the run's latency again."""
        self.sandbox.control.configure(latency_ms=latency_ms)
        try:
            yield
        finally:
            self.sandbox.control.configure(latency_ms=self.s.latency_ms)

    # --- 1. Keap calls per event, token reads per batch -------------------------------------------
    def counts(self) -> None:
        drain = sqs_poller.drain
        handler, per_batch = counting_handler()
        n = self.s.count_users  # at most 10: one SQS receive, one batch

        def phase(bodies: list[str]) -> list[dict[str, Any]]:
            self.sandbox.control.clear_requests()
            self.send(bodies)
            drain(self.aws, handler, timeout_s=120)
            return self.rest_log()

        users = people("count", n + 1)
        # People already in the customer's Keap (two e-mail addresses, the tag applied before they signed up).
        known = people("known", n)
        self.in_keap(known, tag_names=("buttonpushed",))
        signups = phase([signup(u, e) for u, e in users])
        warmup = phase([press(users[0][0])])  # the tag's first use: find it, then apply
        first = phase([press(u) for u, _ in users[1:]])
        repeat = phase([press(u) for u, _ in users])
        known_signups = phase([signup(u, e) for u, e in known])
        known_first = phase([press(u) for u, _ in known])
        # The further actions, each kind as one batch of the users who pressed (their tag is applied).
        self.sandbox.control.publish_goal("bench", "trial_started")
        self.sandbox.control.create_custom_field("Plan", "TEXT")
        pressed = [u for u, _ in users[1:]]
        untags = phase([action("contact.untag", u, tag="buttonpushed") for u in pressed])
        goal = {"integration": "bench", "call_name": "trial_started", "event_id": "g1"}
        goals = phase([action("contact.goal", u, **goal) for u in pressed])
        goals_again = phase([action("contact.goal", u, **goal) for u in pressed])  # redelivered: done already
        notes = phase([action("contact.note", u, title="Bench", body="A note", event_id="n1") for u in pressed])
        fields = phase([action("contact.fields", u, fields={"Plan": "Pro"}) for u in pressed])
        self.results["counts"] = {
            "signup_calls_per_event": len(signups) / len(users),
            "known_signup_calls_per_event": len(known_signups) / n,
            "known_first_press_calls_per_event": len(known_first) / n,
            "first_press_calls": len(first),
            "first_press_batch": n,  # the first presses arrive as one batch: one applyTags call for all of them
            "repeat_press_calls_per_event": len(repeat) / len(users),
            "cold_tag_first_press_calls": len(warmup),
            "token_reads_per_batch_max": max(per_batch),
            "token_reads_per_batch_mean": statistics.mean(per_batch),
            "batches": len(per_batch),
            "untag_batch_calls": len(untags),  # one removeTags for the batch
            "goal_calls_per_event": len(goals) / n,
            "repeat_goal_calls_per_event": len(goals_again) / n,
            "note_calls_per_event": len(notes) / n,  # createNote, plus getUserInfo once per container
            "fields_calls_per_event": len(fields) / n,  # get + update, plus the contact model once per container
            "events": 2 * len(users) + n + 1 + 2 * n + 5 * n,
        }

    # --- 2. to 4. the event source's scenarios ---------------------------------------------------------
    def scenario(self, name: str, events: list[tuple[str, str, str]], rate_per_s: float | None = None,
                 source: EventSource | None = None, low_traffic: bool = False, callers: bool = False) -> None:
        """``events`` through the modelled event source and its containers: all at once (a burst), or at
        ``rate_per_s``. ``low_traffic``: the poller's documented wait at very low traffic; ``callers``: a probe and
        a refresh run meanwhile. Every effect is checked at the sandbox afterwards."""
        from keaplink_dev.perf.cost import SQS_MESSAGES_PER_CALL, per_million, usage

        source = source or self.source
        if self.s.concurrency:
            source = replace(source, concurrency=self.s.concurrency)
        schedule = [(i / rate_per_s if rate_per_s else 0.0, body) for i, (_, _, body) in enumerate(events)]
        env = {**self.env, **self.container_env, "ACTIONS_CONTAINERS": str(source.concurrency)}
        if self.s.rate_budget:
            env["KEAP_RATE_BUDGET"] = f"{self.s.rate_budget:g}"
        started = time.time()
        poller = Poller(source, self.s.visibility_s, self.s.poll_cycle_s if low_traffic else None)
        moto_cpu = _cpu_s(self.procs[0].pid)
        with self.other_callers(callers) as others:
            run = poller.run(env, schedule, self.s.timeout_s)
        ended = time.time()  # up to now: the containers' start-up is not in run.elapsed_s
        moto_cpu = _cpu_s(self.procs[0].pid) - moto_cpu
        everyone = self.keap_log(started, ended)
        probes = others["probes"] + others["failed"] if callers else 0
        # The containers' calls: the probes (GET /v2/tags?page_size=1, from this process) set apart.
        log = [r for r in self.rest_log(started, ended) if not (probes and _is_probe(r))]
        throttled = sum(1 for r in everyone if r["status"] == 429)
        presses = sum(1 for _, _, b in events if '"button.pressed"' in b)
        apply_calls = [r for r in log if r["path"].endswith(":applyTags")]
        dead = sqs_poller.dlq_messages(self.aws)
        lost = self.check_end_state(events) + len(dead)
        reads = [n for r in run.reports for n in r.token_reads]
        self.results[name] = {
            "events": run.events,
            "presses": presses,
            "rate_per_s": rate_per_s,
            "elapsed_s": round(run.elapsed_s, 2),
            "events_per_s": run.events / run.elapsed_s,
            "keap_requests": len(log),
            "keap_requests_per_s": (len(log) - throttled) / run.elapsed_s,
            "keap_requests_per_event": len(log) / run.events,
            "apply_tags_calls": len(apply_calls),
            "presses_per_keap_call": presses / len(log) if log else math.inf,
            "throttled_429": throttled,
            "peak_1s_requests": peak_per_second(everyone),  # every caller: the probe and the token endpoint too
            # CPU per event: the DynamoDB emulator's and the containers' (2 cores shared: their sum bounds the rate)
            "cpu_ms_per_event": {"moto": 1000 * moto_cpu / run.events,
                                 "containers": 1000 * sum(r.cpu_s for r in run.reports) / run.events},
            "concurrency": source.concurrency,
            "batch_size_setting": source.batch_size,
            "window_s": source.window_s,
            "low_traffic_model": low_traffic,
            "other_callers": others if callers else None,
            # Kept when Keap answered 429: when and what.
            "keap_log_if_throttled": [(round(x["t"], 4), x["status"], x["path"]) for x in everyone if throttled],
            "batches": len(run.batch_sizes),
            "batch_size_mean": statistics.mean(run.batch_sizes),
            "batch_size_max": max(run.batch_sizes),
            "records_returned": run.returned,
            "token_reads_per_batch_max": max(reads) if reads else 0,
            "latency_p50_s": percentile(run.latencies_s, 50),
            "latency_p95_s": percentile(run.latencies_s, 95),
            "latency_max_s": max(run.latencies_s),
            "rss_ready_mb": max(r.rss_ready_mb for r in run.reports),
            "rss_peak_mb": max(r.rss_peak_mb for r in run.reports),
            "dlq": len(dead),
            "lost": lost,
        }
        aws_calls: dict[str, int] = {}
        for report in run.reports:
            for key, n in report.aws.get("calls", {}).items():
                aws_calls[key] = aws_calls.get(key, 0) + n
        receives = sum(math.ceil(n / SQS_MESSAGES_PER_CALL) for n in run.batch_sizes)
        per_event = usage(run.events, sum(r.invocations for r in run.reports), sum(r.busy_s for r in run.reports),
                          source.memory_mb, aws_calls, sum(r.aws.get("rru", 0.0) for r in run.reports),
                          sum(r.aws.get("wru", 0.0) for r in run.reports), sum(r.log_bytes for r in run.reports),
                          receives, receives)
        self.results[name].update({
            "aws_calls": aws_calls,
            "usage_per_event": per_event,
            "cost_per_million": per_million(per_event),
            "log_bytes_per_event": sum(r.log_bytes for r in run.reports) / run.events,
            "budget": {k: sum(r.budget.get(k, 0) for r in run.reports) for k in ("writes", "conflicts", "reads",
                                                                                 "dropped", "late", "fallbacks")},
        })

    def check_end_state(self, events: list[tuple[str, str, str]]) -> int:
        """Effects missing at the sandbox: a signup without exactly one contact, a press without the tag."""
        state = self.sandbox.control.state()
        tag_ids = {t["id"] for t in state["tags"] if t["name"] == "buttonpushed"}
        by_email: dict[str, list[dict[str, Any]]] = {}
        for contact in state["contacts"]:
            for address in contact.get("email_addresses", []):
                by_email.setdefault(address["email"].lower(), []).append(contact)
        missing = 0
        for _, email, body in events:
            found = by_email.get(email.lower(), [])
            pressed = '"button.pressed"' in body
            if len(found) != 1 or (pressed and not tag_ids & set(found[0].get("tag_ids", []))):
                missing += 1
        return missing

    # --- 5. naive baseline ----------------------------------------------------------------------------
    def naive(self, name: str, events: list[tuple[str, str, str]], latency_ms: float) -> None:
        from keaplink import root
        from keaplink_dev.perf.cost import AwsCalls, per_million, usage
        from keaplink_dev.perf.naive import NaiveActions, run_list

        counter = AwsCalls().install()
        try:
            with self.keap_latency(latency_ms):
                started = time.time()
                # The naive way decrypts its token with KMS on every message (no cache of the container's).
                from keaplink.connection.crypto import KmsCipher
                from keaplink.connection.store import TokenStore

                cipher = KmsCipher(lambda: root.aws_client("kms"), lambda: root.settings().need("token_kms_key_id"))
                store = TokenStore(root.settings().connection_id, root.connection_table, cipher)
                actions = NaiveActions(self.sandbox.api_url, store)
                elapsed = run_list([body for _, _, body in events], actions, timeout_s=self.s.timeout_s)
                log = self.rest_log(started)
        finally:
            counter.uninstall()
        counted = counter.snapshot()
        # One invocation per message (batch size 1): one receive and one delete each; no log line of its own.
        per_event = usage(len(events), len(events), elapsed, self.source.memory_mb, counted["calls"], counted["rru"],
                          counted["wru"], 0.0, len(events), len(events))
        stats = actions.stats
        per_type = {k: v / sum(1 for _, _, b in events if f'"{k}"' in b) for k, v in stats.calls_by_type.items()}
        self.results[name] = {
            "events": len(events),
            "latency_ms": latency_ms,
            "elapsed_s": round(elapsed, 2),
            "events_per_s": stats.events / elapsed,
            "keap_requests": len(log),
            "keap_requests_per_event": stats.answered / len(events),  # what the events need, 429s not counted
            "keap_requests_per_s": sum(1 for r in log if r["status"] != 429) / elapsed,
            "throttled_429": stats.throttled,
            "calls_per_event_by_type": per_type,
            "token_reads": stats.token_reads,
            "lost": self.check_end_state(events),
            "aws_calls": counted["calls"],
            "usage_per_event": per_event,
            "cost_per_million": per_million(per_event),
        }

    # --- all ---------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        from keaplink_dev.perf import coldstart

        s = self.s
        begun = time.time()
        self.say(f"machine: {machine()}")
        self.say(f"event source (template.yaml): {asdict(self.source)}")
        self.start()
        try:
            self.say("1/7 Keap calls per event and token reads per batch ...")
            self.counts()
            self.say(f"2/7 seeding {s.burst + s.mix + s.light_events} people in Keap who signed up before ...")
            burst_users = self.known_users("burst", s.burst)
            mix_pressers = self.known_users("mixp", s.mix // 2)
            light_pressers = self.known_users("lightp", s.light_events // 2)
            self.say(f"3/7 burst: {s.burst} first presses at once ...")
            self.scenario("burst", [(u, e, press(u)) for u, e in burst_users],
                          source=replace(self.source, concurrency=s.concurrency or s.burst_concurrency),
                          callers=s.callers_during_burst)
            self.say(f"4/7 50/50 mix: {s.mix} events, signups of new people ...")
            self.scenario("mix_new", half_and_half(people("mixn", s.mix // 2), mix_pressers))
            self.say(f"   and {s.mix} events, signups of people already in Keap ...")
            known_signups = people("mixk", s.mix // 2)
            self.in_keap(known_signups, work_address=False)  # in Keap, not signed up in the app yet
            self.scenario("mix_known", half_and_half(known_signups, self.known_users("mixq", s.mix // 2)))
            self.say(f"5/7 light load: {s.light_events} events at {s.light_rate:g}/s, the template's setting with "
                     f"the poller's wait at very low traffic (up to {s.poll_cycle_s:g} s) ...")
            half = s.light_events // 2
            self.scenario("light", half_and_half(people("light", half), light_pressers), rate_per_s=s.light_rate,
                          low_traffic=True)
            self.say("   and with batch size 10, no window ...")
            self.scenario("light_fast", half_and_half(people("lightf", half), self.known_users("lightq", half)),
                          rate_per_s=s.light_rate, source=replace(self.source, batch_size=10, window_s=0.0),
                          low_traffic=True)
            self.say(f"6/7 at {s.naive_slow_latency_ms:g} ms of Keap latency: keaplink's 50/50 mix, {s.mix // 2} "
                     "events ...")
            with self.keap_latency(s.naive_slow_latency_ms):
                self.scenario("mix_new_slow", half_and_half(people("mixs", s.mix // 4),
                                                            self.known_users("mixsp", s.mix // 4)))
            self.say(f"   the naive way: {s.naive_events} events at {s.latency_ms:g} ms, "
                     f"{s.naive_events_slow} at {s.naive_slow_latency_ms:g} ms ...")
            half = s.naive_events // 2
            self.naive("naive", half_and_half(people("nvn", half), self.known_users("nvp", half)), s.latency_ms)
            half = s.naive_events_slow // 2
            self.naive("naive_slow", half_and_half(people("nsn", half), self.known_users("nsp", half)),
                       s.naive_slow_latency_ms)
        finally:
            self.stop()
        self.say("7/7 cold start and layer size ...")
        self.results["coldstart"] = coldstart.measure(s.coldstart_runs, s.layer)
        self.results["machine"] = machine()
        self.results["event_source"] = asdict(self.source)
        self.results["settings"] = asdict(s)
        self.results["duration_s"] = round(time.time() - begun, 1)
        self.results["rows"] = rows(self.results)
        return self.results


def _is_probe(request: dict[str, Any]) -> bool:
    """The probe's call (``GET /v2/tags?page_size=1``), not the actions' tag lookups (a filter, or 1000 a page)."""
    query = str(request.get("query", ""))
    return (request.get("method") == "GET" and request["path"].endswith("/v2/tags") and "filter" not in query
            and "1000" not in query)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _cpu_s(pid: int) -> float:
    """A process's CPU time so far (user + system, from /proc; 0 where there is none)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def peak_per_second(log: list[dict[str, Any]]) -> int:
    """The most allowed requests in any one-second window (sliding, as Keap's spike arrest counts)."""
    stamps = sorted(r["t"] for r in log if r["status"] != 429)
    best, lo = 0, 0
    for hi, t in enumerate(stamps):
        while stamps[lo] <= t - 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": model or platform.processor(),
            "python": platform.python_version()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m keaplink_dev.perf.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=None, help="sandbox latency per request (50)")
    parser.add_argument("--burst", type=int, default=None, help="first presses in the burst (5000)")
    parser.add_argument("--mix", type=int, default=None, help="events in each 50/50 mix (2000)")
    parser.add_argument("--naive-events", type=int, default=None, help="naive way's events at the latency (400)")
    parser.add_argument("--batch-size", type=int, default=None, help="the event source's BatchSize (template's)")
    parser.add_argument("--window-s", type=float, default=None,
                        help="its MaximumBatchingWindowInSeconds (template's): to compare settings")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="MaximumConcurrency for every run (the template's; the burst: --burst-concurrency)")
    parser.add_argument("--burst-concurrency", type=int, default=None, help="the burst's MaximumConcurrency (4)")
    parser.add_argument("--poll-cycle-s", type=float, default=None,
                        help="the poller's long poll at very low traffic, with a window (AWS: up to 20 s)")
    parser.add_argument("--light-events", type=int, default=None, help="events of each light-load run (60)")
    parser.add_argument("--no-callers", action="store_true", help="no probe or refresh during the burst")
    parser.add_argument("--rate-budget", type=float, default=None,
                        help="KEAP_RATE_BUDGET of the containers (the template's: 23.5)")
    parser.add_argument("--json", type=Path, default=Path("bench-output/bench.json"))
    parser.add_argument("--smoke", action="store_true", help="small and fast: exact counts, 5 ms latency")
    args = parser.parse_args(argv)
    if args.smoke:
        settings = Settings(latency_ms=5, burst=200, mix=40, light_events=6, light_rate=5.0, naive_events=10,
                            naive_events_slow=4, naive_slow_latency_ms=15, count_users=5, coldstart_runs=1,
                            layer=False, visibility_s=5, timeout_s=120, burst_concurrency=2, poll_cycle_s=1.0)
    else:
        settings = Settings()
    for name in ("latency_ms", "burst", "mix", "naive_events", "concurrency", "burst_concurrency", "poll_cycle_s",
                 "light_events", "rate_budget"):
        if getattr(args, name) is not None:
            setattr(settings, name, getattr(args, name))
    settings.callers_during_burst = not args.no_callers
    _paths()
    bench = Bench(settings, lambda text: print(text, file=sys.stderr, flush=True))
    if args.batch_size is not None or args.window_s is not None:
        bench.source = replace(bench.source, batch_size=args.batch_size or bench.source.batch_size,
                               window_s=bench.source.window_s if args.window_s is None else args.window_s)
    results = bench.run()
    print(render(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwritten: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
