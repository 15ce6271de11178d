"""``make demo``: the whole keaplink system on 127.0.0.1, from the real template.

Starts the Keap sandbox (unless the ``KEAP_*_URL`` variables point at a real Keap), the ministack AWS
emulator, builds and deploys ``template.yaml`` into it, serves the admin API through a front that renames
response headers as API Gateway does (:mod:`keaplink_dev.local.apigw_front`), writes ``.keaplink/local.json`` for
scripts, prints what to open, then tails one line per function invocation until Ctrl-C or SIGTERM stops
everything. Once
Docker runs, it also writes ``.keaplink/sam-env.json`` for ``sam local`` (:mod:`keaplink_dev.local.sam_local`).

Environment (all optional):
  KEAPLINK_AWS_PORT (4566)      the emulator's port
  KEAPLINK_API_PORT (4567)      the admin API's front (the admin URL)
  KEAP_SANDBOX_PORT (8765)      the Keap sandbox's port
  KEAPLINK_ADMIN_PASSWORD       admin password, 15 characters at least (default: generated and printed)
  KEAP_CLIENT_ID / KEAP_CLIENT_SECRET   needed with a real Keap (default: the sandbox's)
  KEAP_AUTHORIZE_URL / KEAP_TOKEN_URL / KEAP_API_URL   a real Keap instead of the sandbox
  KEAPLINK_REFRESH_SCHEDULE (rate(5 minutes))   how often the refresh check runs locally
  KEAPLINK_STATE_DIR (.keaplink)  where local.json, sam-env.json and logs go
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import requests

from keaplink_dev.local.apigw_front import ApiFront
from keaplink_dev.local.aws import DEFAULT_REGION, DEFAULT_STACK, REPO_ROOT, local_state_path, write_local_state
from keaplink_dev.local.deploy import SamError, sam_build, sam_deploy
from keaplink_dev.local.ministack import MiniStack, MiniStackError, ensure_installed, port_in_use
from keaplink_dev.local.sam_local import SamEnvWriter

SANDBOX_CLIENT_ID = "sandbox-client-id"
SANDBOX_CLIENT_SECRET = "sandbox-client-secret"  # the sandbox's own, public by design
STAGE = "local"
Printer = Callable[[str], None]


class StackError(RuntimeError):
    """The local stack could not be started; the message says what to do."""


def say(line: str) -> None:
    print(line, flush=True)


def _env_port(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default))
    try:
        return int(raw)
    except ValueError as exc:
        raise StackError(f"{name}={raw!r} is not a port number") from exc


def _check_port(port: int, what: str, variable: str) -> None:
    if port_in_use(port):
        raise StackError(f"port {port} ({what}) is already in use: stop what uses it, or set {variable}")


@contextmanager
def keap_sandbox(port: int, state_dir: Path, out: Printer, validate_contract: bool = True) -> Iterator[str]:
    """Run the sandbox as a child process (its own process group) and yield its base URL.

    ``validate_contract``: check every Keap call against Keap's v2 contract (violations are logged and
    listed at ``/_sandbox/contract``); off for the benchmark, where it would cost the sandbox CPU."""
    _check_port(port, "Keap sandbox", "KEAP_SANDBOX_PORT")
    log = (state_dir / "keap-sandbox.log").open("w")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "sandbox")}
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "keap_sandbox", "--host", "127.0.0.1", "--port", str(port),
         *(["--validate-contract"] if validate_contract else [])],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                raise StackError(f"the Keap sandbox exited (see {log.name})")
            try:
                if requests.get(f"{url}/_sandbox/clock", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise StackError(f"the Keap sandbox did not start in 15 s (see {log.name})")
            time.sleep(0.1)
        out(f"  ✓ Keap sandbox on {url}")
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def _api_port(aws_port: int, sandbox_port: int) -> int:
    port = _env_port("KEAPLINK_API_PORT", 4567)
    if port in (aws_port, sandbox_port):
        raise StackError(f"KEAPLINK_API_PORT={port} is also the emulator's or the sandbox's port: choose another")
    return port


@contextmanager
def admin_front(endpoint: str, api_id: str, port: int, out: Printer) -> Iterator[ApiFront]:
    """The admin URL's server. The emulator's execute-api passes a function's response headers unchanged;
    API Gateway does not, and neither does this front."""
    try:
        front = ApiFront(endpoint, api_id, port).start()
    except OSError as exc:
        raise StackError(f"cannot listen on port {port} (admin API front): {exc}; set KEAPLINK_API_PORT") from exc
    out(f"  ✓ admin API front on {front.url} (renames response headers as API Gateway does)")
    try:
        yield front
    finally:
        front.stop()


def deploy_parameters(keap: dict[str, str], admin_password: str, endpoint: str) -> dict[str, str]:
    return {
        "Stage": STAGE,
        "KeapClientId": keap["client_id"],
        "KeapClientSecret": keap["client_secret"],
        "AdminPassword": admin_password,
        "KeapAuthorizeUrl": keap["authorize_url"],
        "KeapTokenUrl": keap["token_url"],
        "KeapApiUrl": keap["api_url"],
        "AwsEndpointUrl": endpoint,
        "RefreshSchedule": os.environ.get("KEAPLINK_REFRESH_SCHEDULE", "rate(5 minutes)"),
        "LogRetentionDays": "1",
    }


def keap_endpoints(sandbox_url: str | None) -> dict[str, str]:
    """The sandbox's URLs and client, or a real Keap's from the environment."""
    if sandbox_url is None:
        missing = [v for v in ("KEAP_CLIENT_ID", "KEAP_CLIENT_SECRET") if not os.environ.get(v)]
        if missing:
            raise StackError(f"with a real Keap (KEAP_*_URL set), also set {' and '.join(missing)}")
        return {
            "authorize_url": os.environ.get("KEAP_AUTHORIZE_URL", "https://accounts.infusionsoft.com/app/oauth/authorize"),
            "token_url": os.environ.get("KEAP_TOKEN_URL", "https://api.infusionsoft.com/token"),
            "api_url": os.environ.get("KEAP_API_URL", "https://api.infusionsoft.com/crm/rest"),
            "client_id": os.environ["KEAP_CLIENT_ID"],
            "client_secret": os.environ["KEAP_CLIENT_SECRET"],
        }
    # The browser meets Keap's consent page on another site than the admin panel (localhost, not 127.0.0.1),
    # as on AWS: cookies marked SameSite=Strict are then withheld on the way back, exactly as they would be.
    return {
        "authorize_url": f"{sandbox_url.replace('//127.0.0.1:', '//localhost:')}/app/oauth/authorize",
        "token_url": f"{sandbox_url}/token",
        "api_url": f"{sandbox_url}/crm/rest",
        "client_id": os.environ.get("KEAP_CLIENT_ID", SANDBOX_CLIENT_ID),
        "client_secret": os.environ.get("KEAP_CLIENT_SECRET", SANDBOX_CLIENT_SECRET),
    }


def uses_real_keap() -> bool:
    return any(os.environ.get(v) for v in ("KEAP_AUTHORIZE_URL", "KEAP_TOKEN_URL", "KEAP_API_URL"))


def local_state(endpoint: str, admin_url: str, outputs: dict[str, str], keap: dict[str, str], password: str,
                sandbox_url: str | None) -> dict[str, Any]:
    return {
        "admin_url": admin_url,
        "callback_url": admin_url + "callback",
        "queue_url": outputs["QueueUrl"],
        "dlq_url": outputs["DeadLetterQueueUrl"],
        "aws_endpoint_url": endpoint,
        "region": DEFAULT_REGION,
        "stack_name": DEFAULT_STACK,
        "keap_authorize_url": keap["authorize_url"],
        "keap_token_url": keap["token_url"],
        "keap_api_url": keap["api_url"],
        "keap_sandbox_url": sandbox_url,
        "admin_user": "admin",
        "admin_password": password,
    }


def banner(state: dict[str, Any], out: Printer) -> None:
    sandbox = state.get("keap_sandbox_url")
    lines = [
        "",
        "keaplink is running locally.",
        f"  Admin panel   {state['admin_url']}",
        f"                user {state['admin_user']}, password {state['admin_password']}",
        f"  Callback URL  {state['callback_url']}",
        f"  Queue URL     {state['queue_url']}",
        f"  DLQ URL       {state['dlq_url']}",
        f"  Local AWS     {state['aws_endpoint_url']}",
    ]
    if sandbox:
        lines.append(f"  Keap sandbox  {sandbox}/_sandbox/   (contacts and tags)")
    lines += [
        "",
        "Try it:",
        f"  curl -u admin:{state['admin_password']} {state['admin_url']}status.json",
        "  ./keaplink send signup --user-id u1 --email ada@example.com --given-name Ada",
        "  ./keaplink send press --user-id u1",
        "  make invoke FUNCTION=RefreshFunction EVENT=events/refresh-force.json",
        "  make sam-invoke FUNCTION=RefreshFunction EVENT=events/refresh-force.json   (sam local, Docker)",
    ]
    for line in lines:
        out(line)


def tail_logs(endpoint: str, stop: threading.Event, out: Printer) -> None:
    from keaplink_dev.local.logs import follow_invocations

    try:
        for invocation in follow_invocations(endpoint, stack_name=DEFAULT_STACK, stop=stop):
            out("  " + invocation.summary())
    except Exception as exc:  # noqa: BLE001 - the demo keeps running without its log tail
        if not stop.is_set():
            out(f"  (log tail stopped: {type(exc).__name__}: {exc})")


def run(out: Printer = say, stop: threading.Event | None = None) -> int:
    stop = stop or threading.Event()
    state_file = local_state_path()
    state_dir = state_file.parent
    state_dir.mkdir(parents=True, exist_ok=True)
    state_file.unlink(missing_ok=True)
    aws_port = _env_port("KEAPLINK_AWS_PORT", 4566)
    sandbox_port = _env_port("KEAP_SANDBOX_PORT", 8765)
    api_port = _api_port(aws_port, sandbox_port)
    password = os.environ.get("KEAPLINK_ADMIN_PASSWORD") or secrets.token_urlsafe(12)  # 16 characters
    if len(password) < 15:  # the template's AdminPassword would refuse it, less clearly and later
        raise StackError("KEAPLINK_ADMIN_PASSWORD must be at least 15 characters long")

    with ExitStack() as stack:
        out("Starting keaplink locally")
        _check_port(api_port, "admin API front", "KEAPLINK_API_PORT")  # before minutes of starting and deploying
        sandbox_url = None if uses_real_keap() else stack.enter_context(keap_sandbox(sandbox_port, state_dir, out))
        keap = keap_endpoints(sandbox_url)
        _check_port(aws_port, "local AWS", "KEAPLINK_AWS_PORT")
        emulator = stack.enter_context(
            MiniStack(aws_port, workdir=state_dir / "ministack", log_path=state_dir / "ministack.log",
                      repo_root=REPO_ROOT)
        )
        out(f"  ✓ local AWS (ministack) on {emulator.endpoint}")
        out("  … sam build")
        sam_build(REPO_ROOT, cached=True, out=lambda line: None)
        out("  ✓ built")
        out("  … sam deploy (about 10 s)")
        parameters = deploy_parameters(keap, password, emulator.endpoint)
        outputs = sam_deploy(REPO_ROOT, emulator.endpoint, DEFAULT_STACK, parameters, out=lambda line: None)
        front = stack.enter_context(admin_front(emulator.endpoint, outputs["AdminApiId"], api_port, out))
        state = local_state(emulator.endpoint, front.stage_url(STAGE), outputs, keap, password, sandbox_url)
        # The functions cannot learn their API's URL from the template (a circular reference), and the
        # front's URL is this machine's choice: so once the API id is known, a second deploy sets
        # PublicBaseUrl to the front's URL, as a custom domain would.
        out("  … sam deploy again with the admin URL (PublicBaseUrl)")
        parameters["PublicBaseUrl"] = state["admin_url"].rstrip("/")
        sam_deploy(REPO_ROOT, emulator.endpoint, DEFAULT_STACK, parameters, out=lambda line: None)
        out(f"  ✓ stack {DEFAULT_STACK} deployed")
        path = write_local_state(state)
        banner(state, out)
        out(f"  (state for scripts: {path})")
        sam_env = stack.enter_context(SamEnvWriter(emulator.endpoint, DEFAULT_STACK, out))
        if not sam_env.poll():
            out(f"  (sam local: {sam_env.path.name} follows once Docker runs - `make docker`)")
        out("")
        out("Function invocations (one line each); Ctrl-C stops everything:")
        tail = threading.Thread(target=tail_logs, args=(emulator.endpoint, stop, out), daemon=True)
        tail.start()
        while not stop.wait(0.5):
            if not emulator.running():
                out("local AWS stopped unexpectedly; see " + str(state_dir / "ministack.log"))
                return 1
            sam_env.poll()
        out("\nStopping…")
    state_file.unlink(missing_ok=True)
    out("Stopped; no process left behind.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--install-only", action="store_true", help="install the emulator's venv and exit")
    args = parser.parse_args(argv)
    if args.install_only:
        ensure_installed(REPO_ROOT)
        return 0
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        ensure_installed(REPO_ROOT)
        return run(stop=stop)
    except (StackError, MiniStackError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except SamError as exc:
        print(f"error: {exc}\n{exc.detail if hasattr(exc, 'detail') else ''}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
