"""The shared Keap budget on DynamoDB (the moto server over HTTP): two containers and a probe book slots from one
``BUDGET#`` item with conditional writes, and together never exceed the deployment's budget (counts on a virtual
clock, no timing)."""

from __future__ import annotations

import itertools

from keaplink import root
from keaplink.keap.budget import BudgetRules, SharedBudget
from keaplink.keap.budget_table import TableBudgetStore
from tests.unit.test_budget import VirtualClock, busiest_second


def test_two_containers_and_a_probe_never_exceed_the_shared_budget(aws) -> None:  # type: ignore[no-untyped-def]
    rules = BudgetRules()
    clock = VirtualClock()
    stores = [TableBudgetStore("default", root.budget_table) for _ in range(3)]  # one per container, one table
    a, b = (SharedBudget(s, rules, fallback_rps=11, clock=clock, sleep=clock.sleep) for s in stores[:2])
    probe = SharedBudget(stores[2], rules, fallback_rps=11, priority=True, clock=clock, sleep=clock.sleep)
    stamps: list[float] = []
    probe_waits: list[float] = []
    for i, who in zip(range(240), itertools.cycle((a, b, b, a, a, b)), strict=False):
        who.acquire()
        stamps.append(clock.now)
        if i % 60 == 30:  # the minute probe (or a refresh) during the burst
            before = clock.now
            probe.acquire()
            probe_waits.append(clock.now - before)
            stamps.append(clock.now)
    assert busiest_second(stamps) <= rules.rate_per_s  # 24, whatever the containers
    assert max(probe_waits) <= rules.horizon_s + 1 / rules.rate_per_s + 1e-6  # never starved
    assert a.fallbacks == b.fallbacks == probe.fallbacks == 0  # DynamoDB served every booking
    assert a.conflicts + b.conflicts > 0  # the write's condition met a stale view and the container re-read
    item = root.budget_table().get("BUDGET#default", consistent_read=True)
    assert int(item.version) == a.writes + b.writes + probe.writes - a.conflicts - b.conflicts - probe.conflicts
    assert float(item.next_free) >= max(stamps)


def test_a_container_without_dynamodb_uses_its_local_share(aws, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CONNECTION_TABLE", "no-such-table")
    root.reset()
    budget = root.rate_limiter()
    budget.acquire()
    budget.acquire()
    assert budget.fallbacks == 1  # said once, then the local share:
    assert budget.fallback_rps == (23.5 - 2) / 2  # the budget less 2/s for priority callers, over 2 containers
