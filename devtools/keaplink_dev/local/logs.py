"""Follow function logs in the local emulator: one line per finished invocation.

ministack writes each invocation's stdout/stderr to CloudWatch Logs, group ``/aws/lambda/<function name>``
(or the function's ``LoggingConfig.LogGroup``), one stream per invocation, framed by AWS's own lines::

    START RequestId: <id> Version: $LATEST
    ...handler output...
    END RequestId: <id>
    REPORT RequestId: <id>\tDuration: 27 ms\tBilled Duration: 27 ms\tMemory Size: 256 MB\tMax Memory Used: 121 MB

This module polls ``logs.filter_log_events`` and parses that framing, so it works the same on real AWS.
"""

from __future__ import annotations

import argparse
import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from keaplink_dev.local.aws import DEFAULT_REGION, DEFAULT_STACK, client, resolve_endpoint, stack_functions

_START = re.compile(r"^START RequestId: (?P<id>[\w-]+)")
_END = re.compile(r"^END RequestId: (?P<id>[\w-]+)")
_REPORT = re.compile(r"^REPORT RequestId: (?P<id>[\w-]+)\s+Duration: (?P<ms>[\d.]+) ms")
_ERROR_MARKERS = ("Traceback (most recent call last)", '"errorType"', "[ERROR]", '"level":"ERROR"', "Runtime.")


@dataclass
class Invocation:
    """One finished invocation, assembled from its log lines."""

    function: str  # physical function name
    request_id: str
    duration_ms: float | None = None
    started_ms: int = 0
    lines: list[str] = field(default_factory=list)
    label: str = ""  # logical id from the template, when known

    @property
    def status(self) -> str:
        """``timeout``, ``error`` or ``ok``, judged from the log lines."""
        text = "\n".join(self.lines)
        if "Task timed out" in text:
            return "timeout"
        if any(marker in text for marker in _ERROR_MARKERS):
            return "error"
        return "ok"

    def summary(self) -> str:
        when = datetime.fromtimestamp(self.started_ms / 1000, tz=UTC).strftime("%H:%M:%S") if self.started_ms else "--"
        dur = f"{self.duration_ms:.0f} ms" if self.duration_ms is not None else "? ms"
        return f"{when} {self.label or self.function:<28} {self.status:<7} {self.request_id} {dur}"


class _StreamParser:
    """Turns the events of one log stream into finished :class:`Invocation` objects."""

    def __init__(self, function: str, label: str) -> None:
        self.function = function
        self.label = label
        self.current: Invocation | None = None

    def feed(self, message: str, timestamp: int) -> Invocation | None:
        message = message.rstrip("\n")
        if m := _START.match(message):
            self.current = Invocation(self.function, m.group("id"), started_ms=timestamp, label=self.label)
            return None
        if _END.match(message):
            return None
        if m := _REPORT.match(message):
            inv = self.current if self.current and self.current.request_id == m.group("id") else None
            if inv is None:
                inv = Invocation(self.function, m.group("id"), started_ms=timestamp, label=self.label)
            inv.duration_ms = float(m.group("ms"))
            self.current = None
            return inv
        if self.current is not None:
            self.current.lines.append(message)
        return None


def parse_events(function: str, events: Iterable[dict[str, Any]], label: str = "") -> list[Invocation]:
    """Finished invocations in ``events`` (``filter_log_events`` events of one function's log group)."""
    parsers: dict[str, _StreamParser] = {}
    done: list[Invocation] = []
    for ev in sorted(events, key=lambda e: (e.get("timestamp", 0), e.get("eventId", ""))):
        parser = parsers.setdefault(ev.get("logStreamName", ""), _StreamParser(function, label))
        inv = parser.feed(str(ev.get("message", "")), int(ev.get("timestamp", 0)))
        if inv is not None:
            done.append(inv)
    return done


def follow_invocations(
    endpoint: str,
    *,
    stack_name: str | None = None,
    functions: Iterable[str] | None = None,
    since_ms: int | None = None,
    poll_interval: float = 1.0,
    stop: threading.Event | None = None,
    region: str = DEFAULT_REGION,
) -> Iterator[Invocation]:
    """Yield every invocation that finishes (from ``since_ms``, default now), until ``stop`` is set.

    Functions: ``functions`` (physical names) if given, else every function of ``stack_name``, else every
    ``/aws/lambda/*`` log group; the set is looked up again each poll, so a redeploy is followed.
    """
    logs = client("logs", endpoint, region)
    start = since_ms if since_ms is not None else int(time.time() * 1000)
    parsers: dict[tuple[str, str], _StreamParser] = {}
    seen: set[str] = set()
    stop = stop or threading.Event()
    while not stop.is_set():
        targets = _targets(endpoint, stack_name, functions, logs, region)
        for function, label in targets.items():
            group = f"/aws/lambda/{function}"
            for ev in _events(logs, group, start):
                key = ev.get("eventId") or f"{ev.get('logStreamName')}/{ev.get('timestamp')}/{ev.get('message')}"
                if key in seen:
                    continue
                seen.add(key)
                stream = str(ev.get("logStreamName", ""))
                parser = parsers.setdefault((function, stream), _StreamParser(function, label))
                inv = parser.feed(str(ev.get("message", "")), int(ev.get("timestamp", 0)))
                if inv is not None:
                    yield inv
        stop.wait(poll_interval)


def _targets(
    endpoint: str, stack_name: str | None, functions: Iterable[str] | None, logs: Any, region: str
) -> dict[str, str]:
    if functions is not None:
        return {f: "" for f in functions}
    if stack_name:
        try:
            return stack_functions(endpoint, stack_name, region)
        except Exception:  # noqa: BLE001 - stack not there (yet): follow nothing this round
            return {}
    groups = logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/").get("logGroups", [])
    return {g["logGroupName"].removeprefix("/aws/lambda/"): "" for g in groups}


def _events(logs: Any, group: str, start_ms: int) -> Iterator[dict[str, Any]]:
    kwargs: dict[str, Any] = {"logGroupName": group, "startTime": start_ms}
    while True:
        try:
            page = logs.filter_log_events(**kwargs)
        except logs.exceptions.ResourceNotFoundException:
            return
        yield from page.get("events", [])
        token = page.get("nextToken")
        if not token or not page.get("events"):
            return
        kwargs["nextToken"] = token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Follow the local stack's function invocations.")
    parser.add_argument("--stack", default=DEFAULT_STACK)
    parser.add_argument("--endpoint", default=None, help="default: .keaplink/local.json, then $AWS_ENDPOINT_URL")
    parser.add_argument("--all", action="store_true", help="from the beginning, not from now")
    parser.add_argument("-v", "--verbose", action="store_true", help="also print each invocation's log lines")
    args = parser.parse_args(argv)
    endpoint = resolve_endpoint(explicit=args.endpoint)
    try:
        for inv in follow_invocations(endpoint, stack_name=args.stack, since_ms=0 if args.all else None):
            print(inv.summary(), flush=True)
            if args.verbose:
                for line in inv.lines:
                    print(f"    {line}", flush=True)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
