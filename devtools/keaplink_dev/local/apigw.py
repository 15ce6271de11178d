"""The response headers API Gateway (REST API, Lambda proxy integration) renames or drops.

API Gateway answers with its own framing and renames some headers of a function's answer to
``x-amzn-Remapped-<Name>`` (value kept): notably ``WWW-Authenticate``, so a browser never sees a Basic
challenge. Sources: the AWS developer guide, "Amazon API Gateway important notes" (REST APIs), and
LocalStack's model of it (``services/apigateway/next_gen/execute_api/handlers/method_response.py``), which
remaps Connection, Content-Length, Date and Server for every integration, the others for non-proxy ones,
and drops Transfer-Encoding. keaplink takes the union for its Lambda proxy routes: a design that depends
on one of these headers fails locally as it would on AWS. Both local fronts use this one list.
"""

from __future__ import annotations

from collections.abc import Iterable

REMAPPED_PREFIX = "x-amzn-Remapped-"
REMAPPED = frozenset({
    "authorization", "connection", "content-length", "content-md5", "date", "expect", "host", "max-forwards",
    "proxy-authenticate", "server", "trailer", "upgrade", "user-agent", "www-authenticate",
})
DROPPED = frozenset({"transfer-encoding"})


def remap_response_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """A function's response headers as API Gateway passes them on, in order (names case-insensitive).

    Content-Length and Date are the gateway's own: the caller writes them after these."""
    out: list[tuple[str, str]] = []
    for name, value in headers:
        lower = name.lower()
        if lower in DROPPED:
            continue
        out.append((REMAPPED_PREFIX + name, value) if lower in REMAPPED else (name, value))
    return out
