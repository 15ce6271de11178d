"""Every AWS call on the refresh and save path is bounded so that one save fits the time the deadline keeps
for it: the arithmetic, and the clients as they are built (botocore for KMS and Secrets Manager, pynamodb
for the connection table). Building a client opens no connection."""

from __future__ import annotations

import pytest

from keaplink.aws import CLIENT_DEFAULT, REFRESH_PATH, CallBounds, bind_table, make_client
from keaplink.config import get_settings
from keaplink.connection.refresh import RefreshTimings
from keaplink.connection.store import SAVE_CALLS


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from keaplink import root

    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("CONNECTION_TABLE", "connections")
    monkeypatch.delenv("AWS_TIMEOUT_SCALE", raising=False)
    root.reset()
    yield get_settings()
    root.reset()


def test_one_save_at_its_worst_fits_the_time_kept_for_it() -> None:
    worst = SAVE_CALLS * REFRESH_PATH.worst_case_s()
    assert worst == 3 * 1 * (0.5 + 1.0) == 4.5
    assert worst <= RefreshTimings().save_s
    # What the old settings allowed, for comparison: botocore 5 attempts of 3 s + 10 s, pynamodb 6 of 3 s + 5 s.
    assert CallBounds(3.0, 10.0, 5).worst_case_s() + CallBounds(3.0, 5.0, 6).worst_case_s() > 100


def test_the_worst_case_counts_botocore_s_backoff_between_attempts() -> None:
    assert CallBounds(1.0, 1.0, 1).worst_case_s() == 2.0  # one attempt: no backoff
    assert CallBounds(1.0, 1.0, 3).worst_case_s() == 3 * 2.0 + 1.0 + 2.0
    assert CallBounds(0.0, 0.0, 8).worst_case_s() == 1 + 2 + 4 + 8 + 16 + 20 + 20


@pytest.mark.parametrize("service", ["kms", "secretsmanager"])
def test_the_refresh_path_s_botocore_clients_are_built_with_its_bounds(env, service: str) -> None:
    config = make_client(service, env).meta.config
    assert (config.connect_timeout, config.read_timeout) == (REFRESH_PATH.connect_s, REFRESH_PATH.read_s)
    assert config.retries == {"mode": "standard", "total_max_attempts": REFRESH_PATH.attempts}


def test_other_clients_keep_their_longer_bounds(env) -> None:
    config = make_client("sqs", env).meta.config
    assert (config.connect_timeout, config.read_timeout) == (CLIENT_DEFAULT.connect_s, CLIENT_DEFAULT.read_s)
    assert config.retries == {"mode": "standard", "total_max_attempts": CLIENT_DEFAULT.attempts}


def test_the_connection_table_is_bound_with_the_refresh_path_s_bounds(env) -> None:
    from keaplink import root

    model = root.connection_table()
    assert (model.Meta.connect_timeout_seconds, model.Meta.read_timeout_seconds, model.Meta.max_retry_attempts) == (
        0.5, 1.0, 0)
    config = model._get_connection().connection.client.meta.config  # the botocore client pynamodb builds
    assert (config.connect_timeout, config.read_timeout) == (0.5, 1.0)
    assert config.retries == {"total_max_attempts": 1, "mode": "standard"}


def test_the_root_s_kms_and_secrets_clients_are_the_bounded_ones(env) -> None:
    from keaplink import root

    for service in ("kms", "secretsmanager"):
        config = root.aws_client(service).meta.config
        assert (config.read_timeout, config.retries["total_max_attempts"]) == (1.0, 1)


def test_a_table_bound_without_bounds_keeps_the_default(env) -> None:
    from keaplink.actions.table import DataItem

    model = bind_table(DataItem, "data", env)
    assert (model.Meta.read_timeout_seconds, model.Meta.max_retry_attempts) == (5.0, 5)


def test_the_local_stack_may_scale_the_refresh_path_s_timeouts_and_only_those(env, monkeypatch) -> None:
    from keaplink import root
    from keaplink.errors import ConfigError

    monkeypatch.setenv("AWS_TIMEOUT_SCALE", "10")
    root.reset()
    settings = get_settings()
    config = make_client("kms", settings).meta.config
    assert (config.connect_timeout, config.read_timeout, config.retries["total_max_attempts"]) == (5.0, 10.0, 1)
    assert make_client("sqs", settings).meta.config.read_timeout == CLIENT_DEFAULT.read_s
    assert root.connection_table().Meta.read_timeout_seconds == 10.0
    monkeypatch.setenv("AWS_TIMEOUT_SCALE", "0.5")  # never tighter than AWS's own bounds
    root.reset()
    with pytest.raises(ConfigError, match="AWS_TIMEOUT_SCALE"):
        get_settings()
