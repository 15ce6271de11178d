"""The publisher and CLI ship as a package the application installs; the Lambda layer leaves them out."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_package_installs_and_publishes(tmp_path: Path, aws) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "src"  # a copy: an in-tree build would leave build/ and egg-info in the checkout
    shutil.copytree(ROOT / "layers" / "keaplink" / "keaplink", source / "layers" / "keaplink" / "keaplink",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", source)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(source)],
                   check=True, timeout=300)
    [wheel] = tmp_path.glob("keaplink-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"keaplink/client/publish.py", "keaplink/client/cli.py",
            "keaplink/actions/schemas/message.schema.json"} <= names
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


def test_the_built_layer_leaves_the_client_out() -> None:
    built = ROOT / ".aws-sam" / "build" / "KeaplinkLayer" / "python" / "keaplink"
    if not built.exists():
        pytest.skip("no sam build output (make test builds it; make test-fast does not)")
    assert (built / "actions" / "messages.py").exists() and (built / "root.py").exists()
    assert not (built / "client").exists()
