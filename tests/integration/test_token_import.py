"""Starting from a token pair made in Keap's developer portal: the status page's form and `keaplink
connect-tokens`, against the Keap sandbox (which mints such pairs) and a moto server, over HTTP."""

from __future__ import annotations

import io
import json
import time
from datetime import datetime
from urllib.parse import urlencode

import pytest
import requests

from keaplink import root
from keaplink.client import cli
from keaplink_dev.local import flows
from keaplink_dev.local.handlers import load_handler
from keaplink_dev.local.sqs_poller import drain, send
from tests.support.api_front import api_front

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def post_pair(access: str, refresh: str, headers: dict[str, str] | None = None) -> dict:  # type: ignore[type-arg]
    body = urlencode({"access_token": access, "refresh_token": refresh})
    return flows.call("admin", "POST", "/tokens", headers={**FORM, **(headers or {})}, body=body)


def stored() -> tuple[int, str | None, str | None]:
    token = (conn := root.token_store().load()).token
    return conn.version, token.access_token if token else None, token.refresh_token if token else None


def refresh_at_sandbox(sandbox, refresh_token: str) -> requests.Response:  # type: ignore[no-untyped-def]
    from tests.conftest import SANDBOX_CLIENT

    return requests.post(f"{sandbox.url}/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token},
                         auth=(SANDBOX_CLIENT["client_id"], SANDBOX_CLIENT["client_secret"]), timeout=10)


def keap_calls(sandbox) -> list[str]:  # type: ignore[no-untyped-def]
    return [f"{r['method']} {r['path']}" for r in sandbox.requests_log()]


def test_import_a_pair_and_keep_it_alive(aws, sandbox) -> None:
    pair = sandbox.control("POST", "tokens")
    sandbox.control("DELETE", "requests")
    response = post_pair(pair["access_token"], pair["refresh_token"])
    assert response["statusCode"] == 303 and flows.header(response, "Location") == "/prod/?done=imported"
    # One cheap call with the access token, then one refresh — nothing else at Keap.
    assert keap_calls(sandbox) == ["GET /crm/rest/v2/oauth/connect/userinfo", "POST /token"]
    status = flows.status_json()
    assert status["status"] == "connected" and status["tenant"] == "sb123.infusionsoft.com"
    assert status["connected_at"] and status["timeline"][0]["kind"] == "tokens_imported"
    expires = datetime.fromisoformat(status["expires_at"].replace("Z", "+00:00")).timestamp()
    assert abs(expires - (time.time() + 86400)) < 60  # known now: the refresh said expires_in
    version, access, refresh = stored()
    assert version == 1 and refresh != pair["refresh_token"] and access != pair["access_token"]
    # The pasted pair is used up: only keaplink holds the live one.
    assert refresh_at_sandbox(sandbox, pair["refresh_token"]).json()["error"] == "invalid_grant"
    page = flows.call("admin", "GET", "/", {"done": "imported"})["body"]
    assert "Token pair imported" in page and "id='import-tokens'" in page
    # From here on it is a connection like any other: the hourly check refreshes it when due …
    from keaplink.connection.refresh import Refresher
    from keaplink_dev.local.lambda_events import FakeContext

    sandbox.advance(22 * 3600)
    later = Refresher(root.token_store(), root.oauth_client(), clock=lambda: time.time() + 22 * 3600)
    assert load_handler("refresh").lambda_handler({}, FakeContext(), refresher=later)["outcome"] == "refreshed"
    # … and the actions use it.
    send(aws, json.dumps({"type": "user.signed_up", "user_id": "u1", "email": "ada@example.com"}))
    drain(aws, load_handler("actions").lambda_handler)
    assert len(sandbox.control("GET", "state")["contacts"]) == 1


def test_an_import_replaces_the_connection(aws, sandbox) -> None:
    flows.connect()
    version, access, _ = stored()
    pair = sandbox.control("POST", "tokens")
    assert post_pair(pair["access_token"], pair["refresh_token"])["statusCode"] == 303
    new_version, new_access, _ = stored()
    assert new_version == version + 1 and new_access != access


def test_a_pair_whose_access_token_expired_still_imports(aws, sandbox) -> None:
    pair = sandbox.control("POST", "tokens")
    sandbox.advance(25 * 3600)  # the access token died after a day; the refresh token lives 45 days
    assert post_pair(pair["access_token"], pair["refresh_token"])["statusCode"] == 303
    assert flows.status_json()["tenant"] == "sb123.infusionsoft.com"  # from the refresh's scope


CHECK_AND_REFRESH = ["GET /crm/rest/v2/oauth/connect/userinfo", "POST /token"]


def bad_pairs(sandbox) -> dict[str, tuple[tuple[str, str], str, list[str]]]:  # type: ignore[no-untyped-def]
    """Name → ((access, refresh), text on the 400 page, the calls that reached Keap)."""
    live = sandbox.control("POST", "tokens")
    shape = "These are not a Keap token pair"
    refused = "Keap did not accept this token pair"
    return {
        "not token characters": (("has spaces in it", live["refresh_token"]), shape, []),
        "missing refresh token": ((live["access_token"], ""), "the refresh token is missing", []),
        "the same token twice": ((live["access_token"], live["access_token"]), "are the same", []),
        "oversized": (("a" * 3000, live["refresh_token"]), "longer than 2048", []),
        "unknown refresh token": ((live["access_token"], "made-up-refresh-token"), refused, CHECK_AND_REFRESH),
        "both unknown": (("made-up-access-token", "made-up-refresh-token"), refused, CHECK_AND_REFRESH),
    }


@pytest.mark.parametrize("case", ["not token characters", "missing refresh token", "the same token twice",
                                  "oversized", "unknown refresh token", "both unknown"])
def test_a_bad_pair_changes_nothing(aws, sandbox, case: str) -> None:
    flows.connect()
    before = stored()
    (access, refresh), text, calls = bad_pairs(sandbox)[case]
    sandbox.control("DELETE", "requests")
    response = post_pair(access, refresh)
    assert response["statusCode"] == 400 and text in response["body"], response["body"][:500]
    assert "Nothing was" in response["body"]
    assert stored() == before
    assert keap_calls(sandbox) == calls  # a pair of the wrong shape never reaches Keap
    assert flows.status_json()["timeline"][0]["kind"] == "connected"  # no import recorded


def test_keap_down_before_the_refresh_spends_nothing(aws, sandbox) -> None:
    flows.connect()
    before = stored()
    pair = sandbox.control("POST", "tokens")
    sandbox.fault(path_prefix="/crm/rest", status=503, count=2)  # the check fails (and its one retry)
    response = post_pair(pair["access_token"], pair["refresh_token"])
    assert response["statusCode"] == 502 and "Keap could not be reached" in response["body"]
    assert stored() == before
    assert refresh_at_sandbox(sandbox, pair["refresh_token"]).status_code == 200  # the pair was not spent


def test_an_answer_lost_after_keap_rotated_stores_nothing_and_says_so(aws, sandbox) -> None:
    flows.connect()
    before = stored()
    pair = sandbox.control("POST", "tokens")
    sandbox.fault(path_prefix="/token", action="succeed_then_drop", count=1)
    response = post_pair(pair["access_token"], pair["refresh_token"])
    assert response["statusCode"] == 502 and "Keap did not confirm the token pair" in response["body"]
    assert "generate a new one" in response["body"]
    assert stored() == before


def test_a_pair_for_another_developer_app_is_refused(aws, sandbox) -> None:
    aws.client("secretsmanager").put_secret_value(
        SecretId=aws.credentials_secret, SecretString=json.dumps({"client_id": "another-app", "client_secret": "x"}))
    root.reset()
    pair = sandbox.control("POST", "tokens")
    response = post_pair(pair["access_token"], pair["refresh_token"])
    assert response["statusCode"] == 500 and "client id or secret" in response["body"]
    assert root.token_store().load().token is None


def test_the_form_is_refused_from_another_site_and_in_another_shape(aws, sandbox) -> None:
    pair = sandbox.control("POST", "tokens")
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}, {"Origin": "null"}):
        assert post_pair(pair["access_token"], pair["refresh_token"], headers)["statusCode"] == 403
    as_json = flows.call("admin", "POST", "/tokens", headers={"Content-Type": "application/json"},
                         body=json.dumps(pair))
    assert as_json["statusCode"] == 400 and "x-www-form-urlencoded" in as_json["body"]
    huge = flows.call("admin", "POST", "/tokens", headers=FORM, body="access_token=" + "a" * 20_000)
    assert huge["statusCode"] == 400
    assert root.token_store().load().token is None
    assert refresh_at_sandbox(sandbox, pair["refresh_token"]).status_code == 200  # never sent to Keap


def test_json_answers_for_scripts(aws, sandbox) -> None:
    pair = sandbox.control("POST", "tokens")
    ok = post_pair(pair["access_token"], pair["refresh_token"], {"Accept": "application/json"})
    assert ok["statusCode"] == 200
    assert json.loads(ok["body"]) == {"status": "connected", "tenant": "sb123.infusionsoft.com", "version": 1}
    bad = post_pair("x", "y", {"Accept": "application/json"})
    assert bad["statusCode"] == 400 and json.loads(bad["body"])["error"] == "Keap did not accept this token pair"


# --- the CLI ---------------------------------------------------------------------------------------------
@pytest.fixture
def admin_url(aws, monkeypatch):  # type: ignore[no-untyped-def]
    from keaplink_dev.local.moto_server import ADMIN_PASSWORD

    monkeypatch.chdir("/tmp")  # no .keaplink/local.json here
    monkeypatch.setenv("KEAPLINK_ADMIN_PASSWORD", ADMIN_PASSWORD)
    with api_front() as url:
        monkeypatch.setenv("KEAPLINK_ADMIN_URL", url)
        yield url


def test_cli_connect_tokens_from_stdin(admin_url, sandbox, monkeypatch, capsys) -> None:
    pair = sandbox.control("POST", "tokens")
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{pair['access_token']}\n{pair['refresh_token']}\n"))
    assert cli.main(["connect-tokens"]) == 0
    out = capsys.readouterr().out
    assert "connected: Keap app sb123.infusionsoft.com (token version 1)" in out
    assert pair["access_token"] not in out and pair["refresh_token"] not in out
    assert flows.status_json()["status"] == "connected"


def test_cli_connect_tokens_as_json_and_a_refused_pair(admin_url, sandbox, monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"access_token": "x1", "refresh_token": "y2"})))
    assert cli.main(["connect-tokens"]) == 1
    assert "error: Keap did not accept this token pair." in capsys.readouterr().err
    assert root.token_store().load().token is None


def test_cli_never_takes_tokens_from_the_command_line(admin_url, capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main(["connect-tokens", "--access-token", "abc", "--refresh-token", "def"])
    assert "unrecognized arguments" in capsys.readouterr().err


def test_cli_reads_two_lines_or_json() -> None:
    assert cli.read_pair(io.StringIO("  a1 \n\n b2\n"), interactive=False) == ("a1", "b2")
    as_json = io.StringIO('{"access_token": "a1", "refresh_token": "b2"}')
    assert cli.read_pair(as_json, interactive=False) == ("a1", "b2")
    with pytest.raises(SystemExit):
        cli.read_pair(io.StringIO("only-one-line"), interactive=False)
