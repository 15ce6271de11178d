"""Keap's published contract in the loop: with validation on, every REST request and answer is checked with
openapi-core against ``spec/keap-openapi-v2.yml``, and what does not conform is recorded as a violation
(``GET /_sandbox/contract``). What counts, what is not checked (OAuth, the gateway's own error shape, answers a
setting makes off-spec) and why: ``sandbox/README.md``, "Keap's contract in the loop". openapi-core is imported and
the spec loaded on the first check only (the spec's own validation, ~9 s, runs once in the sandbox's tests).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

if TYPE_CHECKING:
    from jsonschema_path import SchemaPath
    from openapi_core import OpenAPI
    from openapi_core.validation.schemas.validators import SchemaValidator

SPEC_PATH = Path(__file__).resolve().parent / "spec" / "keap-openapi-v2.yml"
#: Scheme and host of the spec's server ``https://api.keap.com/crm``; the sandbox's ``/crm/rest/...``
#: paths are then exactly the spec's ``/rest/...`` paths under it.
SPEC_HOST = "https://api.keap.com"
#: Gateway statuses that no operation in the spec lists.
UNDOCUMENTED_GATEWAY_STATUSES = frozenset({429, 502, 503, 504})

log = logging.getLogger("keap_sandbox.contract")

JSON = dict[str, Any]


@dataclass(frozen=True)
class Exchange:
    """One REST request as it reached the sandbox (path as sent, e.g. ``/crm/rest/v2/contacts``)."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Violation:
    """One request or answer that does not conform; ``errors`` are the validator's messages."""

    kind: str  # "request" | "response"
    check: str  # "spec" | "undocumented-property"
    method: str
    path: str
    query: str
    status: int | None
    operation: str | None
    errors: tuple[str, ...]

    @property
    def message(self) -> str:
        return "; ".join(self.errors)

    def to_json(self) -> JSON:
        return {
            "kind": self.kind,
            "check": self.check,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
            "operation": self.operation,
            "message": self.message,
            "errors": list(self.errors),
        }

    def describe(self) -> str:
        target = f"{self.method} {self.path}" + (f"?{self.query}" if self.query else "")
        what = "request" if self.kind == "request" else f"response {self.status}"
        op = f" ({self.operation})" if self.operation else ""
        return f"{what} {target}{op} [{self.check}]: {self.message}"


# ---------------------------------------------------------------------------------------------- loading
class _Spec:
    """The parsed spec and two validator sets over it: as written, and with undeclared object
    properties forbidden. Built once per process (see :func:`load_spec`)."""

    def __init__(self, path: Path) -> None:
        from jsonschema_path import SchemaPath
        from openapi_core import Config, OpenAPI
        from openapi_core.security.factories import SecurityProviderFactory
        from openapi_core.validation.schemas import oas31_schema_validators_factory

        class _Security(SecurityProviderFactory):
            PROVIDERS = {**SecurityProviderFactory.PROVIDERS, "oauth2": _keap_credentials_class()}

        self.path = path
        self.schema: SchemaPath = SchemaPath.from_file_path(str(path))
        common: dict[str, Any] = {"spec_validator_cls": None, "security_provider_factory": _Security()}
        self.lenient: OpenAPI = OpenAPI(self.schema, config=Config(**common))
        self.strict: OpenAPI = OpenAPI(
            self.schema, config=Config(additional_properties_default_policy="forbid", **common)
        )
        error = self.schema / "components" / "schemas" / "Error"
        self.error_validators: dict[bool, SchemaValidator] = {
            strict: oas31_schema_validators_factory.create(
                self.schema, error, forbid_unspecified_additional_properties=strict
            )
            for strict in (False, True)
        }


def _keap_credentials_class() -> type:
    from openapi_core.security.exceptions import SecurityProviderError
    from openapi_core.security.providers import BaseProvider

    class KeapCredentials(BaseProvider):
        """The spec's ``oauth2`` scheme: a bearer token, or Keap's ``X-Keap-API-Key`` (PAT/SAK)."""

        def __call__(self, parameters: Any) -> Any:
            header = parameters.header
            auth = str(header.get("Authorization", ""))
            if auth.split(" ", 1)[0].lower() == "bearer" and auth[7:].strip():
                return auth[7:].strip()
            if header.get("X-Keap-API-Key"):
                return header["X-Keap-API-Key"]
            raise SecurityProviderError("neither Authorization: Bearer <token> nor X-Keap-API-Key")

    return KeapCredentials


_loaded: dict[Path, _Spec] = {}
_load_lock = threading.Lock()


def available() -> bool:
    """Whether openapi-core can be imported (validation needs it; the sandbox otherwise does not)."""
    try:
        import openapi_core  # noqa: F401
    except ImportError:
        return False
    return True


def load_spec(path: Path = SPEC_PATH) -> _Spec:
    """The spec and its validators, loaded on first use and then shared by every sandbox in the process."""
    with _load_lock:
        spec = _loaded.get(path)
        if spec is None:
            spec = _loaded[path] = _Spec(path)
        return spec


# ---------------------------------------------------------------------------------------------- adapters
class _Request:
    """openapi-core's ``Request`` protocol over an :class:`Exchange`."""

    def __init__(self, exchange: Exchange) -> None:
        from openapi_core.datatypes import RequestParameters
        from werkzeug.datastructures import Headers, ImmutableMultiDict

        self.host_url = SPEC_HOST
        self.path = unquote(exchange.path)
        self.method = exchange.method.lower()
        self.body: bytes | None = exchange.body or None
        headers = Headers(exchange.headers)
        self.content_type = str(headers.get("Content-Type", "")).lower() if exchange.body else ""
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qsl(exchange.query, keep_blank_values=True)),
            header=headers,
            cookie=ImmutableMultiDict(),
        )


class _Response:
    def __init__(self, answer: Answer) -> None:
        from werkzeug.datastructures import Headers

        self.status_code = answer.status
        self.content_type = answer.content_type.lower() if answer.body else ""
        self.headers = Headers(answer.headers)
        self.data: bytes | None = answer.body or None


# ---------------------------------------------------------------------------------------------- messages
def _messages(exc: BaseException) -> list[str]:
    """Readable lines for one openapi-core error: where (parameter or body path) and what."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    schema_errors = [err for e in chain for err in (getattr(e, "schema_errors", None) or ())]
    if not schema_errors:
        text = str(exc) or type(exc).__name__
        return [text.removeprefix(type(exc).__name__ + ": ")]
    name = getattr(exc, "name", None)
    root = f"{getattr(exc, 'location', 'query')} parameter {name}" if name is not None else "body"
    out = []
    for err in schema_errors:
        where = root + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
        out.append(f"{where}: {err.message}")
    return out


def _lines(errors: Iterable[BaseException]) -> list[str]:
    return [line for exc in errors for line in _messages(exc)]


# ---------------------------------------------------------------------------------------------- checker
class ContractChecker:
    """Validates exchanges against the spec; thread-safe (one check at a time)."""

    def __init__(self, spec_path: Path = SPEC_PATH) -> None:
        self.spec_path = spec_path
        self._lock = threading.Lock()

    @property
    def spec(self) -> _Spec:
        return load_spec(self.spec_path)

    def _operation(self, exchange: Exchange) -> str | None:
        from openapi_core.templating.paths.exceptions import PathError
        from openapi_core.templating.paths.finders import APICallPathFinder

        try:
            finder = APICallPathFinder(self.spec.schema)
            found = finder.find(exchange.method.lower(), SPEC_HOST + unquote(exchange.path))
        except PathError:
            return None
        op = found.operation
        return str(op["operationId"]) if "operationId" in op else None

    def _violations(
        self,
        kind: str,
        exchange: Exchange,
        status: int | None,
        strict_lines: list[str],
        lenient_lines: list[str],
        operation: str | None,
    ) -> list[Violation]:
        out: list[Violation] = []
        base = (exchange.method, exchange.path, exchange.query, status, operation)

        def add(check: str, lines: list[str]) -> None:
            if lines:
                method, path, query, st, op = base
                out.append(Violation(kind, check, method, path, query, st, op, tuple(lines)))

        add("spec", lenient_lines)
        add("undocumented-property", [line for line in strict_lines if line not in lenient_lines])
        return out

    def check_request(self, exchange: Exchange, strict: bool = True) -> list[Violation]:
        with self._lock:
            spec = self.spec
            first = spec.strict if strict else spec.lenient
            found = _lines(first.iter_request_errors(_Request(exchange)))
            if not found:
                return []
            lenient = found if not strict else _lines(spec.lenient.iter_request_errors(_Request(exchange)))
            return self._violations("request", exchange, None, found, lenient, self._operation(exchange))

    def check_response(self, exchange: Exchange, answer: Answer, strict: bool = True) -> list[Violation]:
        """Validate one answer. For an operation the spec lacks (already reported as a request
        violation) and for the gateway statuses no operation lists, the body of an error answer is
        checked against the ``Error`` schema instead."""
        from openapi_core.templating.paths.exceptions import PathError
        from openapi_core.templating.responses.exceptions import ResponseFinderError

        with self._lock:
            spec = self.spec
            apis = [spec.strict, spec.lenient] if strict else [spec.lenient]
            errors = list(apis[0].iter_response_errors(_Request(exchange), _Response(answer)))
            if not errors:
                return []
            operation = self._operation(exchange)
            unknown_op = any(isinstance(e, PathError) for e in errors)
            gateway_status = answer.status in UNDOCUMENTED_GATEWAY_STATUSES and any(
                isinstance(e, ResponseFinderError) for e in errors
            )
            if unknown_op or gateway_status:
                if answer.status < 400:
                    return []
                return self._error_body(exchange, answer, strict, operation)
            found = _lines(errors)
            if strict:
                lenient = _lines(spec.lenient.iter_response_errors(_Request(exchange), _Response(answer)))
            else:
                lenient = found
            return self._violations("response", exchange, answer.status, found, lenient, operation)

    def _error_body(self, exchange: Exchange, answer: Answer, strict: bool, operation: str | None) -> list[Violation]:
        from openapi_core.validation.schemas.exceptions import ValidateError

        def lines(validator: SchemaValidator) -> list[str]:
            try:
                body = json.loads(answer.body or b"null")
            except ValueError:
                return ["body is not JSON"]
            try:
                validator.validate(body)
            except ValidateError as exc:
                return [f"(Error schema) {line}" for line in _messages(exc)]
            return []

        found = lines(self.spec.error_validators[strict])
        if not found:
            return []
        lenient = found if not strict else lines(self.spec.error_validators[False])
        return self._violations("response", exchange, answer.status, found, lenient, operation)


def log_violations(found: Iterable[Violation]) -> None:
    for v in found:
        log.warning("Keap contract violation: %s", v.describe())


def header_pairs(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(k), str(v)) for k, v in items]
