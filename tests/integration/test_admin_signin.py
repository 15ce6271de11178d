"""Signing in to the admin panel: the password (length, rotation, never read for anonymous requests), the
lockout of a guessing source, the security headers on every answer, and pages that show no request text.

Handlers run in-process; DynamoDB, Secrets Manager and KMS are a moto server, Keap is the sandbox, over HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections import Counter
from typing import Any

import pytest

from keaplink import root
from keaplink_dev.local import flows
from keaplink_dev.local.lambda_events import basic
from keaplink_dev.local.moto_server import ADMIN_PASSWORD
from keaplink_dev.local.template import load_template

RIGHT = {"Authorization": basic("admin", ADMIN_PASSWORD)}
WRONG = {"Authorization": basic("admin", "not-the-password-at-all")}
NOT_CREDENTIALS = [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer abc"},
    {"Authorization": "Basic !!!not-base64"},
    {"Authorization": "Basic " + base64.b64encode(b"admin-without-colon").decode()},
    {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:x").decode()},  # not UTF-8
    {"Authorization": "Basic " + base64.b64encode(b"admin:" + b"x" * 2000).decode()},  # oversized
    {"Authorization": "Digest username=admin"},
]


@pytest.fixture
def secret_reads(aws):  # type: ignore[no-untyped-def]
    """Counts GetSecretValue calls of the admin secret, as botocore sends them to moto."""
    reads: list[str] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        if params.get("SecretId") == aws.admin_secret:
            reads.append(params["SecretId"])

    events = root.aws_client("secretsmanager").meta.events
    events.register("before-parameter-build.secrets-manager.GetSecretValue", count)
    return reads


def set_admin_password(aws, password: str) -> None:  # type: ignore[no-untyped-def]
    aws.client("secretsmanager").put_secret_value(
        SecretId=aws.admin_secret, SecretString=json.dumps({"username": "admin", "password": password}))


def metrics_emitted(stdout: str) -> Counter[str]:
    """Powertools' EMF lines on stdout → metric name → total."""
    totals: Counter[str] = Counter()
    for line in stdout.splitlines():
        if '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for group in blob["_aws"]["CloudWatchMetrics"]:
            for metric in group["Metrics"]:
                value = blob[metric["Name"]]
                totals[metric["Name"]] += int(sum(value) if isinstance(value, list) else value)
    return totals


# --- 1. the password ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/status.json"])
def test_a_request_without_credentials_never_reads_the_admin_secret(aws, secret_reads, path) -> None:
    for headers in NOT_CREDENTIALS:
        response = flows.anonymous("admin", "GET", path, headers=headers)  # a script: 401 and the challenge
        assert response["statusCode"] == 401, headers
        assert flows.header(response, "WWW-Authenticate").startswith("Basic ")
        browser = flows.anonymous("admin", "GET", path, headers={**headers, "Accept": flows.BROWSER_ACCEPT})
        assert browser["statusCode"] == 303, headers  # a browser: to the sign-in form
        assert flows.header(browser, "Location") == "/prod/signin"
    for cookie in ("keaplink_session=nonsense", "__Host-keaplink_session=v1.admin.1.x.y", "other=1"):
        assert flows.anonymous("admin", "GET", path, headers={"Cookie": cookie})["statusCode"] == 401
    assert secret_reads == []


def test_the_callback_never_reads_the_admin_secret(aws, secret_reads) -> None:
    """Keap's redirect brings no session cookie (SameSite=Strict): the state cookie is the callback's proof."""
    for headers in NOT_CREDENTIALS:
        response = flows.anonymous("callback", "GET", "/callback", {"code": "c", "state": "s"}, headers=headers)
        assert response["statusCode"] == 400 and "not valid" in response["body"], headers
    assert secret_reads == []


def test_without_credentials_the_answer_is_401_even_when_the_secret_is_gone(aws) -> None:
    aws.client("secretsmanager").delete_secret(SecretId=aws.admin_secret, ForceDeleteWithoutRecovery=True)
    root.reset()
    assert flows.anonymous("admin", "GET", "/")["statusCode"] == 401  # not a 500: the secret was never asked


def test_wrong_guesses_cost_one_secret_read_per_container_and_cache_period(aws, secret_reads) -> None:
    for _ in range(5):
        assert flows.anonymous("admin", "GET", "/", headers=WRONG)["statusCode"] == 401
    assert flows.anonymous("admin", "GET", "/", headers=RIGHT)["statusCode"] == 200
    assert len(secret_reads) == 1


def test_a_rotated_password_counts_once_the_cache_expires(aws, secret_reads, monkeypatch) -> None:
    old, new = ADMIN_PASSWORD, "a-brand-new-admin-password"
    assert flows.anonymous("admin", "GET", "/", headers=RIGHT)["statusCode"] == 200
    set_admin_password(aws, new)
    # Within the cache period a warm container still knows only the old password …
    assert flows.anonymous("admin", "GET", "/", headers={"Authorization": basic("admin", old)})["statusCode"] == 200
    # … and 5 minutes later only the new one.
    cache = root.admin_password
    started = cache.clock()
    monkeypatch.setattr(cache, "clock", lambda: started + root.ADMIN_SECRET_TTL_S + 1)
    assert flows.anonymous("admin", "GET", "/", headers={"Authorization": basic("admin", new)})["statusCode"] == 200
    assert flows.anonymous("admin", "GET", "/", headers={"Authorization": basic("admin", old)})["statusCode"] == 401
    assert len(secret_reads) == 2


def test_a_too_short_password_refuses_everyone_with_a_clear_error(aws) -> None:
    set_admin_password(aws, "short-pass-14c")  # 14 characters
    root.reset()
    for headers in (RIGHT, {"Authorization": basic("admin", "short-pass-14c")}):
        response = flows.anonymous("admin", "GET", "/", headers=headers)
        assert response["statusCode"] == 500
        assert "shorter than 15 characters" in response["body"] and "ADMIN_SECRET" in response["body"]
    assert flows.anonymous("admin", "GET", "/")["statusCode"] == 401  # no credentials: refused as always


def template() -> dict[str, Any]:
    return load_template()


def test_the_template_refuses_a_short_admin_password_but_allows_a_generated_one() -> None:
    param = template()["Parameters"]["AdminPassword"]
    pattern = re.compile(param["AllowedPattern"])
    assert pattern.fullmatch("")  # empty: the template generates a 32-character password
    assert pattern.fullmatch("x" * 15) and pattern.fullmatch("correct horse battery staple")
    assert not pattern.fullmatch("x" * 14)
    assert "15" in param["ConstraintDescription"]


# --- 2. the sign-in form and the session ------------------------------------------------------------------
def test_a_browser_signs_in_with_the_form_uses_the_session_and_signs_out(aws, capsys) -> None:
    page = flows.anonymous("admin", "GET", "/signin", headers={"Accept": flows.BROWSER_ACCEPT})
    assert page["statusCode"] == 200
    for field in ("name='username' autocomplete='username'", "type='password' id='password' name='password' "
                  "autocomplete='current-password'", "action='/prod/signin'"):
        assert field in page["body"]
    signed_in = flows.sign_in_form_post(ADMIN_PASSWORD)
    assert signed_in["statusCode"] == 303 and flows.header(signed_in, "Location") == "/prod/"
    cookie = flows.header(signed_in, "Set-Cookie")
    assert cookie.startswith("__Host-keaplink_session=v1.admin.")  # served over HTTPS (X-Forwarded-Proto)
    assert {"HttpOnly", "Secure", "SameSite=Strict", "Path=/", "Max-Age=28800"} <= set(cookie.split("; "))
    session = {"Cookie": cookie.split(";")[0], "Accept": flows.BROWSER_ACCEPT}
    status = flows.anonymous("admin", "GET", "/", headers=session)
    assert status["statusCode"] == 200 and "id='sign-out'" in status["body"]
    assert flows.anonymous("admin", "POST", "/refresh", headers=session)["statusCode"] == 409  # in, not connected
    out = flows.anonymous("admin", "POST", "/signout", headers=session)
    assert out["statusCode"] == 303 and flows.header(out, "Location") == "/prod/signin?done=signed_out"
    assert flows.header(out, "Set-Cookie").startswith("__Host-keaplink_session=; Max-Age=0;")
    assert "You are signed out." in flows.anonymous("admin", "GET", "/signin", {"done": "signed_out"})["body"]
    assert metrics_emitted(capsys.readouterr().out)["AdminSignedIn"] == 1


def test_a_wrong_password_in_the_form_is_counted_and_shown_as_a_fixed_text(aws) -> None:
    wrong = flows.sign_in_form_post("not-the-password-at-all", source_ip="203.0.113.20")
    assert wrong["statusCode"] == 401 and "Wrong user name or password." in wrong["body"]
    assert flows.header(wrong, "Set-Cookie") is None and "not-the-password" not in wrong["body"]
    assert root.failed_sign_ins().load("203.0.113.20").failures == 1
    empty = flows.anonymous("admin", "POST", "/signin", headers={"Content-Type": "application/x-www-form-urlencoded"},
                            body="username=&password=")
    assert empty["statusCode"] == 400 and "Enter the user name and the password." in empty["body"]
    cross = flows.sign_in_form_post(ADMIN_PASSWORD, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross["statusCode"] == 403 and flows.header(cross, "Set-Cookie") is None  # no login CSRF


def test_a_session_ends_with_a_new_password_and_is_never_a_script_s_credential_elsewhere(aws, monkeypatch) -> None:
    cookie = flows.header(flows.sign_in_form_post(ADMIN_PASSWORD), "Set-Cookie").split(";")[0]
    assert flows.anonymous("admin", "GET", "/status.json", headers={"Cookie": cookie})["statusCode"] == 200
    set_admin_password(aws, "a-brand-new-admin-password")
    root.reset()  # a new container, or the 5-minute cache run out
    assert flows.anonymous("admin", "GET", "/status.json", headers={"Cookie": cookie})["statusCode"] == 401
    plain = cookie.replace("__Host-keaplink_session", "keaplink_session")  # the name for plain HTTP only
    assert flows.anonymous("admin", "GET", "/status.json", headers={"Cookie": plain})["statusCode"] == 401


# --- 3. guessing ----------------------------------------------------------------------------------------
def test_ten_wrong_passwords_lock_the_source_out(aws, secret_reads, capsys) -> None:
    capsys.readouterr()
    for _ in range(10):
        assert flows.anonymous("admin", "GET", "/", headers=WRONG, source_ip="203.0.113.9")["statusCode"] == 401
    locked = flows.anonymous("admin", "GET", "/", headers=RIGHT, source_ip="203.0.113.9")  # even the right one
    assert locked["statusCode"] == 429
    assert 880 <= int(flows.header(locked, "Retry-After")) <= 900
    assert "Too many failed sign-ins" in locked["body"] and "15 more minutes" in locked["body"]
    assert flows.header(locked, "WWW-Authenticate") is None
    form = flows.sign_in_form_post(ADMIN_PASSWORD, source_ip="203.0.113.9")  # the sign-in form is locked too
    assert form["statusCode"] == 429 and flows.header(form, "Set-Cookie") is None
    # Another address is not affected; a request without credentials is not a guess and not counted.
    assert flows.anonymous("admin", "GET", "/", headers=RIGHT, source_ip="198.51.100.7")["statusCode"] == 200
    assert flows.anonymous("admin", "GET", "/", source_ip="198.51.100.7")["statusCode"] == 401
    emitted = metrics_emitted(capsys.readouterr().out)
    assert emitted["AdminAuthRejected"] == 10 and emitted["AdminLockedOut"] == 2


def test_the_failure_count_is_stored_per_hashed_source_with_a_ttl(aws) -> None:
    for _ in range(3):
        flows.anonymous("admin", "GET", "/", headers=WRONG, source_ip="203.0.113.9")
    flows.anonymous("admin", "GET", "/", source_ip="192.0.2.1")  # no credentials: nothing stored
    items = aws.client("dynamodb").scan(TableName=aws.connection_table)["Items"]
    keys = [i["pk"]["S"] for i in items]
    expected = "AUTHFAIL#" + hashlib.sha256(b"203.0.113.9").hexdigest()[:32]
    assert keys == [expected]
    assert items[0]["failures"]["N"] == "3" and int(items[0]["ttl"]["N"]) > int(float(items[0]["window_until"]["N"]))
    assert "203.0.113.9" not in json.dumps(items)


def test_the_lock_ends_with_its_window(aws) -> None:
    for _ in range(10):
        flows.anonymous("admin", "GET", "/", headers=WRONG, source_ip="203.0.113.9")
    assert flows.anonymous("admin", "GET", "/", headers=RIGHT, source_ip="203.0.113.9")["statusCode"] == 429
    item = root.connection_table().get("AUTHFAIL#" + hashlib.sha256(b"203.0.113.9").hexdigest()[:32])
    item.update(actions=[root.connection_table().window_until.set(1.0)])  # the window is over
    assert flows.anonymous("admin", "GET", "/", headers=RIGHT, source_ip="203.0.113.9")["statusCode"] == 200
    assert flows.anonymous("admin", "GET", "/", headers=WRONG, source_ip="203.0.113.9")["statusCode"] == 401
    assert root.failed_sign_ins().load("203.0.113.9").failures == 1  # a new window


@pytest.fixture
def atomic_dynamodb_updates(monkeypatch):  # type: ignore[no-untyped-def]
    """DynamoDB applies a conditional write to an item atomically; the moto server answers each request on
    its own thread and checks a condition and applies the update without a lock, so two racing requests
    could both pass. This gives moto (in this process) the atomicity DynamoDB has, and nothing more."""
    import threading

    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.Lock()
    update_item = DynamoDBBackend.update_item

    def atomic(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        with lock:
            return update_item(self, *args, **kwargs)

    monkeypatch.setattr(DynamoDBBackend, "update_item", atomic)


def test_forty_concurrent_guesses_from_one_source_get_at_most_ten_comparisons(
        aws, atomic_dynamodb_updates, monkeypatch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import keaplink.admin.gate as gate_module
    from keaplink.admin.gate import LockedOut, Refusal, Refused

    compared: list[str] = []
    match = gate_module.credentials_match
    monkeypatch.setattr(gate_module, "credentials_match",
                        lambda creds, password: compared.append(creds[1]) or match(creds, password))
    gate = root.admin_gate()
    gate.password()  # the cached secret, read once before the race (as a warm container has it)
    root.failed_sign_ins()
    source = "203.0.113.40"
    guesses = [basic("admin", f"guess-number-{i:04d}") for i in range(40)]
    with ThreadPoolExecutor(max_workers=40) as pool:
        verdicts = list(pool.map(lambda header: gate.check(header, None, source), guesses))
    refused = [v for v in verdicts if v == Refused(Refusal.WRONG_CREDENTIALS)]
    locked = [v for v in verdicts if isinstance(v, LockedOut)]
    assert len(compared) == len(refused) == 10 and len(locked) == 30
    assert root.failed_sign_ins().load(source).failures == 10  # the count never passed the limit
    assert isinstance(gate.check(f"{RIGHT['Authorization']}", None, source), LockedOut)  # the lock holds
    assert len(compared) == 10  # and the right password was not compared either


def test_a_right_password_under_the_limit_works_and_gives_its_count_back(aws) -> None:
    for _ in range(9):
        flows.anonymous("admin", "GET", "/", headers=WRONG, source_ip="203.0.113.41")
    for _ in range(25):  # a script that signs in often never uses up the window
        assert flows.anonymous("admin", "GET", "/status.json", headers=RIGHT,
                               source_ip="203.0.113.41")["statusCode"] == 200
    assert root.failed_sign_ins().load("203.0.113.41").failures == 9
    assert flows.anonymous("admin", "GET", "/", headers=WRONG, source_ip="203.0.113.41")["statusCode"] == 401
    assert flows.anonymous("admin", "GET", "/", headers=RIGHT, source_ip="203.0.113.41")["statusCode"] == 429


def test_the_template_throttles_the_callback_apart_and_alarms_on_rejected_sign_ins() -> None:
    resources = template()["Resources"]
    settings = resources["AdminApi"]["Properties"]["MethodSettings"]
    by_path = {(s["ResourcePath"], s["HttpMethod"]): s for s in settings}
    admin_routes = {("/", "GET"), ("/~1status.json", "GET"), ("/~1connect", "GET"), ("/~1refresh", "POST"),
                    ("/~1tokens", "POST")}
    assert admin_routes | {("/~1callback", "GET")} <= set(by_path)  # each method its own bucket
    callback = by_path[("/~1callback", "GET")]
    assert all(callback["ThrottlingRateLimit"] > 0 and by_path[r]["ThrottlingRateLimit"] > 0 for r in admin_routes)
    alarm = resources["AdminAuthRejectedAlarm"]["Properties"]
    assert alarm["MetricName"] == "AdminAuthRejected" and alarm["Namespace"] == "keaplink"
    assert alarm["AlarmActions"] == [{"Ref": "AlertsTopic"}]


# --- 3. headers and the text on pages ------------------------------------------------------------------
def answers(sandbox) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """One answer of every kind the admin functions give."""
    out = {
        "status page": flows.call("admin", "GET", "/"),
        "status.json": flows.call("admin", "GET", "/status.json"),
        "connect redirect": flows.call("admin", "GET", "/connect"),
        "refresh with nothing connected (error page)": flows.call("admin", "POST", "/refresh"),
        "no credentials": flows.anonymous("admin", "GET", "/"),
        "cross-site post": flows.call("admin", "POST", "/refresh", headers={"Sec-Fetch-Site": "cross-site"}),
        "callback error page": flows.call("callback", "GET", "/callback", {"state": "x", "code": "y"}),
        "unknown route": flows.call("admin", "GET", "/nope"),
    }
    flows.connect()
    out["refresh redirect"] = flows.call("admin", "POST", "/refresh")
    for _ in range(10):
        flows.anonymous("admin", "GET", "/", headers=WRONG, source_ip="203.0.113.9")
    out["locked out"] = flows.anonymous("admin", "GET", "/", headers=WRONG, source_ip="203.0.113.9")
    return out


def test_every_answer_carries_the_security_headers(aws, sandbox) -> None:
    got = answers(sandbox)
    assert {r["statusCode"] for r in got.values()} == {200, 302, 303, 400, 401, 403, 404, 409, 429}
    for kind, response in got.items():
        csp = flows.header(response, "Content-Security-Policy") or ""
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp, kind
        assert flows.header(response, "X-Content-Type-Options") == "nosniff", kind
        assert flows.header(response, "Referrer-Policy") == "no-referrer", kind
        assert flows.header(response, "Cache-Control") == "no-store", kind
        assert flows.header(response, "Strict-Transport-Security") == "max-age=31536000", kind
        assert flows.header(response, "X-Frame-Options") == "DENY", kind


def test_no_hsts_over_plain_http(aws) -> None:
    response = flows.call("admin", "GET", "/", headers={"X-Forwarded-Proto": "http"})
    assert response["statusCode"] == 200
    assert flows.header(response, "Strict-Transport-Security") is None
    assert "frame-ancestors 'none'" in flows.header(response, "Content-Security-Policy")


def test_the_csp_allows_exactly_the_page_s_own_stylesheet(aws) -> None:
    response = flows.call("admin", "GET", "/")
    styles = re.findall(r"<style>(.*?)</style>", response["body"], re.S)
    assert len(styles) == 1 and " style=" not in response["body"]  # no inline style attributes either
    digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in flows.header(response, "Content-Security-Policy")
    assert "<script" not in response["body"]


def test_the_status_page_shows_only_notices_keaplink_chose(aws) -> None:
    bait = "Your Keap account is suspended: call +1 555 0100"
    page = flows.call("admin", "GET", "/", {"message": bait, "done": bait})["body"]
    assert "Suspended" not in page and "555" not in page and "id='message'" not in page
    assert "Keap connected." in flows.call("admin", "GET", "/", {"done": "connected"})["body"]


@pytest.mark.parametrize(("error", "shown"), [
    ("access_denied", "Keap reported that access was denied."),
    ("server_error", "Keap reported an error on its side"),
    ("made_up_error", "Keap reported an error keaplink does not know."),
])
def test_the_callback_error_page_names_keap_s_error_by_code_only(aws, sandbox, caplog, error, shown) -> None:
    location, cookie = flows.start_connect()
    state = dict(p.split("=", 1) for p in location.split("?", 1)[1].split("&"))["state"]
    bait = "Call our support line at +1 555 0100 to restore access"
    response = flows.callback({"state": state, "error": error, "error_description": bait}, cookie)
    assert response["statusCode"] == 403 and shown in response["body"]
    assert "555" not in response["body"] and error not in response["body"]
    assert any(bait in str(r.__dict__) for r in caplog.records)  # the raw text is in the log, for the operator
