"""Fast checks of the devtools helpers (no emulator)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keaplink_dev.local import aws, ministack
from keaplink_dev.local.deploy import SamError
from keaplink_dev.local.logs import Invocation, parse_events


def _events(stream: str, lines: list[str], t0: int = 1_700_000_000_000) -> list[dict[str, object]]:
    return [
        {"logStreamName": stream, "timestamp": t0 + i, "message": m, "eventId": f"{stream}-{i}"}
        for i, m in enumerate(lines)
    ]


def test_parse_events_builds_one_invocation_per_request() -> None:
    ok = _events(
        "s1",
        [
            "START RequestId: r-1 Version: $LATEST",
            "hello",
            "END RequestId: r-1",
            "REPORT RequestId: r-1\tDuration: 27 ms\tBilled Duration: 27 ms",
        ],
    )
    bad = _events(
        "s2",
        [
            "START RequestId: r-2 Version: $LATEST",
            "Traceback (most recent call last):",
            "TypeError: boom",
            "END RequestId: r-2",
            "REPORT RequestId: r-2\tDuration: 5.5 ms",
        ],
    )
    slow = _events(
        "s3",
        [
            "START RequestId: r-3 Version: $LATEST",
            "Task timed out after 3.00 seconds",
            "REPORT RequestId: r-3\tDuration: 3000 ms",
        ],
    )
    pending = _events("s4", ["START RequestId: r-4 Version: $LATEST", "still running"])
    invs = parse_events("fn-x", ok + bad + slow + pending, label="MyFunction")
    assert sorted((i.request_id, i.status, i.duration_ms) for i in invs) == [
        ("r-1", "ok", 27.0),
        ("r-2", "error", 5.5),
        ("r-3", "timeout", 3000.0),
    ]
    first = next(i for i in invs if i.request_id == "r-1")
    assert first.lines == ["hello"]
    assert first.summary().split()[1:] == ["MyFunction", "ok", "r-1", "27", "ms"]


def test_invocation_without_start_line() -> None:
    inv = parse_events("fn", _events("s", ["REPORT RequestId: r-9\tDuration: 1 ms"]))
    assert inv[0].request_id == "r-9" and isinstance(inv[0], Invocation)


def test_resolve_endpoint_prefers_explicit_then_local_json_then_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KEAPLINK_STATE_DIR", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://env:1")
    assert aws.resolve_endpoint(tmp_path, "http://explicit:1") == "http://explicit:1"
    assert aws.resolve_endpoint(tmp_path) == "http://env:1"
    state = {"aws_endpoint_url": "http://127.0.0.1:4566", "stack_name": "keaplink-local", "api_url": "x"}
    path = aws.write_local_state(state, tmp_path)
    assert path == tmp_path / ".keaplink" / "local.json"
    assert json.loads(path.read_text()) == {
        "aws_endpoint_url": "http://127.0.0.1:4566",
        "stack_name": "keaplink-local",
        "api_url": "x",
    }
    assert path.stat().st_mode & 0o777 == 0o600  # it holds the local admin password
    assert aws.resolve_endpoint(tmp_path) == "http://127.0.0.1:4566"
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    with pytest.raises(SystemExit):
        aws.resolve_endpoint(tmp_path / "nowhere")


def test_local_env_drops_host_aws_settings() -> None:
    env = aws.local_env("http://127.0.0.1:9", base={"AWS_PROFILE": "prod", "AWS_SESSION_TOKEN": "t", "PATH": "/bin"})
    assert "AWS_PROFILE" not in env and "AWS_SESSION_TOKEN" not in env
    assert (
        env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9" and env["AWS_ACCESS_KEY_ID"] == "test" and env["PATH"] == "/bin"
    )


def test_ministack_environment_and_missing_executable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "prod")
    ms = ministack.MiniStack(4567, tmp_path, tmp_path / "ms.log", executable=tmp_path / "no-such-ministack")
    env = ms.environment()
    assert env["GATEWAY_PORT"] == "4567" and env["BIND_HOST"] == "127.0.0.1" and env["AWS_ENDPOINT_URL"] == ms.endpoint
    assert env["TMPDIR"] == str(tmp_path / "tmp") and env["SFTP_ENABLED"] == "0" and env["IOT_MTLS_ENABLED"] == "0"
    assert "AWS_PROFILE" not in env
    with pytest.raises(ministack.MiniStackError, match="ensure_installed"):
        ms.start()
    ms.stop()  # harmless when never started


def test_ministack_startup_failure_reports_log_tail(tmp_path: Path) -> None:
    fake = tmp_path / "fake-ministack"
    fake.write_text("#!/bin/sh\necho 'boom: cannot start' >&2\nexit 3\n")
    fake.chmod(0o755)
    ms = ministack.MiniStack(ministack.free_port(), tmp_path, tmp_path / "ms.log", executable=fake, startup_timeout=5)
    with pytest.raises(ministack.MiniStackError, match=r"(?s)exited with code 3.*boom: cannot start"):
        ms.start()


def test_sam_error_message_has_tail() -> None:
    err = SamError("deploy", 1, "line a\nline b", "Error: nope")
    assert "sam deploy failed (exit 1): Error: nope" in str(err) and "line b" in str(err)


def test_cfn_yaml_loader_reads_short_form_tags() -> None:
    from keaplink_dev.local.deploy import _load_cfn_yaml

    data = _load_cfn_yaml(Path(__file__).parent / "fixtures" / "toy" / "template.yaml")
    table = data["Resources"]["Table"]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert data["Outputs"]["SecretArn"]["Value"] == {"GetAtt": "Secret.Id"}
    assert data["Globals"]["Function"]["Layers"] == [{"Ref": "DepsLayer"}]
