"""CLI: ``python -m keap_sandbox --host 127.0.0.1 --port 8765``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from keap_sandbox.server import make_server
from keap_sandbox.state import SandboxConfig


def build_parser() -> argparse.ArgumentParser:
    defaults = SandboxConfig()
    p = argparse.ArgumentParser(
        prog="python -m keap_sandbox",
        description="Local stand-in for Keap's OAuth2 server and REST v2 API.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--client-id", default=defaults.client_id)
    p.add_argument("--client-secret", default=defaults.client_secret)
    p.add_argument("--tenant", default=defaults.tenant, help="Keap app name, e.g. sb123.infusionsoft.com")
    p.add_argument("--app-name", default=defaults.app_name, help="developer app name on the consent page")
    p.add_argument("--expires-in", type=int, default=defaults.expires_in)
    p.add_argument("--latency-ms", type=float, default=defaults.latency_ms)
    p.add_argument(
        "--throttle",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="enforce Keap's rate limits (429); headers are sent either way",
    )
    p.add_argument(
        "--validate-contract",
        action="store_true",
        help="check every REST request and answer against Keap's OpenAPI v2 contract (needs openapi-core); "
        "violations are logged and listed at /_sandbox/contract",
    )
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = SandboxConfig(
        client_id=args.client_id,
        client_secret=args.client_secret,
        tenant=args.tenant,
        app_name=args.app_name,
        expires_in=args.expires_in,
        latency_ms=args.latency_ms,
        throttle=args.throttle,
        validate_contract=args.validate_contract,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    server = make_server(args.host, args.port, config, verbose=args.verbose)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    print(f"keap-sandbox listening on {server.url}", flush=True)
    while not stop.wait(0.1):
        pass
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
