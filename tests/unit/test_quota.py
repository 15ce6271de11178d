"""Keap's daily quota headers, and the pure pacing that keeps keaplink off the wall of a spent quota."""

from __future__ import annotations

from keaplink.keap.quota import MIN_PACED_RPS, Quota, QuotaGauge, pace

MIDNIGHT = 1_800_057_600.0  # a 00:00 UTC
assert MIDNIGHT % 86400 == 0


def headers(available: int, limit: int = 150_000, tenant: str = "9990|249990") -> dict[str, str]:
    return {  # as in a real capture (KEAP.md)
        "x-keap-product-quota-limit": str(limit),
        "x-keap-product-quota-time-unit": "day",
        "x-keap-product-quota-interval": "1",
        "x-keap-product-quota-available": str(available),
        "x-keap-product-quota-used": str(limit - available),
        "x-keap-product-quota-expiry-time": str(int(MIDNIGHT * 1000)),  # epoch ms
        "x-keap-tenant-id": "ps359.infusionsoft.com",
        "x-keap-tenant-throttle-limit": "10000|250000",
        "x-keap-tenant-throttle-time-unit": "minute|day",
        "x-keap-tenant-throttle-interval": "1|1",
        "x-keap-tenant-throttle-available": tenant,
    }


def test_the_product_and_tenant_day_windows_are_read() -> None:
    quota = Quota.from_headers(headers(149_990), MIDNIGHT - 3600)
    assert quota is not None
    product, tenant = quota.windows
    assert (product.name, product.available, product.limit, product.resets_at) == ("product", 149_990, 150_000,
                                                                                   MIDNIGHT)
    assert (tenant.name, tenant.available, tenant.limit, tenant.resets_at) == ("tenant", 249_990, 250_000, MIDNIGHT)
    assert Quota.from_headers({}, MIDNIGHT) is None  # a 401 carries no headers: nothing to act on


def test_plenty_left_means_full_speed_even_at_the_start_of_the_day() -> None:
    start_of_day = MIDNIGHT - 86400 + 1
    assert pace(Quota.from_headers(headers(150_000), start_of_day), start_of_day, 11.5, 2).rate == 11.5


def test_what_a_steady_pace_needs_until_the_reset_is_kept_the_rest_is_spent_at_full_speed() -> None:
    now = MIDNIGHT - 10 * 3600  # ten hours left: the steady pace (2 x 0.5/s) needs 36,000 calls until the reset
    assert pace(Quota.from_headers(headers(40_000), now), now, 11.5, 2).reason == "full_speed"
    spread = pace(Quota.from_headers(headers(30_000), now), now, 11.5, 2)
    assert (spread.reason, spread.rate, spread.resets_at) == ("spread", MIN_PACED_RPS, MIDNIGHT)


def test_the_steady_pace_lasts_until_the_reset() -> None:
    """From the moment it starts, the steady pace spends what is left above the reserve by the reset, no sooner."""
    now, available = MIDNIGHT - 10 * 3600, 1500 + 36_000
    while now < MIDNIGHT - 1:
        decided = pace(Quota.from_headers(headers(available), now), now, 11.5, 2)
        assert decided.rate > 0, f"reserve met {MIDNIGHT - now:.0f}s before the reset"
        available -= round(decided.rate * 2 * 60)  # two containers for a minute
        now += 60
    assert 1500 - 120 <= available <= 1500 + 120


def test_others_spending_the_same_quota_meet_the_reserve_before_the_reset() -> None:
    now = MIDNIGHT - 10 * 3600
    spread = pace(Quota.from_headers(headers(10_000), now), now, 11.5, 2)  # an even spread would be 0.12/s
    assert spread.rate == MIN_PACED_RPS  # not slower: a batch must fit an invocation; the reserve holds later


def test_the_reserve_stops_the_actions_before_keap_does() -> None:
    now = MIDNIGHT - 3600
    low = pace(Quota.from_headers(headers(1500), now), now, 11.5, 2)  # 1 % of 150,000 is the reserve
    assert (low.rate, low.reason, low.resets_at) == (0.0, "reserve_reached", MIDNIGHT)


def test_never_paced_so_slow_that_a_batch_would_not_fit_an_invocation() -> None:
    now = MIDNIGHT - 20 * 3600
    slow = pace(Quota.from_headers(headers(2000, limit=30_000), now), now, 1.9, 2)  # an API key's 30,000 a day
    assert slow.rate == MIN_PACED_RPS


def test_the_tightest_window_decides_and_a_reading_from_before_the_reset_is_forgotten() -> None:
    now = MIDNIGHT - 3600
    quota = Quota.from_headers(headers(100_000, tenant="9000|2000"), now)  # the Keap app's day is nearly spent
    assert quota is not None
    assert pace(quota, now, 11.5, 2).reason == "reserve_reached"  # tenant: 2,000 left, reserve 2,500
    assert quota.tightest(now) is not None and quota.tightest(now).name == "tenant"  # type: ignore[union-attr]
    assert pace(quota, MIDNIGHT + 1, 11.5, 2).reason == "no_reading"  # a new day: full speed until Keap says
    assert quota.spent(now) is None and Quota.from_headers(headers(0), now).spent(now) is not None  # type: ignore[union-attr]


def test_expiry_in_seconds_is_tolerated_and_a_missing_one_means_midnight_utc() -> None:
    h = headers(10)
    h["x-keap-product-quota-expiry-time"] = str(int(MIDNIGHT))
    assert Quota.from_headers(h, MIDNIGHT - 60).windows[0].resets_at == MIDNIGHT  # type: ignore[union-attr]
    del h["x-keap-product-quota-expiry-time"]
    assert Quota.from_headers(h, MIDNIGHT - 60).windows[0].resets_at == MIDNIGHT  # type: ignore[union-attr]


def test_the_gauge_keeps_the_latest_reading() -> None:
    gauge = QuotaGauge()
    new, old = Quota.from_headers(headers(5), MIDNIGHT - 10), Quota.from_headers(headers(50), MIDNIGHT - 20)
    assert new and old
    gauge.update(new)
    gauge.update(old)  # answers arrive out of order under concurrency
    assert gauge.latest is new
