"""The local system as a user drives it: HTTP, the CLI, `make invoke`, and a real browser."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import OUTPUT, REPO, LocalStack

pytestmark = pytest.mark.e2e


def auth(stack: LocalStack) -> tuple[str, str]:
    return stack["admin_user"], stack["admin_password"]


def sandbox_state(stack: LocalStack) -> dict:
    return requests.get(f"{stack['keap_sandbox_url']}/_sandbox/state", timeout=10).json()


def test_local_json_has_everything_scripts_need(local_stack: LocalStack) -> None:
    for key in ("admin_url", "callback_url", "queue_url", "dlq_url", "aws_endpoint_url", "keap_authorize_url",
                "keap_token_url", "keap_api_url", "admin_user", "admin_password"):
        assert local_stack[key], key
    assert local_stack["callback_url"] == local_stack["admin_url"] + "callback"


def test_admin_url_needs_the_password(local_stack: LocalStack) -> None:
    url = local_stack["admin_url"]
    assert requests.get(url, timeout=30).status_code == 401
    assert requests.get(url, auth=("admin", "wrong"), timeout=30).status_code == 401
    page = requests.get(url, auth=auth(local_stack), timeout=30)
    assert page.status_code == 200 and "keaplink" in page.text
    assert local_stack["callback_url"] in page.text  # the exact redirect URI to register


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    if not shutil.which("chromium") or not shutil.which("chromedriver"):
        pytest.fail("chromium/chromedriver missing: run `make browser` (make test does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=430,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or ""), options=options)
    yield driver
    driver.quit()


def sign_in(browser, stack: LocalStack) -> None:  # type: ignore[no-untyped-def]
    """Open the admin URL and sign in as a person does: the form, typed into, submitted."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    browser.get(stack["admin_url"])
    wait.until(ec.element_to_be_clickable((By.ID, "sign-in")))  # sent to the sign-in form
    assert browser.current_url == stack["admin_url"] + "signin"
    user, password = auth(stack)
    browser.find_element(By.ID, "username").send_keys(user)
    browser.find_element(By.ID, "password").send_keys(password)
    browser.save_screenshot(str(OUTPUT / "sign-in.png"))
    browser.find_element(By.ID, "sign-in").click()
    wait.until(ec.presence_of_element_located((By.ID, "status")))


def test_connect_keap_in_a_browser(local_stack: LocalStack, browser) -> None:  # type: ignore[no-untyped-def]
    """Sign in, connect Keap on Keap's own (cross-site) consent page, come back signed in, sign out."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    browser.get(local_stack["admin_url"])
    wrong = browser.find_element(By.ID, "password")  # a wrong password first: the form again, with why
    browser.find_element(By.ID, "username").send_keys("admin")
    wrong.send_keys("not-the-password-at-all")
    browser.find_element(By.ID, "sign-in").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "error"), "Wrong user name or password."))
    sign_in(browser, local_stack)
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "Not connected"))
    cookies = {c["name"]: c for c in browser.get_cookies()}
    assert cookies["keaplink_session"]["httpOnly"] and cookies["keaplink_session"]["sameSite"] == "Strict"
    browser.save_screenshot(str(OUTPUT / "status-before.png"))
    browser.find_element(By.ID, "connect").click()
    wait.until(ec.element_to_be_clickable((By.ID, "allow")))  # the (sandbox) Keap consent page
    assert browser.current_url.startswith(local_stack["keap_authorize_url"].split("/app/")[0])  # another site
    browser.save_screenshot(str(OUTPUT / "keap-consent.png"))
    browser.find_element(By.ID, "allow").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "Connected"))  # still signed in
    assert "Keap connected." in browser.find_element(By.ID, "message").text
    assert "sb123.infusionsoft.com" in browser.page_source
    browser.save_screenshot(str(OUTPUT / "status-connected.png"))
    status = requests.get(local_stack["admin_url"] + "status.json", auth=auth(local_stack), timeout=30).json()
    assert status["status"] == "connected" and status["tenant"] == "sb123.infusionsoft.com"
    from datetime import datetime

    expires = datetime.fromisoformat(status["expires_at"].replace("Z", "+00:00")).timestamp()
    assert abs(expires - (time.time() + 86400)) < 300  # Keap's expires_in, stored as an absolute time
    browser.find_element(By.ID, "sign-out").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "message"), "You are signed out."))
    browser.get(local_stack["admin_url"])  # signed out: the panel sends the browser to the form again
    wait.until(ec.element_to_be_clickable((By.ID, "sign-in")))
    assert "keaplink_session" not in {c["name"] for c in browser.get_cookies()}


def mint_pair(stack: LocalStack) -> dict[str, str]:
    """An access/refresh token pair as Keap's developer portal would give one (the sandbox's control API)."""
    pair: dict[str, str] = requests.post(f"{stack['keap_sandbox_url']}/_sandbox/tokens", timeout=10).json()
    return pair


def refresh_at_keap(stack: LocalStack, refresh_token: str) -> requests.Response:
    return requests.post(stack["keap_token_url"], data={"grant_type": "refresh_token", "refresh_token": refresh_token},
                         auth=("sandbox-client-id", "sandbox-client-secret"), timeout=10)


def test_import_a_token_pair_in_a_browser(local_stack: LocalStack, browser) -> None:  # type: ignore[no-untyped-def]
    """The status page's form: paste a pair made in Keap's developer portal, and keaplink keeps it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    pair = mint_pair(local_stack)
    wait = WebDriverWait(browser, 60)
    sign_in(browser, local_stack)  # the connect test signed out at its end
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "Connected"))
    assert browser.find_element(By.ID, "access_token").get_attribute("type") == "password"
    browser.find_element(By.ID, "access_token").send_keys(pair["access_token"])
    browser.find_element(By.ID, "refresh_token").send_keys(pair["refresh_token"])
    browser.save_screenshot(str(OUTPUT / "token-import-form.png"))
    browser.find_element(By.ID, "import-tokens").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "message"), "Token pair imported"))
    assert "Token pair imported" in browser.find_element(By.ID, "timeline").text
    assert browser.find_element(By.ID, "dead-letter-count").text.isdigit()  # the DLQ was read
    assert pair["refresh_token"] not in browser.page_source and pair["access_token"] not in browser.page_source
    browser.save_screenshot(str(OUTPUT / "token-import-done.png"))
    assert refresh_at_keap(local_stack, pair["refresh_token"]).json()["error"] == "invalid_grant"  # used up
    page = requests.get(local_stack["admin_url"], auth=auth(local_stack), timeout=30)
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff" and page.headers["Cache-Control"] == "no-store"


def keaplink_cli(stack: LocalStack, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO / "keaplink"), *args], check=False, cwd=REPO, env=stack.env(), capture_output=True,
                          text=True, timeout=120, input=stdin)


def test_connect_tokens_from_the_cli(local_stack: LocalStack) -> None:
    pair = mint_pair(local_stack)
    done = keaplink_cli(local_stack, "connect-tokens", stdin=f"{pair['access_token']}\n{pair['refresh_token']}\n")
    assert done.returncode == 0, done.stderr
    assert "connected: Keap app sb123.infusionsoft.com" in done.stdout
    refused = keaplink_cli(local_stack, "connect-tokens", stdin="made-up-access\nmade-up-refresh\n")
    assert refused.returncode == 1 and "Keap did not accept this token pair" in refused.stderr
    status = requests.get(local_stack["admin_url"] + "status.json", auth=auth(local_stack), timeout=30).json()
    assert status["status"] == "connected" and status["timeline"][0]["kind"] == "tokens_imported"


def wait_for_contacts(stack: LocalStack, email: str, what: str, done) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    """The sandbox's contacts with ``email`` once ``done`` says they are there (90 s at most)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        found = [c for c in sandbox_state(stack)["contacts"] if any(e["email"] == email for e in c["email_addresses"])]
        if done(found):
            return found
        time.sleep(1)
    raise AssertionError(f"{what} did not arrive: {sandbox_state(stack)}")


def test_events_from_the_cli_reach_keap(local_stack: LocalStack) -> None:
    # Runs after the browser test has connected Keap (tests in a file run in order).
    sent = keaplink_cli(local_stack, "send", "signup", "--user-id", "e2e-1", "--email", "e2e@example.com",
                        "--given-name", "Eve")
    assert sent.returncode == 0, sent.stderr
    # The user presses after signing up, as in the app (a press that overtakes its signup is returned to the
    # queue and comes back after the visibility timeout: tested in tests/integration/test_actions.py).
    wait_for_contacts(local_stack, "e2e@example.com", "contact", bool)
    assert keaplink_cli(local_stack, "send", "press", "--user-id", "e2e-1").returncode == 0
    found = wait_for_contacts(local_stack, "e2e@example.com", "tag", lambda cs: cs and cs[0].get("tag_ids"))
    assert found[0]["given_name"] == "Eve"
    refused = keaplink_cli(local_stack, "send", "signup", "--user-id", "x", "--email", "nope")
    assert refused.returncode == 2 and "invalid" in refused.stderr


def test_the_client_on_the_oldest_python_sends_an_event_that_reaches_keap(local_stack: LocalStack,
                                                                          tmp_path: Path) -> None:
    """What an application installs: the built client in a clean venv of the oldest supported Python on this
    machine, no checkout on its path; ``keaplink send`` finds the stack through its local.json like a user's."""
    from keaplink_dev.client_dist import build_wheel, client_env, install, interpreters

    version, python = next((v, p) for v, p in interpreters().items() if p)
    exe = install(python, tmp_path / "venv", build_wheel(tmp_path / "dist"))
    env = client_env(KEAPLINK_STATE_DIR=str(local_stack.state_dir))
    code = "import sys, keaplink; print('%d.%d' % sys.version_info[:2], keaplink.__file__)"
    where = subprocess.run([str(exe), "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                           check=True).stdout.split()
    assert where[0] == version and where[1].startswith(str(tmp_path / "venv"))
    sent = subprocess.run([str(exe.with_name("keaplink")), "send", "signup", "--user-id", "e2e-oldest", "--email",
                           "oldest@example.com", "--given-name", "Olga"], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False)
    assert sent.returncode == 0, sent.stderr
    [contact] = wait_for_contacts(local_stack, "oldest@example.com", "contact", bool)
    assert contact["given_name"] == "Olga"


INVOCATIONS = [
    ("AdminFunction", "events/admin-status-json.json", lambda p: p["statusCode"] == 200),
    ("CallbackFunction", "events/callback-bad-state.json", lambda p: p["statusCode"] == 400),
    ("RefreshFunction", "events/refresh-force.json", lambda p: p["outcome"] in ("refreshed", "not_connected")),
    ("ActionsFunction", "events/actions-signup.json", lambda p: "batchItemFailures" in p),
    ("ActionsFunction", "events/actions-hold-check.json", lambda p: p["outcome"] in ("not_held", "held", "resumed")),
]


@pytest.mark.parametrize(("function", "event", "check"), INVOCATIONS,
                         ids=[f"{i[0]}-{i[1].removeprefix('events/').removesuffix('.json')}" for i in INVOCATIONS])
def test_make_invoke_runs_each_function(local_stack: LocalStack, function: str, event: str, check) -> None:  # type: ignore[no-untyped-def]
    result = subprocess.run([sys.executable, "-m", "keaplink_dev.local.invoke", function, event], check=False, cwd=REPO,
                            env=local_stack.env(), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    payload_text = result.stdout.split("-- payload --", 1)[1].split("-- log --", 1)[0]
    assert check(json.loads(payload_text)), payload_text


def test_no_secret_in_function_logs(local_stack: LocalStack) -> None:
    """Every log line of every function so far: no admin password, no client secret."""
    sys.path.insert(0, str(REPO / "devtools"))
    from keaplink_dev.local.aws import client

    logs = client("logs", local_stack["aws_endpoint_url"])
    text = []
    for group in logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/")["logGroups"]:
        for event in logs.filter_log_events(logGroupName=group["logGroupName"]).get("events", []):
            text.append(event["message"])
    joined = "\n".join(text)
    assert len(text) > 10 and "Keap connected" in joined
    assert local_stack["admin_password"] not in joined
    assert "sandbox-client-secret" not in joined
    Path(OUTPUT / "function-logs.txt").write_text(joined)
