from __future__ import annotations

from keaplink.keap.throttle import Throttle, throttle_pause

HEADERS = {  # as in a real capture (KEAP.md)
    "x-keap-product-throttle-available": "1490",
    "x-keap-product-throttle-limit": "1500",
    "x-keap-tenant-throttle-available": "9990|249990",
    "x-keap-product-quota-available": "149990",
}


def test_headers_are_parsed_including_pipe_separated_tenant_values() -> None:
    t = Throttle.from_headers(HEADERS)
    assert (t.product_available, t.tenant_available) == (1490, 9990)


def test_plenty_left_means_no_pause() -> None:
    assert throttle_pause(Throttle.from_headers(HEADERS), per_second=11.5) == 0.0
    assert throttle_pause(Throttle(), per_second=11.5) == 0.0  # no headers (e.g. a 401): nothing to act on


def test_nearly_spent_window_pauses_longer_the_closer_to_zero() -> None:
    low = throttle_pause(Throttle(product_available=20), per_second=11.5)
    lower = throttle_pause(Throttle(product_available=5), per_second=11.5)
    none_left = throttle_pause(Throttle(product_available=0, tenant_available=5000), per_second=11.5)
    assert 0 < low < lower < none_left == 5.0


def test_tenant_window_counts_too() -> None:
    assert throttle_pause(Throttle(product_available=1400, tenant_available=3), per_second=11.5) > 0
