"""keaplink's command line: publish events, inspect and redrive the DLQ, read the connection status.

    keaplink send signup --user-id u1 --email ada@example.com [--given-name Ada] [--family-name L]
    keaplink send press --user-id u1 [--email …]
    keaplink send tag --user-id u1 --tag vip
    keaplink dlq list [--max 100]
    keaplink dlq redrive (--all | MESSAGE_ID …)
    keaplink status

Targets come from flags, else the environment (KEAPLINK_QUEUE_URL, KEAPLINK_DLQ_URL, AWS_ENDPOINT_URL),
else ``.keaplink/local.json`` written by ``make demo`` (``$KEAPLINK_STATE_DIR/local.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from keaplink.errors import InvalidMessage


def _local() -> dict[str, Any]:
    path = Path(os.environ.get("KEAPLINK_STATE_DIR", ".keaplink")) / "local.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data


def _target(flag: str | None, env: str, local_key: str) -> str:
    value = flag or os.environ.get(env) or str(_local().get(local_key, ""))
    if not value:
        raise SystemExit(f"error: no {local_key}: pass it, set {env}, or start the local stack (make demo)")
    return value


def _prepare_aws() -> None:
    """Point boto3 at the local stack when it is running and nothing else was configured."""
    local = _local()
    if local.get("aws_endpoint_url") and "AWS_ENDPOINT_URL" not in os.environ:
        os.environ["AWS_ENDPOINT_URL"] = str(local["aws_endpoint_url"])
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    os.environ.setdefault("AWS_DEFAULT_REGION", str(local.get("region", "us-east-1")))


def _send(args: argparse.Namespace) -> int:
    from keaplink.publish import publish

    message: dict[str, Any] = {"user_id": args.user_id}
    if args.kind == "signup":
        message.update(type="user.signed_up", email=args.email, given_name=args.given_name,
                       family_name=args.family_name)
    elif args.kind == "press":
        message.update(type="button.pressed", email=args.email)
    else:
        message.update(type="contact.tag", tag=args.tag, email=args.email)
    message = {k: v for k, v in message.items() if v is not None}
    try:
        message_id = publish(message, _target(args.queue_url, "KEAPLINK_QUEUE_URL", "queue_url"))
    except InvalidMessage as exc:
        print(f"error: not sent, the message is invalid: {exc}", file=sys.stderr)
        return 2
    print(f"sent {message['type']} for user {args.user_id} (message id {message_id})")
    return 0


def _dlq(args: argparse.Namespace) -> int:
    from keaplink.dead_letters import peek, redrive, release

    dlq = _target(args.dlq_url, "KEAPLINK_DLQ_URL", "dlq_url")
    letters = peek(dlq, args.max)
    if args.action == "list":
        release(dlq, letters)
        if not letters:
            print("the DLQ is empty")
        for letter in letters:
            source = f"  (was {letter.source_message_id})" if letter.source_message_id else ""
            print(f"{letter.message_id}{source}  receives={letter.receive_count}  reason: {letter.reason}")
            print(f"    {letter.body[:200]}")
        return 0
    queue = _target(args.queue_url, "KEAPLINK_QUEUE_URL", "queue_url")
    chosen = [x for x in letters if args.all or x.message_id in args.ids]
    release(dlq, [x for x in letters if x not in chosen])
    missing = set(args.ids) - {x.message_id for x in chosen}
    for letter in chosen:
        redrive(dlq, queue, letter)
        print(f"redriven {letter.message_id}")
    if missing:
        print(f"not found in the DLQ: {', '.join(sorted(missing))}", file=sys.stderr)
    print(f"{len(chosen)} message(s) sent back to the main queue")
    return 1 if missing else 0


def _status(args: argparse.Namespace) -> int:
    import requests

    local = _local()
    url = args.admin_url or os.environ.get("KEAPLINK_ADMIN_URL") or local.get("admin_url")
    if not url:
        raise SystemExit("error: no admin URL: pass --admin-url or start the local stack")
    user = local.get("admin_user", "admin")
    password = os.environ.get("KEAPLINK_ADMIN_PASSWORD") or local.get("admin_password", "")
    response = requests.get(str(url).rstrip("/") + "/status.json", auth=(user, password), timeout=15)
    print(json.dumps(response.json(), indent=2) if response.ok else f"HTTP {response.status_code}")
    return 0 if response.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="keaplink", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    send = sub.add_parser("send", help="publish an application event to the actions queue")
    send.add_argument("kind", choices=["signup", "press", "tag"])
    send.add_argument("--user-id", required=True)
    send.add_argument("--email")
    send.add_argument("--given-name")
    send.add_argument("--family-name")
    send.add_argument("--tag")
    send.add_argument("--queue-url")
    dlq = sub.add_parser("dlq", help="list or redrive dead-lettered messages")
    dlq.add_argument("action", choices=["list", "redrive"])
    dlq.add_argument("ids", nargs="*", help="message ids to redrive")
    dlq.add_argument("--all", action="store_true", help="redrive every message")
    dlq.add_argument("--max", type=int, default=100)
    dlq.add_argument("--dlq-url")
    dlq.add_argument("--queue-url")
    status = sub.add_parser("status", help="the connection's status (status.json)")
    status.add_argument("--admin-url")
    args = parser.parse_args(argv)
    if args.command == "send" and args.kind == "tag" and not args.tag:
        parser.error("send tag needs --tag")
    if args.command == "send" and args.kind == "signup" and not args.email:
        parser.error("send signup needs --email")
    if args.command == "dlq" and args.action == "redrive" and not (args.all or args.ids):
        parser.error("dlq redrive needs --all or message ids")
    _prepare_aws()
    handlers = {"send": _send, "dlq": _dlq, "status": _status}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
