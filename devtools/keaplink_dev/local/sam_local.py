"""``sam local invoke`` and ``sam local start-api`` against the running local stack (``make demo``).

``make demo`` writes ``sam-env.json`` next to ``local.json`` (:class:`SamEnvWriter`): every function's
environment variables as deployed in the emulator - table, secret and queue names, KMS key, Keap URLs -
keyed by logical id, which is the format ``sam local … --env-vars`` reads. The loopback URLs a function
calls (the emulator, the Keap sandbox's token and REST endpoints) are rewritten to the address at which a
``sam local`` container reaches this host, and a relay forwards that address to 127.0.0.1
(:mod:`keaplink_dev.local.relay`). Two variables are local to ``sam local``: ``PUBLIC_BASE_URL`` is left empty
(pages derive their URLs from the request, i.e. ``sam local start-api``'s own address) and
``KEAP_AUTHORIZE_URL`` stays on 127.0.0.1 (the admin's browser opens it, not the function).

CLI (``make sam-invoke``, ``make sam-api``)::

    python -m keaplink_dev.local.sam_local invoke FUNCTION EVENT   # sam local invoke -e EVENT FUNCTION …
    python -m keaplink_dev.local.sam_local start-api [--port 3000]

Both add ``--env-vars``, ``--invoke-image`` (:mod:`keaplink_dev.local.lambda_image`) and ``--skip-pull-image``,
run ``sam`` with dummy credentials and print the command line. API events in ``events/`` carry the example
admin password; ``invoke`` swaps in the running demo's, as ``make invoke`` does.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit, urlunsplit

from keaplink_dev.local.aws import (
    DEFAULT_REGION,
    DEFAULT_STACK,
    REPO_ROOT,
    client,
    local_env,
    local_state_path,
    read_local_state,
    sam_env_path,
    stack_functions,
    write_json_private,
)
from keaplink_dev.local.relay import TcpRelay, container_host

Printer = Callable[[str], None]

BROWSER_FACING = frozenset({"KEAP_AUTHORIZE_URL"})  # opened by the admin's browser, on this host
PER_REQUEST = frozenset({"PUBLIC_BASE_URL"})  # empty: derived from the request (sam local's own address)
LOOPBACK = frozenset({"127.0.0.1", "localhost"})
ENV_WAIT_S = 20.0


def _say(line: str) -> None:
    print(line, flush=True)


def deployed_environments(endpoint: str, stack_name: str = DEFAULT_STACK,
                          region: str = DEFAULT_REGION) -> dict[str, dict[str, str]]:
    """``{logical id: environment variables}`` of every function of ``stack_name``, as deployed."""
    lam = client("lambda", endpoint, region)
    return {
        logical: dict(lam.get_function_configuration(FunctionName=name).get("Environment", {}).get("Variables", {}))
        for name, logical in sorted(stack_functions(endpoint, stack_name, region).items(), key=lambda kv: kv[1])
    }


def container_environments(
    envs: Mapping[str, Mapping[str, str]], host: str
) -> tuple[dict[str, dict[str, str]], set[int]]:
    """The variables as a ``sam local`` container needs them, and the loopback ports it must reach.

    A value that is an ``http(s)`` URL on 127.0.0.1/localhost moves to ``host`` (same port), except the
    browser-facing ones; ``PUBLIC_BASE_URL`` is emptied. Pure: no network, no files.
    """
    result: dict[str, dict[str, str]] = {}
    ports: set[int] = set()
    for function, variables in envs.items():
        out: dict[str, str] = {}
        for name, value in variables.items():
            if name in PER_REQUEST:
                out[name] = ""
                continue
            parts = urlsplit(value) if "://" in value else None
            if (parts is not None and name not in BROWSER_FACING and parts.scheme in ("http", "https")
                    and parts.hostname in LOOPBACK and parts.port):
                ports.add(parts.port)
                userinfo = parts.netloc.rpartition("@")[0]
                netloc = (userinfo + "@" if userinfo else "") + f"{host}:{parts.port}"
                out[name] = urlunsplit(parts._replace(netloc=netloc))
            else:
                out[name] = value
        result[function] = out
    return result, ports


class SamEnvWriter:
    """Writes ``sam-env.json`` for the running stack, and runs the relay that goes with it.

    ``poll()`` does the work once Docker's bridge exists (it may appear after the stack started: the demo
    calls ``poll()`` every half second) and returns True when the file is in place. Leaving the context
    stops the relay and removes the file.
    """

    def __init__(self, endpoint: str, stack_name: str = DEFAULT_STACK, out: Printer = _say,
                 path: Path | None = None) -> None:
        self.endpoint = endpoint
        self.stack_name = stack_name
        self.out = out
        self.path = path or sam_env_path()
        self.relay: TcpRelay | None = None
        self.done = False
        self.failed = False

    def poll(self) -> bool:
        if self.done or self.failed:
            return self.done
        host, needs_relay = container_host()
        if host is None:
            return False
        try:
            deployed = deployed_environments(self.endpoint, self.stack_name)
        except Exception as exc:  # noqa: BLE001 - the demo runs on without sam local
            self.failed = True
            self.out(f"  (sam local: cannot read the functions' configuration: {exc}; no {self.path.name})")
            return False
        envs, ports = container_environments(deployed, host)
        if needs_relay:
            try:
                self.relay = TcpRelay(host, ports).start()
            except OSError as exc:
                self.failed = True
                self.out(f"  (sam local: cannot listen on {host} ports {sorted(ports)}: {exc}; no {self.path.name})")
                return False
        write_json_private(self.path, envs)
        self.done = True
        self.out(f"  sam local     --env-vars {self.path}  (containers reach this stack at {host})")
        return True

    def close(self) -> None:
        if self.relay is not None:
            self.relay.stop()
            self.relay = None
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# ------------------------------------------------------------------------------------------ CLI


class SamLocalError(RuntimeError):
    pass


def wait_for_env_file(timeout: float = ENV_WAIT_S) -> Path:
    """``sam-env.json`` of the running demo; waits a little when the demo is up but has not written it yet
    (it does within a second of Docker's bridge appearing)."""
    path = sam_env_path()
    deadline = time.monotonic() + timeout
    while not path.exists():
        if not local_state_path().exists():
            raise SamLocalError(f"no running local stack ({local_state_path()} missing): start `make demo` first")
        if time.monotonic() > deadline:
            raise SamLocalError(f"the running demo has not written {path} (is Docker running? `make docker`); "
                                "its output says why")
        time.sleep(0.25)
    return path


def sam_environment() -> dict[str, str]:
    """``sam``'s own environment: dummy credentials, the emulator's region, no profile. The functions'
    endpoint comes from ``--env-vars``, not from here."""
    env = local_env("http://127.0.0.1:9", read_local_state().get("region", DEFAULT_REGION))
    env.pop("AWS_ENDPOINT_URL", None)
    return env


def sam_command(action: str, env_file: Path, image: str, *args: str) -> list[str]:
    from keaplink_dev.local.deploy import sam_executable

    return [str(sam_executable(REPO_ROOT)), "local", action, *args, "--env-vars", str(env_file),
            "--invoke-image", image, "--skip-pull-image"]


def _event_file(event: str, stack: ExitStack) -> str:
    """``event``, or a temporary copy with the running demo's admin password in place of the example one."""
    from keaplink_dev.local.invoke import load_event, with_local_admin

    payload = with_local_admin(load_event(event))
    if payload == Path(event).read_bytes():
        return event
    directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="keaplink-event-"))
    path = Path(directory) / Path(event).name
    path.write_bytes(payload)
    return str(path)


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)  # stdout is sam's: the function's result


def _shown(cmd: list[str]) -> str:
    return " ".join(os.path.relpath(a, REPO_ROOT) if a.startswith(str(REPO_ROOT)) else a for a in cmd)


def main(argv: list[str] | None = None) -> int:
    from keaplink_dev.local.lambda_image import ImageError, ensure_image

    parser = argparse.ArgumentParser(description="sam local invoke / start-api against the running demo")
    sub = parser.add_subparsers(dest="action", required=True)
    inv = sub.add_parser("invoke", help="sam local invoke FUNCTION with EVENT")
    inv.add_argument("function", help="logical id in template.yaml, e.g. RefreshFunction")
    inv.add_argument("event", help="event file, e.g. events/refresh-force.json")
    api = sub.add_parser("start-api", help="sam local start-api (Ctrl-C stops it)")
    api.add_argument("--port", type=int, default=3000)
    api.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    try:
        env_file = wait_for_env_file()
        image = ensure_image(log)
        with ExitStack() as stack:
            if args.action == "invoke":
                cmd = sam_command("invoke", env_file, image, args.function, "-e", _event_file(args.event, stack))
            else:
                cmd = sam_command("start-api", env_file, image, "--host", args.host, "--port", str(args.port))
            log(f"$ {_shown(cmd)}")
            return subprocess.run(cmd, cwd=REPO_ROOT, env=sam_environment(), check=False).returncode  # noqa: S603
    except (SamLocalError, ImageError) as exc:
        log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
