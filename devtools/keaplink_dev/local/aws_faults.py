"""AWS's control plane as it behaves, in front of the local emulator: a small HTTP proxy (tests, `make soak`).

moto flips an event source mapping at once and never refuses; AWS does neither. Between keaplink's botocore
clients and the emulator, this proxy models what AWS documents:

* an event source mapping is ``Creating``, ``Enabling``, ``Enabled``, ``Disabling``, ``Disabled``, ``Updating``
  or ``Deleting`` (Lambda API, GetEventSourceMapping ``State``): after an update it reads ``Enabling`` /
  ``Disabling`` / ``Updating`` for ``transition_s`` seconds, and UpdateEventSourceMapping is refused meanwhile
  with ``ResourceInUseException`` ("you tried to update an event source mapping in the CREATING state, or …
  currently UPDATING": Lambda API reference, UpdateEventSourceMapping errors; botocore
  ``Lambda.Client.exceptions.ResourceInUseException``);
* Lambda control-plane calls are throttled with ``TooManyRequestsException`` (HTTP 429, "the request throughput
  limit was exceeded": same errors list) — the next ``throttle_next`` calls, or a share ``throttle_rate``;
* a short poll (ReceiveMessage with ``WaitTimeSeconds`` 0 or absent) samples a subset of SQS's servers and may
  answer nothing while messages wait (SQS developer guide, *Amazon SQS short and long polling*; ReceiveMessage:
  "if the number of messages in the queue is extremely small, you might not receive any messages") — a share
  ``empty_short_poll_rate`` is answered empty without asking the emulator;
* a message's attributes — name, type and value — count toward its size limit ("All parts of the message
  attribute, including Name, Type, and Value, are part of the message size restriction (256 KiB or 262,144
  bytes)": SQS API reference, MessageAttributeValue; AWS raised the limit to 1 MiB in 2025, and a queue's
  ``MaximumMessageSize`` may be lower): SendMessage/SendMessageBatch over ``max_message_bytes`` are refused.

Everything else passes through unchanged. The clock is the caller's (tests move simulated time, no sleeps).
"""

from __future__ import annotations

import base64
import http.client
import json
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ESM_PATH = re.compile(r"^/2015-03-31/event-source-mappings/?(?P<uuid>[0-9a-fA-F-]{36})?/?$")
SQS_LIMIT_BYTES = 262_144


@dataclass
class Faults:
    """What the proxy does; change it at any time (the proxy reads it per request)."""

    transition_s: float = 0.0  # how long a mapping reads Enabling/Disabling/Updating after an update
    throttle_next: int = 0  # the next N Lambda control-plane calls answer TooManyRequestsException
    throttle_rate: float = 0.0  # and this share of the others
    empty_short_poll_rate: float = 0.0  # this share of short polls answer nothing
    max_message_bytes: int = SQS_LIMIT_BYTES  # body + attributes
    seed: int = 1
    clock: Callable[[], float] = time.monotonic
    counts: dict[str, int] = field(default_factory=dict)  # what was injected, by kind

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()
        self._changing: dict[str, tuple[str, float]] = {}  # mapping UUID → (transitional state, until)

    def _count(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def _chance(self, rate: float) -> bool:
        return rate > 0 and self._random.random() < rate

    def throttled(self) -> bool:
        with self._lock:
            if self.throttle_next > 0:
                self.throttle_next -= 1
            elif not self._chance(self.throttle_rate):
                return False
            self._count("throttled")
            return True

    def changing(self, uuid: str) -> str | None:
        with self._lock:
            state = self._changing.get(uuid)
            if state is None or self.clock() >= state[1]:
                self._changing.pop(uuid, None)
                return None
            return state[0]

    def start_change(self, uuid: str, state: str) -> None:
        if self.transition_s > 0:
            with self._lock:
                self._changing[uuid] = (state, self.clock() + self.transition_s)

    def empty_poll(self) -> bool:
        with self._lock:
            if self._chance(self.empty_short_poll_rate):
                self._count("empty_short_poll")
                return True
            return False


def message_bytes(body: str, attributes: dict[str, Any] | None) -> int:
    """A message's size as SQS counts it: the body and each attribute's name, type and value (UTF-8)."""
    size = len(body.encode())
    for name, value in (attributes or {}).items():
        size += len(name.encode()) + len(str(value.get("DataType", "")).encode())
        if value.get("StringValue") is not None:
            size += len(str(value["StringValue"]).encode())
        if value.get("BinaryValue") is not None:
            raw = value["BinaryValue"]
            size += len(base64.b64decode(raw)) if isinstance(raw, str) else len(raw)
    return size


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FaultProxy

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            if key.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _lambda_error(self, status: int, code: str, message: str) -> None:
        body = json.dumps({"Type": "User", "Message": message, "message": message}).encode()
        self._answer(status, body, {"Content-Type": "application/json", "x-amzn-ErrorType": code})

    def _sqs_error(self, code: str, message: str) -> None:
        body = json.dumps({"__type": f"com.amazonaws.sqs#{code}", "message": message}).encode()
        self._answer(400, body, {"Content-Type": "application/x-amz-json-1.0", "x-amzn-query-error": f"{code};Sender"})

    def _forward(self, body: bytes) -> tuple[int, bytes, dict[str, str]]:
        target = urlsplit(self.server.upstream)
        conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port or 80, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(self.command, self.path, body=body, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        conn.close()
        return answer.status, data, dict(answer.getheaders())

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        faults = self.server.faults
        path = urlsplit(self.path).path
        esm = ESM_PATH.match(path)
        if esm is not None:
            self._mapping(esm.group("uuid"), body, faults)
            return
        action = str(self.headers.get("X-Amz-Target", "")).removeprefix("AmazonSQS.")
        if action == "ReceiveMessage" and int(_json(body).get("WaitTimeSeconds") or 0) == 0 and faults.empty_poll():
            self._answer(200, b"{}", {"Content-Type": "application/x-amz-json-1.0"})
            return
        if action in ("SendMessage", "SendMessageBatch") and self._too_long(action, _json(body), faults):
            return
        self._answer(*self._forward(body))

    def _too_long(self, action: str, request: dict[str, Any], faults: Faults) -> bool:
        entries = request.get("Entries", []) if action == "SendMessageBatch" else [request]
        sizes = [message_bytes(str(e.get("MessageBody", "")), e.get("MessageAttributes")) for e in entries]
        if action == "SendMessage" and sizes and sizes[0] > faults.max_message_bytes:
            faults._count("message_too_long")
            self._sqs_error("InvalidParameterValue", "One or more parameters are invalid. Reason: Message must be "
                            f"shorter than {faults.max_message_bytes} bytes.")
            return True
        if action == "SendMessageBatch" and sum(sizes) > faults.max_message_bytes:
            faults._count("message_too_long")
            self._sqs_error("AWS.SimpleQueueService.BatchRequestTooLong",
                            f"Batch requests cannot be longer than {faults.max_message_bytes} bytes.")
            return True
        return False

    def _mapping(self, uuid: str | None, body: bytes, faults: Faults) -> None:
        if faults.throttled():
            self._lambda_error(429, "TooManyRequestsException", "Rate exceeded")
            return
        if self.command == "PUT" and uuid:
            if faults.changing(uuid) is not None:
                faults._count("resource_in_use")
                self._lambda_error(400, "ResourceInUseException",
                                   f"Cannot update the event source mapping because it is in use: {uuid}")
                return
            status, data, headers = self._forward(body)
            if status in (200, 202):  # AWS answers 202 Accepted: the change is under way
                enabled = _json(body).get("Enabled")
                faults.start_change(uuid, "Updating" if enabled is None else ("Enabling" if enabled else "Disabling"))
                faults._count("mapping_updates")
            self._answer(status, _restate(data, faults), headers)
            return
        status, data, headers = self._forward(body)
        self._answer(status, _restate(data, faults) if status in (200, 202) else data, headers)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        return {key: values[0] for key, values in parse_qs(body.decode(errors="replace")).items()}
    return value if isinstance(value, dict) else {}


def _restate(data: bytes, faults: Faults) -> bytes:
    """A mapping (or a list of them) with the state AWS would show while it changes."""
    try:
        doc = json.loads(data)
    except ValueError:
        return data
    for mapping in doc.get("EventSourceMappings", [doc]):
        changing = faults.changing(str(mapping.get("UUID", "")))
        if changing is not None:
            mapping["State"] = changing
    return json.dumps(doc).encode()


class FaultProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, faults: Faults | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.faults = faults or Faults()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True, name="aws-faults")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
