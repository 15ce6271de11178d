"""Builds the real collaborators from configuration. Handlers call these only when a test did not
pass its own (ports and fakes instead of patching)."""

from __future__ import annotations

from keaplink import credentials
from keaplink.config import get_settings
from keaplink.oauth import OAuthClient
from keaplink.observability import MetricsPort
from keaplink.queue_gate import QueueGate
from keaplink.refresh import Refresher
from keaplink.token_store import StateStore, TokenStore


def token_store() -> TokenStore:
    return TokenStore(get_settings().connection_id)


def oauth_client() -> OAuthClient:
    settings = get_settings()
    return OAuthClient(settings.keap_token_url, credentials.client_credentials(), settings.http_timeout_s)


def refresher(metrics: MetricsPort | None = None) -> Refresher:
    if metrics is None:
        return Refresher(store=token_store(), oauth=oauth_client)
    return Refresher(store=token_store(), oauth=oauth_client, metrics=metrics)


def state_store() -> StateStore:
    return StateStore()


def queue_gate() -> QueueGate:
    return QueueGate()
