"""A real moto server on 127.0.0.1, and the resources template.yaml declares, created over HTTP."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
ADMIN_PASSWORD = "keaplink-local-admin"  # the password in events/*.json (15 characters at least)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class AwsResources:
    endpoint: str
    connection_table: str
    data_table: str
    credentials_secret: str
    admin_secret: str
    kms_key_id: str
    queue_url: str
    dlq_url: str

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "CONNECTION_TABLE": self.connection_table,
            "DATA_TABLE": self.data_table,
            "KEAP_CREDENTIALS_SECRET": self.credentials_secret,
            "ADMIN_SECRET": self.admin_secret,
            "TOKEN_KMS_KEY_ID": self.kms_key_id,
            "DLQ_URL": self.dlq_url,
            "QUEUE_URL": self.queue_url,
            # moto on a shared 2-core machine can take seconds to answer what AWS answers in milliseconds: the
            # refresh path's tight AWS timeouts (keaplink.aws.REFRESH_PATH) ten times longer here.
            "AWS_TIMEOUT_SCALE": "10",
        }

    def client(self, service: str) -> Any:
        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


def start_moto() -> tuple[ThreadedMotoServer, str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


def create_resources(endpoint: str, suffix: str, credentials: dict[str, str]) -> AwsResources:
    res = AwsResources(
        endpoint=endpoint,
        connection_table=f"keaplink-connection-{suffix}",
        data_table=f"keaplink-data-{suffix}",
        credentials_secret=f"keaplink-credentials-{suffix}",
        admin_secret=f"keaplink-admin-{suffix}",
        kms_key_id="",
        queue_url="",
        dlq_url="",
    )
    ddb = res.client("dynamodb")
    for table in (res.connection_table, res.data_table):
        ddb.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        )
    sm = res.client("secretsmanager")
    sm.create_secret(Name=res.credentials_secret, SecretString=json.dumps(credentials))
    sm.create_secret(Name=res.admin_secret, SecretString=json.dumps({"username": "admin", "password": ADMIN_PASSWORD}))
    res.kms_key_id = res.client("kms").create_key(Description="tokens")["KeyMetadata"]["KeyId"]
    sqs = res.client("sqs")
    res.dlq_url = sqs.create_queue(QueueName=f"keaplink-dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=res.dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    res.queue_url = sqs.create_queue(
        QueueName=f"keaplink-actions-{suffix}",
        Attributes={
            "VisibilityTimeout": "1",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "20"}),
        },
    )["QueueUrl"]
    return res


def apply_env(values: dict[str, str]) -> dict[str, str | None]:
    """Set environment variables; returns the previous values for restore_env."""
    previous = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    return previous


def restore_env(previous: dict[str, str | None]) -> None:
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
