"""The client against a real AWS API: moto's server, run by the dev venv's interpreter (``KEAPLINK_MOTO_PYTHON``),
since a client venv holds the wheel and pytest only. Self-contained: runs without tests/conftest.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def aws_endpoint() -> Iterator[str]:
    port = free_port()
    python = os.environ.get("KEAPLINK_MOTO_PYTHON") or sys.executable
    proc = subprocess.Popen([python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"moto's server did not start ({python})") from None
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


@dataclass(frozen=True)
class Aws:
    endpoint: str
    queue_url: str
    dlq_url: str
    table: str

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=self.endpoint, aws_access_key_id="test",
                            aws_secret_access_key="test")

    def received(self, url: str | None = None) -> list[dict[str, Any]]:
        answer = self.client("sqs").receive_message(QueueUrl=url or self.queue_url, MaxNumberOfMessages=10,
                                                    MessageAttributeNames=["All"], WaitTimeSeconds=1)
        return list(answer.get("Messages", []))


@pytest.fixture
def queues(aws_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Aws:
    """Fresh queues and connection table; the environment an application would set (no local.json)."""
    suffix = uuid.uuid4().hex[:8]
    bare = Aws(aws_endpoint, "", "", f"keaplink-connection-{suffix}")
    sqs = bare.client("sqs")
    resources = Aws(aws_endpoint, sqs.create_queue(QueueName=f"actions-{suffix}")["QueueUrl"],
                    sqs.create_queue(QueueName=f"dlq-{suffix}")["QueueUrl"], bare.table)
    bare.client("dynamodb").create_table(
        TableName=bare.table, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    for name, value in {"AWS_ENDPOINT_URL": aws_endpoint, "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": "test",
                        "AWS_SECRET_ACCESS_KEY": "test", "KEAPLINK_QUEUE_URL": resources.queue_url,
                        "KEAPLINK_DLQ_URL": resources.dlq_url, "KEAPLINK_CONNECTION_TABLE": bare.table,
                        "KEAPLINK_STATE_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    return resources
