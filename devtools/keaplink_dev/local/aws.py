"""boto3 clients and subprocess environments pointed at a local emulator endpoint."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DEFAULT_REGION = "us-east-1"
DEFAULT_STACK = "keaplink-local"
LOCAL_STATE = Path(".keaplink") / "local.json"
REPO_ROOT = Path(__file__).resolve().parents[3]

# Values boto3/SAM read from the environment; all replaced for a local run so nothing real is used.
_HOST_AWS_VARS = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)


def local_env(endpoint: str, region: str = DEFAULT_REGION, base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for the ``sam``/``aws`` CLIs that talks to ``endpoint`` with dummy credentials."""
    env = dict(os.environ if base is None else base)
    for name in _HOST_AWS_VARS:
        env.pop(name, None)
    env.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            "SAM_CLI_TELEMETRY": "0",
            "SAM_CLI_CONTACT_TRACKING": "0",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }
    )
    return env


def client(service: str, endpoint: str, region: str = DEFAULT_REGION) -> Any:
    """A boto3 client for ``service`` at ``endpoint`` (dummy credentials, short retries)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 2, "mode": "standard"}, read_timeout=900, connect_timeout=5),
    )


def stack_outputs(endpoint: str, stack_name: str, region: str = DEFAULT_REGION) -> dict[str, str]:
    """The stack's Outputs as ``{OutputKey: OutputValue}``."""
    stacks = client("cloudformation", endpoint, region).describe_stacks(StackName=stack_name)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def physical_id(endpoint: str, stack_name: str, logical_id: str, region: str = DEFAULT_REGION) -> str:
    """The physical id (for a function: its name) of the template resource ``logical_id``."""
    cfn = client("cloudformation", endpoint, region)
    detail = cfn.describe_stack_resource(StackName=stack_name, LogicalResourceId=logical_id)["StackResourceDetail"]
    return str(detail["PhysicalResourceId"])


def stack_functions(endpoint: str, stack_name: str, region: str = DEFAULT_REGION) -> dict[str, str]:
    """``{physical function name: logical id}`` for every ``AWS::Lambda::Function`` in the stack."""
    cfn = client("cloudformation", endpoint, region)
    resources = cfn.describe_stack_resources(StackName=stack_name)["StackResources"]
    return {
        r["PhysicalResourceId"]: r["LogicalResourceId"]
        for r in resources
        if r["ResourceType"] == "AWS::Lambda::Function" and r.get("PhysicalResourceId")
    }


def resolve_endpoint(repo_root: Path | str | None = None, explicit: str | None = None) -> str:
    """The emulator endpoint: ``explicit``, else ``aws_endpoint_url`` from ``.keaplink/local.json``,
    else ``$AWS_ENDPOINT_URL``."""
    if explicit:
        return explicit
    value = read_local_state(repo_root).get("aws_endpoint_url") or os.environ.get("AWS_ENDPOINT_URL")
    if value:
        return value
    raise SystemExit(f"no endpoint: start the local stack (it writes {LOCAL_STATE}) or set AWS_ENDPOINT_URL")


def local_state_path(repo_root: Path | str | None = None) -> Path:
    """``$KEAPLINK_STATE_DIR/local.json``, by default ``.keaplink/local.json`` in the repository."""
    state_dir = os.environ.get("KEAPLINK_STATE_DIR")
    return Path(state_dir) / "local.json" if state_dir else Path(repo_root or REPO_ROOT) / LOCAL_STATE


def sam_env_path(repo_root: Path | str | None = None) -> Path:
    """``sam-env.json`` beside ``local.json``: the running stack's function variables for ``sam local``."""
    return local_state_path(repo_root).parent / "sam-env.json"


def read_local_state(repo_root: Path | str | None = None) -> dict[str, Any]:
    try:
        data = json.loads(local_state_path(repo_root).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_local_state(state: dict[str, Any], repo_root: Path | str | None = None) -> Path:
    """Write ``local.json`` for scripts, the CLI and ``make invoke``: atomically (a reader never sees half
    a file) and readable by its owner only (it holds the local admin password)."""
    return write_json_private(local_state_path(repo_root), state)


def write_json_private(path: Path, data: Any) -> Path:
    """Write ``data`` as JSON to ``path`` atomically, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path
