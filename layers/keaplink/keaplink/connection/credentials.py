"""keaplink's own credentials at Keap: the developer app's client id/secret (OAuth) or an API key."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from keaplink.errors import ConfigError


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    client_secret: str = field(default="", repr=False)
    api_key: str = field(default="", repr=False)

    @classmethod
    def from_secret(cls, secret_string: str) -> ClientCredentials:
        """The JSON secret the template writes: ``client_id``, ``client_secret`` and/or ``api_key``."""
        try:
            raw = json.loads(secret_string)
        except ValueError:
            raise ConfigError("the Keap credentials secret is not JSON") from None
        if not isinstance(raw, dict):
            raise ConfigError("the Keap credentials secret is not a JSON object")
        return cls(
            client_id=str(raw.get("client_id", "")),
            client_secret=str(raw.get("client_secret", "")),
            api_key=str(raw.get("api_key", "")),
        )
