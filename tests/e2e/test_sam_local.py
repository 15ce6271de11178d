"""``sam local invoke`` and ``sam local start-api`` (Docker) against the running local stack.

The functions run in SAM's containers - on AWS's Lambda base image where it can be pulled, else on the
local stand-in (keaplink_dev.local.lambda_image) - with ``.keaplink/sam-env.json`` as written by the demo, and
talk to the same emulator and Keap sandbox as the demo's own functions. Skipped only where Docker is not
possible (no daemon and no root to start one).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from keaplink_dev.local.flows import consent
from keaplink_dev.local.moto_server import free_port
from tests.e2e.conftest import REPO, LocalStack

pytestmark = [pytest.mark.e2e, pytest.mark.docker]

# template.yaml's logical ids, named once here
ADMIN, CALLBACK, REFRESH, ACTIONS = "AdminFunction", "CallbackFunction", "RefreshFunction", "ActionsFunction"
DOCKER_IMPOSSIBLE = 3  # devtools/ensure-docker: no daemon, and no root to start one


@pytest.fixture(scope="module")
def docker() -> None:
    proc = subprocess.run([str(REPO / "devtools" / "ensure-docker")], capture_output=True, text=True, timeout=600,
                          check=False)
    if proc.returncode == DOCKER_IMPOSSIBLE:
        pytest.skip(f"Docker is not possible here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def sam_env(local_stack: LocalStack, docker: None) -> dict[str, dict[str, str]]:
    """The demo's sam-env.json: written once Docker's bridge exists (the demo checks every half second)."""
    path = local_stack.state_dir / "sam-env.json"
    deadline = time.monotonic() + 30
    while not path.exists():
        assert time.monotonic() < deadline, f"the demo wrote no {path}:\n{local_stack.log.read_text()[-2000:]}"
        time.sleep(0.5)
    data: dict[str, dict[str, str]] = json.loads(path.read_text())
    return data


@pytest.fixture(scope="module")
def image(docker: None, local_stack: LocalStack) -> str:
    """AWS's image or the stand-in (built here if `make lambda-image` has not built it yet)."""
    proc = subprocess.run([sys.executable, "-m", "keaplink_dev.local.lambda_image"], cwd=REPO, env=local_stack.env(),
                          capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def sam_invoke(stack: LocalStack, function: str, event: Path | str) -> dict[str, Any]:
    """``python -m keaplink_dev.local.sam_local invoke`` (what ``make sam-invoke`` runs) → the handler's result."""
    proc = subprocess.run([sys.executable, "-m", "keaplink_dev.local.sam_local", "invoke", function, str(event)],
                          cwd=REPO, env=stack.env(), capture_output=True, text=True, timeout=280, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--invoke-image" in proc.stderr  # the sam command line it ran
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def demo_status(stack: LocalStack) -> dict[str, Any]:
    """status.json served by the demo itself (the emulator's API Gateway and function)."""
    response = requests.get(stack["admin_url"] + "status.json", auth=(stack["admin_user"], stack["admin_password"]),
                            timeout=60)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def test_sam_env_has_every_function_of_the_running_stack(local_stack: LocalStack,
                                                         sam_env: dict[str, dict[str, str]]) -> None:
    assert set(sam_env) == {ADMIN, CALLBACK, REFRESH, ACTIONS}
    aws_port = local_stack["aws_endpoint_url"].rsplit(":", 1)[1]
    sandbox_port = local_stack["keap_sandbox_url"].rsplit(":", 1)[1]
    for variables in sam_env.values():
        assert variables["CONNECTION_TABLE"].startswith("keaplink-local-ConnectionTable-")
        assert variables["AWS_ENDPOINT_URL"].endswith(f":{aws_port}")
        assert not variables["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1")  # a container's 127.0.0.1 is itself
        assert variables["KEAP_TOKEN_URL"].endswith(f":{sandbox_port}/token")
        assert variables["KEAP_AUTHORIZE_URL"] == local_stack["keap_authorize_url"]  # the browser's, unchanged
        assert variables["PUBLIC_BASE_URL"] == ""
    assert sam_env[ACTIONS]["DLQ_URL"].endswith(local_stack["dlq_url"].split("/", 3)[3])


@pytest.fixture(scope="module")
def sam_api(local_stack: LocalStack, sam_env: dict[str, dict[str, str]], image: str) -> Iterator[str]:
    """``sam local start-api`` (what ``make sam-api`` runs) on a free port; stopped with SIGTERM."""
    port = free_port()
    log = REPO / "test-output" / "e2e" / "sam-api.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "keaplink_dev.local.sam_local", "start-api", "--port",
                                 str(port)],
                                cwd=REPO, env=local_stack.env(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                requests.get(base + "/favicon.ico", timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.5)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def test_start_api_serves_the_admin_panel(local_stack: LocalStack, sam_api: str) -> None:
    assert requests.get(sam_api + "/", timeout=120).status_code == 401
    page = requests.get(sam_api + "/", auth=(local_stack["admin_user"], local_stack["admin_password"]), timeout=120)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "keaplink" in page.text
    assert f"{sam_api}/callback" in page.text  # the redirect URI, derived from sam local's own address


@pytest.fixture(scope="module")
def connected(local_stack: LocalStack, sam_api: str) -> dict[str, Any]:
    """Connect Keap through sam local start-api: /connect, the sandbox's consent page, /callback."""
    auth = (local_stack["admin_user"], local_stack["admin_password"])
    start = requests.get(sam_api + "/connect", auth=auth, allow_redirects=False, timeout=120)
    assert start.status_code == 302, start.text
    assert start.headers["Location"].startswith(local_stack["keap_authorize_url"])
    params = consent(start.headers["Location"])
    assert set(params) >= {"code", "state"}, params
    cookie = start.headers["Set-Cookie"].split(";")[0]
    back = requests.get(sam_api + "/callback", params=params, auth=auth, headers={"Cookie": cookie},
                        allow_redirects=False, timeout=120)
    assert back.status_code == 200 and "Keap connected." in back.text, back.text  # a page that moves on by itself
    status = demo_status(local_stack)
    assert status["status"] == "connected"
    return status


def test_invoke_admin_status_json_reads_the_running_system(local_stack: LocalStack, connected: dict[str, Any]) -> None:
    result = sam_invoke(local_stack, ADMIN, "events/admin-status-json.json")
    assert result["statusCode"] == 200
    status = json.loads(result["body"])
    demo = demo_status(local_stack)
    for key in ("status", "tenant", "connected_at", "auth_mode"):
        assert status[key] == demo[key], key
    assert status["status"] == "connected" and status["tenant"] == "sb123.infusionsoft.com"


def test_invoke_callback_with_a_bad_state_is_refused(local_stack: LocalStack, sam_env: dict[str, Any]) -> None:
    result = sam_invoke(local_stack, CALLBACK, "events/callback-bad-state.json")
    assert result["statusCode"] == 400


def test_invoke_refresh_refreshes_the_running_connection(local_stack: LocalStack, connected: dict[str, Any]) -> None:
    before = demo_status(local_stack)["refresh_count"]
    result = sam_invoke(local_stack, REFRESH, "events/refresh-force.json")
    assert result["outcome"] == "refreshed", result
    assert demo_status(local_stack)["refresh_count"] == before + 1  # written where the demo reads it


def test_invoke_actions_signup_creates_the_contact(local_stack: LocalStack, connected: dict[str, Any],
                                                   tmp_path: Path) -> None:
    email = f"sam-local-{uuid.uuid4().hex[:8]}@example.com"
    event = json.loads((REPO / "events" / "actions-signup.json").read_text())
    body = json.loads(event["Records"][0]["body"])
    event["Records"][0]["body"] = json.dumps({**body, "user_id": f"u-{email}", "email": email})
    path = tmp_path / "actions-signup.json"
    path.write_text(json.dumps(event))
    result = sam_invoke(local_stack, ACTIONS, path)
    assert result == {"batchItemFailures": []}
    contacts = requests.get(f"{local_stack['keap_sandbox_url']}/_sandbox/state", timeout=30).json()["contacts"]
    assert [c["given_name"] for c in contacts if any(e["email"] == email for e in c["email_addresses"])] == ["Ada"]
