"""Every bad input we could think of, at every admin route, and what became of it.

Kinds: no, wrong or malformed credentials (and the lockout they lead to), oversized headers and bodies,
forged cookies and OAuth states, cross-site posts, attacker text in every query parameter, and header
injection. Each request is judged:

* **refused** — answered with a 4xx and nothing changed (the stored connection is compared before and after);
* **ignored** — a request that is otherwise the admin's own (a page view, a refresh) served as if the bad
  part were not there: its text appears nowhere in the answer;
* **leaked** — any answer, of any case, whose body or headers hold a secret (admin password, Keap client
  secret, any access or refresh token ever stored during the run), an attacker's marker, or a CR/LF in a
  header value, or that redirects anywhere but this panel or Keap's authorize page.

The module prints the totals; docs/security.md quotes them. Handlers run in-process (the way
API Gateway hands them events, which lets a test send what no HTTP client would); DynamoDB, Secrets Manager
and KMS are a moto server and Keap is the sandbox, over HTTP.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from keaplink import root
from keaplink_dev.local import flows
from keaplink_dev.local.lambda_events import HOST, basic
from keaplink_dev.local.moto_server import ADMIN_PASSWORD
from tests.conftest import SANDBOX_CLIENT

RIGHT = basic("admin", ADMIN_PASSWORD)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ROUTES = [("admin", "GET", "/"), ("admin", "GET", "/status.json"), ("admin", "GET", "/connect"),
          ("admin", "POST", "/refresh"), ("admin", "POST", "/tokens"), ("callback", "GET", "/callback")]
QUERY_PARAMETERS = ["message", "done", "error", "error_description", "error_uri", "state", "code", "scope",
                    "redirect_uri", "next", "returnTo", "tenant", "callback"]
_ips = (f"198.18.{i // 250}.{i % 250 + 1}" for i in itertools.count())


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@dataclass
class Case:
    kind: str
    route: tuple[str, str, str]
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] | None = None
    body: str | None = None
    expect: str = "refused"  # or "ignored"
    markers: tuple[str, ...] = ()
    source_ip: str = ""

    def send(self) -> dict[str, Any]:
        function, method, path = self.route
        return flows.anonymous(function, method, path, self.query, self.headers, source_ip=self.source_ip or next(_ips),
                               body=self.body)


def credential_cases(route: tuple[str, str, str]) -> list[Case]:
    bad = {
        "no credentials": {},
        "empty Authorization": {"Authorization": ""},
        "wrong password": {"Authorization": basic("admin", "wrong-password-123")},
        "password with a trailing space": {"Authorization": basic("admin", ADMIN_PASSWORD + " ")},
        "wrong user": {"Authorization": basic("root", ADMIN_PASSWORD)},
        "user in capitals": {"Authorization": basic("Admin", ADMIN_PASSWORD)},
        "bearer scheme": {"Authorization": "Bearer " + ADMIN_PASSWORD},
        "scheme only": {"Authorization": "Basic"},
        "not base64": {"Authorization": "Basic !!!%%%"},
        "no colon": {"Authorization": "Basic " + b64(f"admin{ADMIN_PASSWORD}".encode())},
        "not UTF-8": {"Authorization": "Basic " + b64(b"admin:\xff\xfe\xfd")},
        "CRLF after the credentials": {"Authorization": RIGHT + "\r\nX-Injected: 1"},
        "NUL in the password": {"Authorization": basic("admin", ADMIN_PASSWORD + "\x00")},
        "oversized Authorization (100 KB)": {"Authorization": "Basic " + b64(b"admin:" + b"A" * 75_000)},
    }
    return [Case(f"credentials: {name}", route, headers) for name, headers in bad.items()]


def lockout_cases(route: tuple[str, str, str]) -> list[Case]:
    ip = next(_ips)
    wrong = [Case("lockout: guesses", route, {"Authorization": basic("admin", f"guess-number-{i:04d}")},
                  source_ip=ip) for i in range(10)]
    return [*wrong, Case("lockout: the right password while locked out", route, {"Authorization": RIGHT},
                         source_ip=ip)]


def oversized_cases(route: tuple[str, str, str]) -> list[Case]:
    function, _, path = route
    big = "x" * 100_000
    ignored = path != "/tokens" and function != "callback"
    return [
        Case("oversized: 100 KB Cookie", route, {"Authorization": RIGHT, "Cookie": "keaplink_oauth_state=" + big},
             expect="ignored" if ignored else "refused"),
        Case("oversized: 100 KB header", route, {"Authorization": RIGHT, "X-Big": big},
             expect="ignored" if ignored else "refused"),
        Case("oversized: 100 KB query parameter", route, {"Authorization": RIGHT}, {"done": big},
             expect="ignored" if ignored else "refused"),
    ] + ([Case("oversized: 100 KB form", route, {"Authorization": RIGHT, **FORM}, body="access_token=" + big)]
         if path == "/tokens" else [])


def cross_site_cases(route: tuple[str, str, str]) -> list[Case]:
    if route[1] != "POST":
        return []
    own = f"https://{HOST}"
    origins = {
        "Sec-Fetch-Site cross-site": {"Sec-Fetch-Site": "cross-site"},
        "Sec-Fetch-Site same-site (a sibling subdomain)": {"Sec-Fetch-Site": "same-site"},
        "Sec-Fetch-Site cross-site with our own Origin": {"Sec-Fetch-Site": "cross-site", "Origin": own},
        "Origin of another site": {"Origin": "https://evil.example"},
        "Origin null (sandboxed frame, data: URL)": {"Origin": "null"},
        "Origin that starts like ours": {"Origin": own + ".evil.example"},
        "Origin over http": {"Origin": f"http://{HOST}"},
    }
    body = urlencode({"access_token": "aaaa1111", "refresh_token": "bbbb2222"}) if route[2] == "/tokens" else None
    return [Case(f"cross-site post: {name}", route, {"Authorization": RIGHT, **FORM, **h}, body=body)
            for name, h in origins.items()]


def reflection_cases(route: tuple[str, str, str]) -> list[Case]:
    function, _, path = route
    expect = "refused" if path == "/tokens" or function == "callback" else "ignored"
    out = []
    for name in QUERY_PARAMETERS:
        marker = f"KLREF{name.upper()}"
        text = f"<script>alert('{marker}')</script>\r\nSet-Cookie: {marker}=1 \u202e{marker} call +1 555 0100"
        out.append(Case(f"reflected text: ?{name}=", route, {"Authorization": RIGHT}, {name: text}, expect=expect,
                        markers=(marker, "555 0100")))
    return out


def injection_cases(route: tuple[str, str, str]) -> list[Case]:
    function, _, path = route
    expect = "refused" if path == "/tokens" or function == "callback" else "ignored"
    attempts = {
        "Host with CRLF": {"Host": "evil.example\r\nSet-Cookie: KLINJ=1"},
        "Host with a path": {"Host": "evil.example/KLINJ"},
        "Host with a space": {"Host": "evil.example KLINJ"},
        "X-Forwarded-Proto not a scheme": {"X-Forwarded-Proto": "javascript:KLINJ"},
        "X-Forwarded-Host": {"X-Forwarded-Host": "evil.example", "X-Original-Host": "evil.example"},
        "X-Forwarded-For spoofed": {"X-Forwarded-For": "127.0.0.1, KLINJ"},
        "Cookie with CRLF": {"Cookie": "a=b\r\nSet-Cookie: KLINJ=1"},
        "Referer": {"Referer": "https://evil.example/KLINJ"},
        "User-Agent with CRLF": {"User-Agent": "x\r\nLocation: https://evil.example/KLINJ"},
        "done code with CRLF": {},
    }
    cases = []
    for name, headers in attempts.items():
        query = {"done": "connected\r\nSet-Cookie: KLINJ=1"} if name == "done code with CRLF" else None
        cases.append(Case(f"header injection: {name}", route, {"Authorization": RIGHT, **headers}, query,
                          expect=expect, markers=("KLINJ", "evil.example")))
    return cases


def forged_state_cases(live_state: Callable[[], tuple[str, str]], used_state: tuple[str, str]) -> list[Case]:
    """Forged cookies and OAuth states at the callback, with the admin's own credentials."""
    route = ("callback", "GET", "/callback")
    real, real_cookie = live_state()
    _, other_cookie = live_state()
    expired = root.state_store().issue("admin", time.time() - 601)

    def cb(name: str, query: dict[str, str] | None, cookie: str | None) -> Case:
        headers = {"Authorization": RIGHT, **({"Cookie": cookie} if cookie is not None else {})}
        return Case(f"forged state: {name}", route, headers, query)

    return [
        cb("no state, no cookie", {"code": "c"}, None),
        cb("state without cookie", {"code": "c", "state": real}, None),
        cb("cookie without state", {"code": "c"}, real_cookie),
        cb("made-up state matching a made-up cookie", {"code": "c", "state": "forged"}, "keaplink_oauth_state=forged"),
        cb("real state, another browser's cookie", {"code": "c", "state": real}, other_cookie),
        cb("a second cookie of the same name", {"code": "c", "state": real},
           f"keaplink_oauth_state=forged; {real_cookie}"),
        cb("oversized state", {"code": "c", "state": "s" * 10_000}, "keaplink_oauth_state=" + "s" * 10_000),
        cb("state with CRLF", {"code": "c", "state": "a\r\nb"}, "keaplink_oauth_state=a\r\nb"),
        cb("expired state", {"code": "c", "state": expired}, f"keaplink_oauth_state={expired}"),
        cb("replayed state", {"code": "c", "state": used_state[0]}, used_state[1]),
        cb("Keap error with a forged state", {"error": "access_denied", "state": "forged"},
           "keaplink_oauth_state=forged"),
    ]


@dataclass
class Tally:
    tried: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    answers: list[tuple[Case, dict[str, Any]]] = field(default_factory=list)


def stored() -> tuple[int, str | None, str | None]:
    token = (conn := root.token_store().load()).token
    return conn.version, token.access_token if token else None, token.refresh_token if token else None


def judge(case: Case, tally: Tally, secrets: set[str]) -> None:
    before = stored()
    response = case.send()
    after = stored()
    secrets.update(x for x in (*before[1:], *after[1:]) if x)
    kind = case.kind.split(":")[0]
    tally.tried[kind] += 1
    tally.answers.append((case, response))
    status = response["statusCode"]
    if case.expect == "refused":
        ok = 400 <= status < 500 and after == before
        (tally.refused if ok else Counter())[kind] += 1
    else:
        ok = status in (200, 302, 303)
        (tally.ignored if ok else Counter())[kind] += 1
    if not ok:
        tally.wrong.append(f"{case.kind} at {case.route}: {status} (expected {case.expect}); stored changed: "
                           f"{after != before}")


def leaks_in(case: Case, response: dict[str, Any], secrets: set[str]) -> list[str]:
    headers = [(k, str(v)) for k, vs in (response.get("multiValueHeaders") or {}).items() for v in vs]
    headers += [(k, str(v)) for k, v in (response.get("headers") or {}).items()]
    text = (response.get("body") or "") + "\n".join(f"{k}: {v}" for k, v in headers)
    found = [f"secret {s[:4]}…" for s in secrets if s in text]
    found += [f"marker {m}" for m in case.markers if m in text]
    found += [f"CR/LF in header {k}" for k, v in headers if "\r" in v or "\n" in v]
    for k, v in headers:
        if k.lower() == "location" and not (v.startswith("/prod/") or v.startswith(root.settings().keap_authorize_url)):
            found.append(f"redirect to {v[:60]}")
        if k.lower() == "location" and v.startswith(root.settings().keap_authorize_url):
            redirect_uri = parse_qs(urlsplit(v).query)["redirect_uri"][0]
            if urlsplit(redirect_uri).netloc != HOST:
                found.append(f"authorize redirect_uri on another host: {redirect_uri[:60]}")
    return found


@pytest.mark.slow  # hundreds of requests, ~30-60 s
def test_bad_inputs_at_every_route_are_refused_and_nothing_leaks(aws, sandbox, capsys) -> None:
    flows.connect()
    secrets = {ADMIN_PASSWORD, SANDBOX_CLIENT["client_secret"]}
    used = flows.start_connect()
    used_state = (dict(parse_qs(urlsplit(used[0]).query))["state"][0], used[1])
    assert flows.callback(flows.consent(used[0]), used[1])["statusCode"] == 200  # a state used once, for replays

    def live_state() -> tuple[str, str]:
        location, cookie = flows.start_connect()
        return parse_qs(urlsplit(location).query)["state"][0], cookie

    cases: list[Case] = []
    for route in ROUTES:
        cases += credential_cases(route) + lockout_cases(route) + oversized_cases(route)
        cases += cross_site_cases(route) + reflection_cases(route) + injection_cases(route)
    cases += forged_state_cases(live_state, used_state)

    tally = Tally()
    for case in cases:
        judge(case, tally, secrets)
    for case, response in tally.answers:
        tally.leaks += [f"{case.kind} at {case.route}: {leak}" for leak in leaks_in(case, response, secrets)]

    tried, refused, ignored = sum(tally.tried.values()), sum(tally.refused.values()), sum(tally.ignored.values())
    lines = [f"admin security: {tried} bad inputs tried at {len(ROUTES)} routes; {refused + ignored} refused "
             f"({refused} answered 4xx with nothing changed, {ignored} served with the bad part ignored); "
             f"{len(tally.leaks)} leaked"]
    lines += [f"  {kind:<18} tried {n:>3}  refused {tally.refused[kind]:>3}  ignored {tally.ignored[kind]:>3}"
              for kind, n in sorted(tally.tried.items())]
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert tally.wrong == []
    assert tally.leaks == []
    assert refused + ignored == tried and tried >= 300
    assert root.token_store().load().status.value == "connected"  # and the panel still works for the admin
    assert flows.call("admin", "GET", "/")["statusCode"] == 200


@pytest.mark.parametrize("status", [401, 429])
def test_the_judge_would_see_a_leak(aws, status: int) -> None:
    """Guards the guard: a response that echoes a marker or a secret, or redirects away, is reported."""
    case = Case("x", ROUTES[0], markers=("KLREFX",))
    response = {"statusCode": status, "body": "hello KLREFX", "multiValueHeaders": {
        "Location": ["https://evil.example/"], "X-A": ["a\r\nb"], "X-S": [json.dumps({"t": "s3cret-token"})]}}
    found = leaks_in(case, response, {"s3cret-token"})
    assert len(found) == 4, found
