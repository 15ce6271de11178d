"""Throttles and quotas (KEAP.md "Throttles and quotas"): headers, counting, 429, Retry-After."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from keap_sandbox.testing import SandboxControlError, SandboxHandle
from tests.sandbox.sandbox_helpers import Api

QUOTA_ERRORCODE = "policies.ratelimit.QuotaViolation"


def test_headers_on_every_rest_response(api: Api, sb: SandboxHandle) -> None:
    r = api.get("/v2/tags")
    h = r.headers
    assert h["x-keap-product-throttle-limit"] == "1500"
    assert h["x-keap-product-throttle-time-unit"] == "minute"
    assert h["x-keap-product-throttle-interval"] == "1"
    assert h["x-keap-product-quota-limit"] == "150000"
    assert h["x-keap-product-quota-time-unit"] == "day"
    assert h["x-keap-product-quota-interval"] == "1"
    assert h["x-keap-tenant-id"] == "sb123.infusionsoft.com"
    assert h["x-keap-tenant-throttle-limit"] == "10000|250000"
    assert h["x-keap-tenant-throttle-time-unit"] == "minute|day"
    assert h["x-keap-tenant-throttle-interval"] == "1|1"
    assert "x-keap-product-spike-limit" not in h  # only for PAT/SAK
    now = datetime.fromtimestamp(sb.control.clock(), tz=UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    assert int(h["x-keap-product-quota-expiry-time"]) == int(midnight.timestamp() * 1000)
    # errors carry them too
    assert "x-keap-product-throttle-used" in api.get("/v2/contacts/999").headers


def test_counts_move(api: Api, sb: SandboxHandle) -> None:
    sb.control.advance_clock(60 - sb.control.clock() % 60 + 1)  # stay inside one minute window
    used = [int(api.get("/v2/tags").headers["x-keap-product-throttle-used"]) for _ in range(3)]
    assert used == [1, 2, 3]
    h = api.get("/v2/tags").headers
    assert h["x-keap-product-throttle-available"] == "1496"
    assert h["x-keap-product-quota-used"] == "4"
    assert h["x-keap-product-quota-available"] == "149996"
    assert h["x-keap-tenant-throttle-used"] == "4|4"
    assert h["x-keap-tenant-throttle-available"] == "9996|249996"
    # a new minute resets the minute counters, not the day counters
    sb.control.advance_clock(60)
    h = api.get("/v2/tags").headers
    assert h["x-keap-product-throttle-used"] == "1"


def test_minute_limit_gives_429_with_retry_after(api: Api, sb: SandboxHandle) -> None:
    sb.control.configure(throttle=True, limits={"oauth_per_minute": 3})
    sb.control.advance_clock(60 - sb.control.clock() % 60 + 1)
    assert [api.get("/v2/tags").status_code for _ in range(3)] == [200, 200, 200]
    r = api.get("/v2/tags")
    assert r.status_code == 429
    fault = r.json()["fault"]
    assert fault["detail"]["errorcode"] == QUOTA_ERRORCODE
    assert fault["faultstring"].startswith("Rate limit quota violation. Quota limit  exceeded. Identifier : ")
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert r.headers["x-keap-product-throttle-available"] == "0"
    # rejected requests are not counted; the next minute is free again
    sb.control.advance_clock(60)
    assert api.get("/v2/tags").status_code == 200


def test_retry_after_can_be_switched_off(sb: SandboxHandle) -> None:
    now = sb.control.clock()
    sb.control.set_clock(now - now % 86400 + 86400 - 120)  # two minutes before 00:00 UTC
    api = Api(sb, token=sb.control.obtain_tokens("https://app.example.test/cb")["access_token"])
    sb.control.configure(throttle=True, limits={"oauth_per_day": 1}, send_retry_after=False)
    assert api.get("/v2/tags").status_code == 200
    r = api.get("/v2/tags")
    assert r.status_code == 429
    assert "Retry-After" not in r.headers
    sb.control.advance_clock(180)  # the day quota resets at 00:00 UTC
    assert api.get("/v2/tags").status_code == 200


def test_throttle_off_counts_but_never_429(api: Api, sb: SandboxHandle) -> None:
    sb.control.configure(throttle=False, limits={"oauth_per_minute": 1})
    codes = [api.get("/v2/tags").status_code for _ in range(3)]
    assert codes == [200, 200, 200]


def test_tenant_limit_spans_credentials(sb: SandboxHandle, api: Api) -> None:
    sb.control.configure(throttle=True, limits={"tenant_per_minute": 2})
    sb.control.advance_clock(60 - sb.control.clock() % 60 + 1)
    key_api = Api(sb, key=sb.control.create_key("sak"))
    assert api.get("/v2/tags").status_code == 200
    assert key_api.get("/v2/tags").status_code == 200
    r = key_api.get("/v2/tags")
    assert r.status_code == 429
    assert "sb123.infusionsoft.com" in r.json()["fault"]["faultstring"]


def test_key_limits(sb: SandboxHandle) -> None:
    sb.control.configure(throttle=True, limits={"key_per_minute": 2})
    sb.control.advance_clock(60 - sb.control.clock() % 60 + 1)
    key_api = Api(sb, key=sb.control.create_key("pat"))
    assert [key_api.get("/v2/tags").status_code for _ in range(3)] == [200, 200, 429]
    # another key has its own budget
    assert Api(sb, key=sb.control.create_key("pat")).get("/v2/tags").status_code == 200


def test_per_second_limit_uses_real_time(sb: SandboxHandle) -> None:
    # timing-sensitive (8 requests inside one real second on a shared machine): the contract check,
    # which serializes requests for a few ms each, is not what is tested here
    sb.control.configure(throttle=True, limits={"key_per_second": 5}, validate_contract=False)
    key = sb.control.create_key("sak")

    def call(_: int) -> int:
        return Api(sb, key=key).get("/v2/tags").status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(call, range(8)))
    assert codes.count(200) == 5 and codes.count(429) == 3
    time.sleep(1.05)
    assert call(0) == 200


def test_spike_limit_for_oauth(sb: SandboxHandle, api: Api) -> None:
    sb.control.configure(throttle=True, limits={"spike_per_second": 3})
    codes = [api.get("/v2/tags").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]


def test_token_endpoint_not_throttled(sb: SandboxHandle) -> None:
    sb.control.configure(throttle=True, limits={"spike_per_second": 0, "oauth_per_minute": 0})
    tok = sb.control.obtain_tokens("https://app.example.test/cb")
    assert tok["access_token"]
    assert Api(sb, token=tok["access_token"]).get("/v2/tags").status_code == 429


def test_bad_limits_rejected(sb: SandboxHandle) -> None:
    from keap_sandbox.testing import SandboxControlError

    for bad in ({"limits": {"nope": 1}}, {"limits": {"oauth_per_minute": -1}}, {"throttle": "yes"}, {"client_id": "x"}):
        try:
            sb.control.configure(**bad)
        except SandboxControlError as exc:
            assert exc.status == 400
        else:
            raise AssertionError(f"accepted {bad}")


def _next_midnight_ms(epoch: float) -> int:
    now = datetime.fromtimestamp(epoch, tz=UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    return int(midnight.timestamp() * 1000)


def test_spent_daily_quota_answers_429_until_it_resets(api: Api, sb: SandboxHandle) -> None:
    """A spent *daily* quota keeps answering 429 until 00:00 UTC (KEAP.md): hours, not seconds. Tests set
    the counter through the control API instead of sending 150,000 requests."""
    now = sb.control.clock()
    sb.control.set_clock(now - now % 86400 + 86400 - 3 * 3600)  # 21:00 UTC
    sb.control.configure(throttle=True)
    spent = sb.control.spend_quota("oauth_per_day")
    assert spent["used"] == 150000 and spent["identity"] == sb.client_id
    r = api.get("/v2/tags")
    assert r.status_code == 429
    assert r.json()["fault"]["detail"]["errorcode"] == QUOTA_ERRORCODE
    reset_ms = _next_midnight_ms(sb.control.clock())
    assert spent["resets_at_ms"] == reset_ms
    assert int(r.headers["x-keap-product-quota-expiry-time"]) == reset_ms
    assert r.headers["x-keap-product-quota-available"] == "0"
    assert r.headers["x-keap-product-quota-used"] == "150000"
    assert 3 * 3600 - 5 <= int(r.headers["Retry-After"]) <= 3 * 3600
    sb.control.advance_clock(2 * 3600)
    assert api.get("/v2/tags").status_code == 429  # still spent an hour before midnight
    sb.control.advance_clock(3600 + 5)
    r = api.get("/v2/tags")
    assert r.status_code == 200 and r.headers["x-keap-product-quota-used"] == "1"


def test_quota_can_be_set_partly_spent_for_keys_and_tenant(sb: SandboxHandle) -> None:
    key = sb.control.create_key("sak")
    key_api = Api(sb, key=key)
    sb.control.configure(throttle=True)
    sb.control.spend_quota("key_per_day", used=29999, key=key)
    r = key_api.get("/v2/tags")
    assert r.status_code == 200 and r.headers["x-keap-product-quota-available"] == "0"
    assert key_api.get("/v2/tags").status_code == 429
    sb.control.spend_quota("tenant_per_day", used=0)
    sb.control.spend_quota("key_per_day", used=0, key=key)
    assert key_api.get("/v2/tags").status_code == 200
    sb.control.spend_quota("tenant_per_minute")
    r = key_api.get("/v2/tags")
    assert r.status_code == 429 and "sb123.infusionsoft.com" in r.json()["fault"]["faultstring"]
    for bad in ({"limit": "spike_per_second"}, {"limit": "key_per_day"}, {"limit": "oauth_per_day", "used": -1}):
        try:
            sb.control._call("POST", "/quota", bad)
        except SandboxControlError as exc:
            assert exc.status == 400
        else:
            raise AssertionError(f"accepted {bad}")


def test_429_in_v2_shape(api: Api, sb: SandboxHandle) -> None:
    sb.control.configure(throttle=True, gateway_error_shape="v2", send_retry_after=False)
    sb.control.spend_quota("oauth_per_day")
    r = api.get("/v2/tags")
    assert r.status_code == 429 and "Retry-After" not in r.headers
    assert r.json() == {"code": 429, "message": "Quota Exceeded", "status": "Request Throttled", "details": []}
    assert sb.control.contract_violations() == []  # checked against Error, which it satisfies


def test_the_spike_window_counts_arrivals_even_when_checked_out_of_order() -> None:
    from keap_sandbox.throttle import DEFAULT_LIMITS, Throttle

    throttle = Throttle()
    limits = {**DEFAULT_LIMITS, "spike_per_second": 2}

    def check(arrived: float) -> bool:
        return throttle.check(auth_kind="oauth", identity="c", tenant="t", now=0.0, mono=arrived, limits=limits,
                              enforce=True).allowed

    assert check(5.0) and check(5.5)
    assert not check(4.9)  # arrived first, checked last: (4.5, 5.5] would hold three
    assert check(6.05)  # (5.05, 6.05] holds 5.5 only
