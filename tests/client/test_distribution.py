"""The client distribution holds the client, the contract and the small shared modules they import, nothing of
the Lambda code; running the CLI loads nothing else of keaplink, nor the layer's own dependencies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CLIENT_MODULES = {
    "keaplink", "keaplink.config", "keaplink.errors", "keaplink.text",
    "keaplink.contract", "keaplink.contract.messages", "keaplink.contract.dead_letters", "keaplink.contract.sizes",
    "keaplink.client", "keaplink.client.aws", "keaplink.client.cli", "keaplink.client.pause",
    "keaplink.client.publish",
}
LAYER_ONLY = ("aws_lambda_powertools", "pynamodb")  # the layer's requirements.txt, not the client's


INSTALLED = bool(os.environ.get("KEAPLINK_CLIENT_WHEEL"))  # make test-client's run: the wheel, not the source


def _client_env() -> dict[str, str]:
    """A child process that finds keaplink where this run does: installed, or the checkout's layer directory."""
    return {**os.environ, "PYTHONPATH": "" if INSTALLED else str(REPO / "layers" / "keaplink")}


def _module(name: str) -> str:
    return name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel ``make test-client`` built and installed here, else (the dev venv's run) one built now."""
    if INSTALLED:
        return Path(os.environ["KEAPLINK_CLIENT_WHEEL"])
    from keaplink_dev.client_dist import build_wheel

    return build_wheel(tmp_path_factory.mktemp("client-wheel"))


@pytest.mark.slow
def test_the_wheel_holds_the_client_and_nothing_of_the_lambda_code(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    code = {_module(n) for n in names if n.startswith("keaplink/") and n.endswith(".py")}
    assert code == CLIENT_MODULES
    assert "keaplink/contract/schemas/message.schema.json" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "keaplink = keaplink.client.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("/METADATA"))).decode()
    assert "Requires-Python: >=3.10" in metadata


def test_running_the_cli_loads_only_the_client(queues: Any) -> None:
    """In a fresh interpreter: every command's module imported and a message sent, then ``sys.modules`` read."""
    script = (
        "import json, sys\n"
        "from keaplink.client import cli, pause, publish\n"
        "import keaplink.contract.dead_letters\n"
        "assert cli.main(['send', 'press', '--user-id', 'u1']) == 0\n"
        "assert cli.main(['dlq', 'list']) == 0\n"
        "assert cli.main(['pause', '--reason', 'checking imports']) == 0\n"
        "import keaplink\n"
        "print(json.dumps({'file': keaplink.__file__, 'modules': sorted(sys.modules)}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=_client_env(), capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert {m for m in seen["modules"] if m.split(".")[0] == "keaplink"} == CLIENT_MODULES
    assert not [m for m in seen["modules"] if m.split(".")[0] in LAYER_ONLY]
    assert Path(seen["file"]).is_relative_to(REPO / "layers") != INSTALLED  # installed, or the checkout's


def test_keaplink_help(queues: Any) -> None:
    """The console script an application gets (the module's main in the dev venv, which has no wheel)."""
    script = Path(sys.executable).with_name("keaplink")
    command = [str(script)] if INSTALLED else [sys.executable, "-m", "keaplink.client.cli"]
    done = subprocess.run([*command, "--help"], env=_client_env(), capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert all(c in done.stdout for c in ("send", "dlq", "status", "pause", "resume", "connect-tokens"))
