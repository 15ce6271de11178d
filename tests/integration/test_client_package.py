"""The publisher and CLI ship as a package the application installs; the Lambda layer leaves them out."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from keaplink_dev.client_dist import build_wheel

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_package_installs_and_publishes(tmp_path: Path, aws) -> None:  # type: ignore[no-untyped-def]
    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"keaplink/client/publish.py", "keaplink/client/cli.py",
            "keaplink/contract/schemas/message.schema.json"} <= names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "keaplink = keaplink.client.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                    str(wheel)], check=True, timeout=300)
    # The installed copy, not the checkout: an application's process with boto3 and fastjsonschema.
    code = ("import keaplink.client.publish as p, sys; assert p.__file__.startswith(sys.argv[1]), p.__file__; "
            "print(p.publish_signup('u1', 'ada@example.com'))")
    env = {**os.environ, "PYTHONPATH": str(target), "KEAPLINK_QUEUE_URL": aws.queue_url}
    done = subprocess.run([sys.executable, "-c", code, str(target)], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    sqs = aws.client("sqs")
    [message] = sqs.receive_message(QueueUrl=aws.queue_url).get("Messages", [])
    assert message["MessageId"] == done.stdout.strip()


def _newest_change(tree: Path) -> float:
    return max(path.stat().st_mtime for path in tree.rglob("*.py"))


def test_the_built_layer_leaves_the_client_out() -> None:
    built = ROOT / ".aws-sam" / "build" / "KeaplinkLayer" / "python" / "keaplink"
    if not built.exists():
        pytest.skip("no sam build output (make test builds it; make test-fast does not)")
    # A build older than the sources says nothing about them; make test always builds first.
    if _newest_change(ROOT / "layers" / "keaplink" / "keaplink") > _newest_change(built):
        pytest.skip("the sam build output is older than the layer's sources (run make build)")
    assert (built / "contract" / "messages.py").exists() and (built / "root.py").exists()
    assert not (built / "client").exists()
