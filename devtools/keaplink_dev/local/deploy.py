"""``sam build`` and ``sam deploy`` against a local emulator (ministack), without Docker or an AWS account.

Both run the project's ``.venv/bin/sam`` with an environment from :func:`keaplink_dev.local.aws.local_env`
(``AWS_ENDPOINT_URL`` = the emulator, dummy credentials, no profile or config file), print one short
progress line per phase, and raise :class:`SamError` with the last lines of output on failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from keaplink_dev.local.aws import DEFAULT_REGION, REPO_ROOT, client, local_env, stack_outputs
from keaplink_dev.local.runtime import python_executable

Printer = Callable[[str], None]

CAPABILITIES = ("CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND")
_STATUS_LINE = re.compile(
    r"^(?P<status>(?:CREATE|UPDATE|DELETE|ROLLBACK|UPDATE_ROLLBACK|IMPORT)_[A-Z_]+)\s+(?P<type>AWS::\S+)\s+(?P<id>\S+)"
)


class SamError(RuntimeError):
    """A ``sam`` command failed. ``phase`` is ``build`` or ``deploy``; ``output_tail`` its last lines."""

    def __init__(self, phase: str, returncode: int, output_tail: str, detail: str = "") -> None:
        self.phase = phase
        self.returncode = returncode
        self.output_tail = output_tail
        self.detail = detail
        msg = f"sam {phase} failed (exit {returncode})"
        if detail:
            msg += f": {detail}"
        super().__init__(f"{msg}\n--- last lines of sam output ---\n{output_tail}")


def _default_print(line: str) -> None:
    print(line, flush=True)


def sam_executable(repo_root: Path | str) -> Path:
    """``sam`` of ``repo_root/.venv``, else of this project's ``.venv``, else next to the running python,
    else on ``PATH``."""
    candidates = [
        Path(repo_root) / ".venv" / "bin" / "sam",
        REPO_ROOT / ".venv" / "bin" / "sam",
        Path(sys.executable).parent / "sam",
    ]
    for path in candidates:
        if path.exists():
            return path
    found = shutil.which("sam")
    if found:
        return Path(found)
    raise SamError("setup", 127, "", f"sam not found in {candidates[0]} nor on PATH (create the dev venv first)")


def _run(
    phase: str,
    cmd: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    on_line: Callable[[str], None],
    tail_lines: int = 40,
) -> list[str]:
    lines: list[str] = []
    proc = subprocess.Popen(  # noqa: S603
        list(cmd),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    assert proc.stdout is not None
    for raw in proc.stdout:
        # sam's upload progress uses \r; keep only the last state of such a line
        line = raw.rstrip("\n").split("\r")[-1].rstrip()
        lines.append(line)
        on_line(line)
    code = proc.wait()
    if code != 0:
        tail = "\n".join(x for x in lines if x.strip())
        tail = "\n".join(tail.splitlines()[-tail_lines:])
        detail = next((x.strip() for x in reversed(lines) if x.strip().startswith("Error")), "")
        raise SamError(phase, code, tail, detail)
    return lines


def sam_build(
    repo_root: Path | str,
    *,
    template: str = "template.yaml",
    build_dir: Path | str | None = None,
    cached: bool = False,
    out: Printer = _default_print,
) -> Path:
    """``sam build`` (no container) in ``repo_root``; returns the built template's path."""
    root = Path(repo_root).resolve()
    build = Path(build_dir) if build_dir else root / ".aws-sam" / "build"
    cmd = [str(sam_executable(root)), "build", "--template-file", str(root / template), "--build-dir", str(build)]
    if cached:
        cmd += ["--cached", "--cache-dir", str(build.parent / "cache")]
    start = time.monotonic()
    out(f"[build] sam build {template}")

    def on_line(line: str) -> None:
        if m := re.match(r"\s*Building layer '([^']+)'", line):
            out(f"[build]   layer {m.group(1)}")
        elif m := re.match(r"\s*Building codeuri: \S+.*?functions: (.*)$", line):
            out(f"[build]   function {m.group(1)}")

    env = local_env("http://127.0.0.1:9", DEFAULT_REGION)
    # `BuildMethod: pythonN.N` makes sam look for pythonN.N on PATH (a pyenv shim that does not run fails it)
    env["PATH"] = os.pathsep.join([str(python_executable().parent), env.get("PATH", "")])
    _run("build", cmd, root, env, on_line)
    out(f"[build] done in {time.monotonic() - start:.1f}s")
    return build / "template.yaml"


def sam_deploy(
    repo_root: Path | str,
    endpoint: str,
    stack_name: str,
    parameters: Mapping[str, str] | None = None,
    *,
    built_template: Path | str | None = None,
    region: str = DEFAULT_REGION,
    apply_ttl: bool = True,
    out: Printer = _default_print,
) -> dict[str, str]:
    """``sam deploy`` the built template to the emulator at ``endpoint``; return the stack's Outputs.

    Creates or updates ``stack_name``. Uses ``--resolve-s3`` (sam's managed bucket stack is created in
    the emulator on first use), an empty sam config file (a project ``samconfig.toml`` aimed at real AWS
    is never read) and a JSON parameter file (values verbatim; NoEcho values stay off the command line).
    With ``apply_ttl`` it then enables each table's ``TimeToLiveSpecification`` through the DynamoDB API,
    which ministack's CloudFormation ignores (see :func:`apply_table_ttl`); each event source mapping gets its
    ``MaximumConcurrency`` as a number (see :func:`apply_scaling_config`).
    """
    root = Path(repo_root).resolve()
    template = Path(built_template) if built_template else root / ".aws-sam" / "build" / "template.yaml"
    if not template.is_file():
        raise SamError("deploy", 2, "", f"{template} not found: run sam_build first")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="keaplink-deploy-") as tmp:
        config = Path(tmp) / "samconfig.toml"
        config.write_text("version = 0.1\n")
        cmd = [
            str(sam_executable(root)),
            "deploy",
            "--template-file",
            str(template),
            "--stack-name",
            stack_name,
            "--region",
            region,
            "--resolve-s3",
            "--capabilities",
            *CAPABILITIES,
            "--no-confirm-changeset",
            "--no-fail-on-empty-changeset",
            "--no-progressbar",
            "--config-file",
            str(config),
        ]
        if parameters:
            pfile = Path(tmp) / "parameters.yaml"  # JSON is YAML; sam reads .yaml/.yml/.toml here
            pfile.write_text(json.dumps({k: str(v) for k, v in parameters.items()}))
            cmd += ["--parameter-overrides", f"file://{pfile}"]
        out(f"[deploy] sam deploy {stack_name} -> {endpoint}")
        seen: set[str] = set()
        counts = {"COMPLETE": 0, "FAILED": 0}

        def on_line(line: str) -> None:
            s = line.strip()
            phases = {
                "Uploading to": "uploading artifacts",
                "Initiating deployment": "creating changeset",
                "Waiting for changeset": "waiting for changeset",
                "Executing changeset": "executing changeset",
                "No changes to deploy": "no changes to deploy",
            }
            for prefix, label in phases.items():
                if s.startswith(prefix) and label not in seen:
                    seen.add(label)
                    out(f"[deploy]   {label}")
            m = _STATUS_LINE.match(s)
            if m:
                status = m.group("status")
                if status.endswith("_COMPLETE"):
                    counts["COMPLETE"] += 1
                if "FAILED" in status or "ROLLBACK" in status:
                    counts["FAILED"] += 1
                    out(f"[deploy]   {status} {m.group('type')} {m.group('id')}")

        try:
            _run("deploy", cmd, root, local_env(endpoint, region), on_line)
        except SamError as err:
            reasons = failure_reasons(endpoint, stack_name, region)
            if reasons:
                err.detail = (err.detail + "; " if err.detail else "") + "; ".join(reasons)
                err.args = (f"sam deploy failed (exit {err.returncode}): {err.detail}\n{err.output_tail}",)
            raise
    if apply_ttl:
        for line in apply_table_ttl(endpoint, stack_name, template, region):
            out(f"[deploy]   {line}")
    for line in apply_scaling_config(endpoint, stack_name, region):
        out(f"[deploy]   {line}")
    outputs = stack_outputs(endpoint, stack_name, region)
    out(f"[deploy] {stack_name} ready in {time.monotonic() - start:.1f}s ({len(outputs)} outputs)")
    return outputs


def failure_reasons(endpoint: str, stack_name: str, region: str = DEFAULT_REGION, limit: int = 5) -> list[str]:
    """``LogicalId: reason`` of the stack's most recent FAILED events (best effort, empty if none)."""
    try:
        events = client("cloudformation", endpoint, region).describe_stack_events(StackName=stack_name)["StackEvents"]
    except Exception:  # noqa: BLE001 - diagnostics only
        return []
    reasons = [
        f"{e.get('LogicalResourceId')}: {e.get('ResourceStatusReason')}"
        for e in events
        if "FAILED" in str(e.get("ResourceStatus")) and e.get("ResourceStatusReason")
    ]
    return reasons[:limit]


def _load_cfn_yaml(path: Path) -> dict[str, Any]:
    """A CloudFormation YAML template as plain data (short-form tags like ``!Ref`` kept as ``{tag: value}``)."""
    import yaml  # type: ignore[import-untyped,unused-ignore]

    class Loader(yaml.SafeLoader):  # type: ignore[misc,unused-ignore]
        pass

    def construct(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        return {suffix: value}

    Loader.add_multi_constructor("!", construct)
    data = yaml.load(path.read_text(), Loader=Loader)  # noqa: S506 - SafeLoader subclass
    return data if isinstance(data, dict) else {}


def apply_scaling_config(endpoint: str, stack_name: str, region: str = DEFAULT_REGION) -> list[str]:
    """Give each event source mapping of the stack its ``MaximumConcurrency`` as a number. A ``!Ref`` to a
    template parameter is a string (CloudFormation passes every parameter as one, Number included, and AWS
    converts it); ministack's CloudFormation stores it verbatim and its SQS poller then fails on every poll
    comparing it with an int, so no message is ever delivered. Returns one line per mapping written."""
    cfn, lam = client("cloudformation", endpoint, region), client("lambda", endpoint, region)
    done = []
    for resource in cfn.describe_stack_resources(StackName=stack_name)["StackResources"]:
        if resource["ResourceType"] != "AWS::Lambda::EventSourceMapping":
            continue
        mapping = lam.get_event_source_mapping(UUID=resource["PhysicalResourceId"])
        value = (mapping.get("ScalingConfig") or {}).get("MaximumConcurrency")
        if value is None:  # botocore reads a stored "2" back as 2: the value is written again whatever it looks like
            continue
        lam.update_event_source_mapping(UUID=mapping["UUID"], ScalingConfig={"MaximumConcurrency": int(value)})
        done.append(f"MaximumConcurrency of {resource['LogicalResourceId']} set to the number {value}")
    return done


def apply_table_ttl(endpoint: str, stack_name: str, template: Path | str, region: str = DEFAULT_REGION) -> list[str]:
    """Enable TTL on every ``AWS::DynamoDB::Table`` whose template has a literal enabled
    ``TimeToLiveSpecification``: ministack's CloudFormation accepts the property but leaves TTL
    DISABLED (its TTL reaper, which runs every 60 s, only serves tables switched on through the API).
    Returns one line per table changed."""
    resources = _load_cfn_yaml(Path(template)).get("Resources") or {}
    wanted = {
        logical: spec["AttributeName"]
        for logical, res in resources.items()
        if isinstance(res, dict) and res.get("Type") == "AWS::DynamoDB::Table"
        for spec in [(res.get("Properties") or {}).get("TimeToLiveSpecification") or {}]
        if spec.get("Enabled") is True and isinstance(spec.get("AttributeName"), str)
    }
    if not wanted:
        return []
    cfn, ddb = client("cloudformation", endpoint, region), client("dynamodb", endpoint, region)
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cfn.describe_stack_resources(StackName=stack_name)["StackResources"]
    }
    done = []
    for logical, attr in wanted.items():
        table = physical.get(logical)
        if not table:
            continue
        status = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        if status.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") and status.get("AttributeName") == attr:
            continue
        ddb.update_time_to_live(TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": attr})
        done.append(f"TTL on {logical} ({attr}) enabled")
    return done
