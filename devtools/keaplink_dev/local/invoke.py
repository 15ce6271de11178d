"""Invoke a deployed function of the local stack by its template logical id.

CLI: ``python -m keaplink_dev.local.invoke FUNCTION EVENT [--stack keaplink-local] [--endpoint URL]``
(``PYTHONPATH=devtools``). The endpoint comes from ``.keaplink/local.json`` (``aws_endpoint_url``), else
``$AWS_ENDPOINT_URL``. Exit status 0, or 1 when the function raised (``FunctionError``).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from keaplink_dev.local.aws import (
    DEFAULT_REGION,
    DEFAULT_STACK,
    client,
    physical_id,
    read_local_state,
    resolve_endpoint,
)

EXAMPLE_PASSWORD = "keaplink-local-admin"  # the password written into events/*.json

Printer = Callable[[str], None]


def _default_print(line: str) -> None:
    print(line, flush=True)


def _decode(raw: bytes) -> Any:
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def load_event(event_path: Path | str | None) -> bytes:
    """The event file's bytes (``-`` = stdin, ``None`` = ``{}``); it must hold JSON."""
    if event_path is None:
        return b"{}"
    data = sys.stdin.buffer.read() if str(event_path) == "-" else Path(event_path).read_bytes()
    json.loads(data)  # fail early on a bad event file
    return data


def with_local_admin(payload: bytes) -> bytes:
    """API events in events/ carry the example password; swap in the running stack's admin password so
    they authenticate (and leave events without an Authorization header, or with a wrong one on purpose,
    alone)."""
    state = read_local_state()
    password = state.get("admin_password")
    event = json.loads(payload)
    headers = event.get("headers") if isinstance(event, dict) else None
    if not password or not isinstance(headers, dict):
        return payload
    example = "Basic " + base64.b64encode(f"admin:{EXAMPLE_PASSWORD}".encode()).decode()
    actual = "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()
    for key, value in list(headers.items()):
        if key.lower() == "authorization" and value == example:
            headers[key] = actual
            for mv_key in event.get("multiValueHeaders") or {}:
                if mv_key.lower() == "authorization":
                    event["multiValueHeaders"][mv_key] = [actual]
    return json.dumps(event).encode()


def invoke(
    endpoint: str,
    stack_name: str,
    logical_id: str,
    event_path: Path | str | None,
    *,
    region: str = DEFAULT_REGION,
    out: Printer | None = _default_print,
) -> dict[str, Any]:
    """Invoke ``logical_id`` of ``stack_name`` synchronously with the JSON in ``event_path``.

    Returns ``{"function_name", "status_code", "function_error", "payload", "log", "duration_s"}``:
    ``payload`` is the parsed JSON the handler returned (or text); ``function_error`` is ``None`` or
    ``"Unhandled"``; ``log`` is the invocation's log (``LogType=Tail``; ministack returns only the handler's
    stdout/stderr there, AWS the last 4 KB including START/END/REPORT).
    Prints the payload and the log unless ``out`` is ``None``.
    """
    name = physical_id(endpoint, stack_name, logical_id, region)
    payload = with_local_admin(load_event(event_path))
    start = time.monotonic()
    resp = client("lambda", endpoint, region).invoke(
        FunctionName=name, InvocationType="RequestResponse", LogType="Tail", Payload=payload
    )
    result: dict[str, Any] = {
        "function_name": name,
        "status_code": resp.get("StatusCode"),
        "function_error": resp.get("FunctionError"),
        "payload": _decode(resp["Payload"].read()),
        "log": base64.b64decode(resp.get("LogResult") or b"").decode("utf-8", errors="replace"),
        "duration_s": round(time.monotonic() - start, 3),
    }
    if out is not None:
        state = f"FunctionError={result['function_error']}" if result["function_error"] else "ok"
        out(f"== {logical_id} ({name}) {state} in {result['duration_s']}s")
        out("-- payload --")
        out(json.dumps(result["payload"], indent=2) if not isinstance(result["payload"], str) else result["payload"])
        out("-- log --")
        out(result["log"].rstrip())
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Invoke a function of the local stack with an event file.")
    parser.add_argument("function", help="logical id in template.yaml, e.g. RefreshFunction")
    parser.add_argument("event", nargs="?", default=None, help="JSON event file ('-' = stdin; default {})")
    parser.add_argument("--stack", default=DEFAULT_STACK)
    parser.add_argument("--endpoint", default=None, help="default: .keaplink/local.json, then $AWS_ENDPOINT_URL")
    parser.add_argument("--region", default=DEFAULT_REGION)
    args = parser.parse_args(argv)
    endpoint = resolve_endpoint(explicit=args.endpoint)
    result = invoke(endpoint, args.stack, args.function, args.event, region=args.region)
    return 1 if result["function_error"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
