"""Tag name → id: memory, then the data table, then Keap (find, else create), once per container."""

from __future__ import annotations

import threading

from keaplink.actions.tags import TagIds
from tests.unit.keap_fakes import FakeKeap, FakeUsers


def test_memory_then_table_then_keap() -> None:
    users, keap = FakeUsers(), FakeKeap()
    users.tag_cache[(keap.tenant, "vip")] = "7"
    tags = TagIds(users)
    assert tags.get("vip", keap) == "7" and keap.calls == []  # from the table
    assert tags.get("vip", keap) == "7" and users.cache_reads == 1  # then from memory
    assert tags.get("new", keap) == "100" and keap.calls == ["find_tag_id", "create_tag"]
    assert users.tag_cache[(keap.tenant, "new")] == "100"  # written through for other containers


def test_an_existing_tag_is_found_not_created() -> None:
    users, keap = FakeUsers(), FakeKeap()
    keap.tags["vip"] = "42"
    assert TagIds(users).get("vip", keap) == "42" and keap.calls == ["find_tag_id"]


def test_a_tag_created_meanwhile_by_another_container_is_found_after_409() -> None:
    users, keap = FakeUsers(), FakeKeap()
    keap.create_conflicts = 1
    assert TagIds(users).get("vip", keap) == keap.tags["vip"]
    assert keap.calls == ["find_tag_id", "create_tag", "find_tag_id"]


def test_concurrent_records_look_a_tag_up_once() -> None:
    users, keap = FakeUsers(), FakeKeap()
    tags = TagIds(users)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(tags.get("vip", keap))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results) == {"100"} and keap.calls == ["find_tag_id", "create_tag"]


def test_forget_drops_the_memory_and_the_table_copy() -> None:
    users, keap = FakeUsers(), FakeKeap()
    tags = TagIds(users)
    old = tags.get("vip", keap)
    keap.tags.clear()  # deleted in Keap
    tags.forget("vip", old, keap)
    assert users.tag_cache == {}
    keap.calls.clear()
    assert tags.get("vip", keap) != old and keap.calls == ["find_tag_id", "create_tag"]


def test_ids_are_kept_per_keap_app() -> None:
    users, keap, other = FakeUsers(), FakeKeap(), FakeKeap(tenant="zz999.infusionsoft.com")
    tags = TagIds(users)
    keap.tags["vip"], other.tags["vip"] = "1", "2"
    assert (tags.get("vip", keap), tags.get("vip", other)) == ("1", "2")
