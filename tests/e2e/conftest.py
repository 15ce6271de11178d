"""The local stack, started the way a user starts it (``python -m keaplink_dev.local.stack``, what
``make demo`` runs), on free ports, and stopped with SIGTERM at the end."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from keaplink_dev.local.moto_server import free_port

REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "test-output" / "e2e"
PYTHONPATH = os.pathsep.join(str(REPO / p) for p in ("layers/keaplink", "sandbox", "devtools", "."))


class LocalStack:
    def __init__(self, state: dict[str, Any], log: Path, state_dir: Path) -> None:
        self.state = state
        self.log = log
        self.state_dir = state_dir

    def __getitem__(self, key: str) -> Any:
        return self.state[key]

    def env(self) -> dict[str, str]:
        return {**os.environ, "KEAPLINK_STATE_DIR": str(self.state_dir), "PYTHONPATH": PYTHONPATH}


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state_dir = tmp_path_factory.mktemp("keaplink-state")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    log = OUTPUT / "demo.log"
    env = {
        **os.environ,
        "KEAPLINK_STATE_DIR": str(state_dir),
        "KEAPLINK_AWS_PORT": str(free_port()),
        "KEAP_SANDBOX_PORT": str(free_port()),
        "KEAPLINK_API_PORT": str(free_port()),
        "KEAPLINK_ADMIN_PASSWORD": secrets.token_urlsafe(12),
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": PYTHONPATH,
    }
    for var in ("KEAP_AUTHORIZE_URL", "KEAP_TOKEN_URL", "KEAP_API_URL", "AWS_ENDPOINT_URL"):
        env.pop(var, None)
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "keaplink_dev.local.stack"], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    state_file = state_dir / "local.json"
    deadline = time.monotonic() + 300
    while not state_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL) if proc.poll() is None else None
            raise AssertionError(f"the local stack did not come up:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    stack = LocalStack(json.loads(state_file.read_text()), log, state_dir)
    yield stack
    # Every Keap call the deployed functions made during the e2e tests, checked against Keap's v2 contract.
    sandbox = stack["keap_token_url"].rsplit("/token", 1)[0]
    violations = requests.get(f"{sandbox}/_sandbox/contract", timeout=10).json()
    validating = requests.get(f"{sandbox}/_sandbox/state", timeout=10).json()["contract"]["validating"]
    os.killpg(proc.pid, signal.SIGTERM)  # what Ctrl-C / a service manager does
    try:
        code = proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("the local stack did not stop within 60 s of SIGTERM") from None
    assert code == 0, log.read_text()[-2000:]
    pgrep = subprocess.run(["pgrep", "-g", str(proc.pid)], check=False, capture_output=True, text=True)
    leftovers = pgrep.stdout.split()
    assert leftovers == [], f"processes left behind: {leftovers}"
    assert "Stopped; no process left behind." in log.read_text()
    assert validating and violations == [], f"Keap calls that broke Keap's v2 contract: {violations}"
