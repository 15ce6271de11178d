"""keaplink's command line: publish events, inspect and redrive the DLQ, read the connection status.

    keaplink send signup --user-id u1 --email ada@example.com [--given-name Ada] [--family-name L] [--consent …]
    keaplink send press --user-id u1 [--email …]
    keaplink send tag --user-id u1 --tag vip
    keaplink send untag --user-id u1 --tag vip
    keaplink send goal --user-id u1 --integration myapp --call-name trial_started [--event-id …]
    keaplink send fields --user-id u1 --field Plan=Pro --field Seats=5   (values read as JSON when they are)
    keaplink send note --user-id u1 --title Upgraded --body "Moved to Pro" [--event-id …]
    keaplink dlq list [--max 100]              (control characters shown escaped)
    keaplink dlq redrive (--all | MESSAGE_ID …) (--all: every message present at its start, once each)
    keaplink status
    keaplink pause --reason TEXT                 (hold the actions queue until `keaplink resume`)
    keaplink resume
    keaplink connect-tokens                      (reads an access and a refresh token from a prompt or stdin)

Targets come from flags, else the environment (KEAPLINK_QUEUE_URL, KEAPLINK_DLQ_URL, AWS_ENDPOINT_URL),
else ``.keaplink/local.json`` written by ``make demo`` (``$KEAPLINK_STATE_DIR/local.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from keaplink.config import ClientSettings, client_settings
from keaplink.errors import InvalidMessage


@dataclass(frozen=True)
class Targets:
    """Where the CLI sends: the environment first, else what ``make demo`` wrote into ``local.json``."""

    settings: ClientSettings
    local: dict[str, Any]

    @classmethod
    def load(cls) -> Targets:
        settings = client_settings()
        try:
            local = json.loads((Path(settings.state_dir) / "local.json").read_text())
        except (OSError, ValueError):
            local = {}
        return cls(settings, local if isinstance(local, dict) else {})

    def pick(self, flag: str | None, configured: str | None, local_key: str, variable: str) -> str:
        value = flag or configured or str(self.local.get(local_key, ""))
        if not value:
            raise SystemExit(f"error: no {local_key}: pass it, set {variable}, or start the local stack (make demo)")
        return value

    def sqs(self) -> Any:
        from keaplink.client.aws import sqs_client

        if self.settings.aws_endpoint_url or not self.local.get("aws_endpoint_url"):
            return sqs_client(self.settings.region, self.settings.aws_endpoint_url)
        return sqs_client(self.settings.region or self.local.get("region"), str(self.local["aws_endpoint_url"]),
                          local=True)


def _send(args: argparse.Namespace, targets: Targets) -> int:
    from keaplink.client.publish import publish

    message: dict[str, Any] = {"user_id": args.user_id}
    if args.kind == "signup":
        message.update(type="user.signed_up", email=args.email, given_name=args.given_name,
                       family_name=args.family_name, consent=args.consent)
    elif args.kind == "press":
        message.update(type="button.pressed", email=args.email)
    elif args.kind in ("tag", "untag"):
        message.update(type=f"contact.{args.kind}", tag=args.tag, email=args.email)
    elif args.kind == "goal":
        message.update(type="contact.goal", integration=args.integration, call_name=args.call_name,
                       event_id=args.event_id or _new_event_id(), email=args.email)
    elif args.kind == "note":
        message.update(type="contact.note", title=args.title, body=args.body,
                       event_id=args.event_id or _new_event_id(), email=args.email)
    else:
        message.update(type="contact.fields", fields=dict(_field(f) for f in args.field), email=args.email)
    message = {k: v for k, v in message.items() if v is not None}
    queue = targets.pick(args.queue_url, targets.settings.queue_url, "queue_url", "KEAPLINK_QUEUE_URL")
    try:
        message_id = publish(message, queue, sqs=targets.sqs())
    except InvalidMessage as exc:
        print(f"error: not sent, the message is invalid: {exc}", file=sys.stderr)
        return 2
    once = f", event id {message['event_id']}" if "event_id" in message else ""
    print(f"sent {message['type']} for user {args.user_id} (message id {message_id}{once})")
    return 0


def _new_event_id() -> str:
    """A fresh event id: the command sends a new event each time it is run (pass --event-id to repeat one)."""
    import uuid

    return f"cli-{uuid.uuid4().hex}"


def _field(spec: str) -> tuple[str, Any]:
    """``NAME=VALUE``; the value as JSON when it is JSON (``5``, ``true``, ``null``, ``["a","b"]``), else text."""
    name, sep, raw = spec.partition("=")
    if not sep or not name:
        raise SystemExit(f"error: --field takes NAME=VALUE, not {spec!r}")
    try:
        return name, json.loads(raw)
    except ValueError:
        return name, raw


def _dlq(args: argparse.Namespace, targets: Targets) -> int:
    from keaplink.contract.dead_letters import DeadLetterQueue
    from keaplink.text import printable

    sqs = targets.sqs()
    dlq = DeadLetterQueue(lambda: sqs, targets.pick(args.dlq_url, targets.settings.dlq_url, "dlq_url",
                                                     "KEAPLINK_DLQ_URL"))
    if args.action == "list":
        visible, in_flight = dlq.counts()  # the queue's own figures; the listing long-polls
        letters = dlq.peek(args.max or 100)
        dlq.release(letters)
        if not letters and not in_flight:
            print("the DLQ is empty")
        elif len(letters) < visible + in_flight:
            print(f"showing {len(letters)} of about {visible + in_flight} message(s) "
                  f"({in_flight} being read by someone else right now)" if in_flight else
                  f"showing {len(letters)} of about {visible} message(s)")
        for letter in letters:  # bodies and reasons come from outside: control characters are shown escaped
            source = f"  (was {printable(letter.source_message_id)})" if letter.source_message_id else ""
            print(f"{printable(letter.message_id)}{source}  receives={letter.receive_count}  "
                  f"reason: {printable(letter.reason, 500)}")
            print(f"    {printable(letter.body, 200)}")
        return 0
    queue = targets.pick(args.queue_url, targets.settings.queue_url, "queue_url", "KEAPLINK_QUEUE_URL")
    if args.all:
        done = dlq.redrive_all(queue, on_progress=lambda n: print(f"  … {n} sent back so far", flush=True))
        print(f"{len(done.redriven)} message(s) sent back to the main queue (every one the DLQ held at the start)")
        if done.failed_again:
            print(f"{len(done.failed_again)} came back failed again during the run and were left in the DLQ:",
                  file=sys.stderr)
            for letter in done.failed_again:
                print(f"  {printable(letter.message_id)}  reason: {printable(letter.reason, 500)}", file=sys.stderr)
            return 1
        return 0
    result = dlq.redrive_ids(args.ids, queue)
    for message_id in result.redriven:
        print(f"redriven {message_id}")
    if result.missing:
        print(f"not found in the DLQ: {', '.join(printable(x) for x in result.missing)}", file=sys.stderr)
    print(f"{len(result.redriven)} message(s) sent back to the main queue")
    return 1 if result.missing else 0


def _status(args: argparse.Namespace, targets: Targets) -> int:
    import requests

    url = targets.pick(args.admin_url, targets.settings.admin_url, "admin_url", "KEAPLINK_ADMIN_URL")
    user = str(targets.local.get("admin_user", "admin"))
    password = targets.settings.admin_password or str(targets.local.get("admin_password", ""))
    response = requests.get(url.rstrip("/") + "/status.json", auth=(user, password), timeout=15)
    print(json.dumps(response.json(), indent=2) if response.ok else f"HTTP {response.status_code}")
    return 0 if response.ok else 1


def read_pair(stream: TextIO, interactive: bool) -> tuple[str, str]:
    """An access and a refresh token: asked for without echo at a terminal, else read from ``stream`` as
    a JSON object (``access_token``, ``refresh_token``) or as two lines, access token first. Never from the
    command line, where they would land in the shell's history and in every process listing."""
    if interactive:
        from getpass import getpass

        return getpass("Access token (not shown): ").strip(), getpass("Refresh token (not shown): ").strip()
    text = stream.read(65536).strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise SystemExit("error: stdin is not valid JSON") from None
        if isinstance(data, dict):
            return str(data.get("access_token", "")).strip(), str(data.get("refresh_token", "")).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) != 2:
        raise SystemExit("error: give the access token and the refresh token on two lines (or as JSON) on stdin")
    return lines[0], lines[1]


def _connect_tokens(args: argparse.Namespace, targets: Targets) -> int:
    import requests

    from keaplink.text import printable

    access, refresh = read_pair(sys.stdin, sys.stdin.isatty())
    url = targets.pick(args.admin_url, targets.settings.admin_url, "admin_url", "KEAPLINK_ADMIN_URL")
    user = str(targets.local.get("admin_user", "admin"))
    password = targets.settings.admin_password or str(targets.local.get("admin_password", ""))
    response = requests.post(url.rstrip("/") + "/tokens", data={"access_token": access, "refresh_token": refresh},
                             auth=(user, password), headers={"Accept": "application/json"}, timeout=60,
                             allow_redirects=False)
    try:
        body = response.json()
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    if response.status_code == 200:
        print(f"connected: Keap app {printable(str(body.get('tenant') or 'unknown'))} (token version "
              f"{body.get('version')}). keaplink refreshed the pair once and keeps it fresh from now on; the pair "
              "you gave no longer works.")
        return 0
    error, detail = body.get("error", f"HTTP {response.status_code}"), body.get("detail", "")
    print(f"error: {printable(str(error))}. {printable(str(detail), 1000)}".rstrip(), file=sys.stderr)
    return 1


def _pause(args: argparse.Namespace, targets: Targets) -> int:
    from keaplink.client import pause
    from keaplink.client.aws import dynamodb_client

    table = targets.pick(args.table, targets.settings.connection_table, "connection_table",
                         "KEAPLINK_CONNECTION_TABLE")
    endpoint = targets.settings.aws_endpoint_url or _local_endpoint(targets)
    ddb = dynamodb_client(targets.settings.region or targets.local.get("region"), endpoint,
                          local=not targets.settings.aws_endpoint_url and bool(endpoint))
    if args.command == "pause":
        pause.pause(ddb, table, targets.settings.connection_id, args.reason)
        print("paused: the actions queue stops within a minute (the scheduled check disables its event source); "
              "messages wait. `keaplink resume` lifts it.")
        return 0
    if not pause.resume(ddb, table, targets.settings.connection_id):
        print("error: the queue is not paused by an operator (a hold keaplink set lifts itself; see "
              "`keaplink status`)", file=sys.stderr)
        return 1
    print("resuming: the scheduled check enables the event source within a minute, then removes the hold.")
    return 0


def _local_endpoint(targets: Targets) -> str | None:
    endpoint = targets.local.get("aws_endpoint_url")
    return str(endpoint) if endpoint else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="keaplink", description=(__doc__ or "").split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    send = sub.add_parser("send", help="publish an application event to the actions queue")
    send.add_argument("kind", choices=["signup", "press", "tag", "untag", "goal", "fields", "note"])
    send.add_argument("--user-id", required=True)
    send.add_argument("--email")
    send.add_argument("--given-name")
    send.add_argument("--family-name")
    send.add_argument("--consent", help="signup: the opt-in reason the person agreed to")
    send.add_argument("--tag")
    send.add_argument("--integration", help="goal: the API goal's integration name (Keap's campaign builder)")
    send.add_argument("--call-name", help="goal: the API goal's call name")
    send.add_argument("--event-id", help="goal, note: yours; the same id is done once (default: a new one)")
    send.add_argument("--field", action="append", default=[], metavar="NAME=VALUE",
                      help="fields: a custom field's label or API name and its value (repeatable)")
    send.add_argument("--title", help="note: its title")
    send.add_argument("--body", help="note: its text")
    send.add_argument("--queue-url")
    dlq = sub.add_parser("dlq", help="list or redrive dead-lettered messages")
    dlq.add_argument("action", choices=["list", "redrive"])
    dlq.add_argument("ids", nargs="*", help="message ids to redrive")
    dlq.add_argument("--all", action="store_true", help="redrive every message")
    dlq.add_argument("--max", type=int, default=None, help="list at most this many (default 100)")
    dlq.add_argument("--dlq-url")
    dlq.add_argument("--queue-url")
    status = sub.add_parser("status", help="the connection's status (status.json)")
    status.add_argument("--admin-url")
    tokens = sub.add_parser("connect-tokens", help="start from an access/refresh token pair made in Keap's "
                            "developer portal (read from a prompt or stdin, never from the command line)")
    tokens.add_argument("--admin-url")
    paused = sub.add_parser("pause", help="hold the actions queue (messages wait) until `keaplink resume`")
    paused.add_argument("--reason", required=True, help="why, shown on the status page")
    paused.add_argument("--table", help="the connection table (else KEAPLINK_CONNECTION_TABLE)")
    resumed = sub.add_parser("resume", help="lift an operator's pause")
    resumed.add_argument("--table", help="the connection table (else KEAPLINK_CONNECTION_TABLE)")
    args = parser.parse_args(argv)
    needs = {"tag": ["tag"], "untag": ["tag"], "goal": ["integration", "call_name"], "note": ["title", "body"],
             "fields": ["field"]}
    for name in needs.get(getattr(args, "kind", ""), []) if args.command == "send" else []:
        if not getattr(args, name):
            parser.error(f"send {args.kind} needs --{name.replace('_', '-')}")
    if args.command == "send" and args.kind == "signup" and not args.email:
        parser.error("send signup needs --email")
    if args.command == "dlq" and args.action == "redrive" and not (args.all or args.ids):
        parser.error("dlq redrive needs --all or message ids")
    handlers = {"send": _send, "dlq": _dlq, "status": _status, "connect-tokens": _connect_tokens,
                "pause": _pause, "resume": _pause}
    return handlers[args.command](args, Targets.load())


if __name__ == "__main__":
    sys.exit(main())
