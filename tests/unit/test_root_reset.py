"""root.reset() forgets every per-container cache without a hand-kept list: each cache registers itself."""

from __future__ import annotations

import inspect

from keaplink import root
from keaplink.config import get_settings


def _caches_in_root() -> dict[str, object]:
    return {name: obj for name, obj in vars(root).items()
            if callable(getattr(obj, "cache_clear", None)) and not inspect.isclass(obj)}


def test_every_cache_in_the_root_is_forgotten_by_reset() -> None:
    caches = _caches_in_root()
    assert len(caches) >= 10, sorted(caches)  # the factories are found (the scan itself works)
    missing = [name for name, cached in caches.items()
               if cached.cache_clear not in root._forgetters]  # type: ignore[attr-defined]
    assert not missing, f"caches reset() would keep: {missing}"
    assert get_settings.cache_clear in root._forgetters


def test_the_root_makes_its_caches_through_per_container_only() -> None:
    source = inspect.getsource(root)
    assert source.count("lru_cache(") == 1, "a cache made with lru_cache directly would escape reset()"


def test_a_new_factory_registers_itself_and_reset_forgets_it() -> None:
    built: list[int] = []

    @root.per_container
    def factory() -> int:
        built.append(1)
        return len(built)

    try:
        assert factory() == 1
        assert factory() == 1  # kept
        root.reset()
        assert factory() == 2  # built again after reset
    finally:
        root._forgetters.remove(factory.cache_clear)


def test_reset_forgets_the_clients_and_the_admin_password(monkeypatch) -> None:
    root._clients["sqs"] = object()
    loads: list[int] = []
    expiring = root.Expiring(lambda: loads.append(1) or len(loads), ttl_s=3600)
    try:
        assert expiring() == 1 and expiring() == 1
        root.reset()
        assert "sqs" not in root._clients
        assert expiring() == 2
    finally:
        root._forgetters.remove(expiring.cache_clear)
