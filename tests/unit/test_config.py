"""Settings: read lazily from the environment, validated, with clear errors."""

from __future__ import annotations

import pytest

from keaplink import root
from keaplink.config import DEFAULT_MAX_RPS, DEFAULT_RATE_BUDGET, client_settings, get_settings
from keaplink.errors import ConfigError


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for name in ("KEAP_MAX_RPS", "KEAP_RATE_BUDGET", "ACTIONS_CONCURRENCY", "KEAP_AUTH_MODE", "KEAP_API_URL", "DLQ_URL",
                 "ACTIONS_FUNCTION", "AWS_LAMBDA_FUNCTION_NAME", "KEAPLINK_QUEUE_URL"):
        monkeypatch.delenv(name, raising=False)
    root.reset()
    yield
    root.reset()


def test_defaults() -> None:
    s = get_settings()
    assert (s.keap_max_rps, s.actions_concurrency, s.auth_mode) == (DEFAULT_MAX_RPS, 8, "oauth")
    assert s.keap_rate_budget == DEFAULT_RATE_BUDGET == 23.5  # the whole deployment's, below Keap's 25/s
    assert s.keap_api_url == "https://api.infusionsoft.com/crm/rest" and s.actions_function is None


@pytest.mark.parametrize(("name", "value", "message"), [
    ("KEAP_MAX_RPS", "fast", "must be a number"),
    ("KEAP_MAX_RPS", "40", "between 0.1 and 25"),
    ("KEAP_RATE_BUDGET", "30", "between 0.1 and 25"),
    ("ACTIONS_CONCURRENCY", "0", "between 1 and 64"),
    ("KEAP_AUTH_MODE", "basic", "'oauth' or 'api_key'"),
    ("KEAP_API_URL", "api.keap.com", "http(s) URL"),
])
def test_invalid_values_are_refused_with_the_variable_named(monkeypatch, name: str, value: str,  # type: ignore[no-untyped-def]
                                                            message: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name) as info:
        get_settings()
    assert message in str(info.value)


def test_a_missing_resource_is_named_where_it_is_needed() -> None:
    with pytest.raises(ConfigError, match="DLQ_URL is not set"):
        get_settings().need("dlq_url")


def test_read_lazily_and_once_until_reset(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "keaplink-actions")
    assert get_settings().actions_function == "keaplink-actions"
    monkeypatch.setenv("ACTIONS_FUNCTION", "other")
    assert get_settings().actions_function == "keaplink-actions"  # cached for the container's life
    root.reset()
    assert get_settings().actions_function == "other"  # the admin functions are told the name


def test_client_settings_are_read_on_every_call(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert client_settings().queue_url is None
    monkeypatch.setenv("KEAPLINK_QUEUE_URL", "http://q")
    assert client_settings().queue_url == "http://q"
