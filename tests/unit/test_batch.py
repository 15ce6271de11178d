"""One SQS batch when Keap cannot serve: the queue is held, records go back without spending Keap calls, and a
record on its last receive is re-sent (or dead-lettered with its reason), never moved by SQS without one."""

from __future__ import annotations

import json
from typing import Any

import pytest

from keaplink.actions.batch import MAX_REQUEUES, NOT_READY_DELAY_S, ActionsDeps, process_batch
from keaplink.actions.hold.holding import Holding
from keaplink.actions.hold.policy import HoldReason
from keaplink.actions.hold.store import HoldState
from keaplink.actions.service import ActionService
from keaplink.actions.tags import TagIds
from keaplink.actions.users import UserRecord
from keaplink.keap.session import Credential, KeapSession, Retries
from tests.unit.fakes import RecordingMetrics
from tests.unit.hold_fakes import FakeDeadLetters, FakeHoldStore, FakeMapping, FakeQueue
from tests.unit.keap_fakes import CountingAuth, FakeUsers, ScriptedTransport, answer

NOW = 1_800_000_000.0


def record(n: int, body: str, receives: int = 1, attributes: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"messageId": f"m{n}", "receiptHandle": f"r{n}", "body": body,
            "attributes": {"ApproximateReceiveCount": str(receives), "SentTimestamp": "0"},
            "messageAttributes": attributes or {}, "md5OfBody": "", "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"}


def signup(user: str) -> str:
    return json.dumps({"type": "user.signed_up", "user_id": user, "email": f"{user}@example.com"})


class World:
    def __init__(self, transport: ScriptedTransport | None = None, hold: HoldState | None = None,
                 max_receive_count: int | None = 20) -> None:
        self.transport = transport or ScriptedTransport()
        self.store, self.mapping = FakeHoldStore(hold), FakeMapping()
        self.queue, self.dlq, self.metrics = FakeQueue(max_receive_count), FakeDeadLetters(), RecordingMetrics()
        self.users = FakeUsers()
        self.sessions = 0
        self.auth: type[CountingAuth] = CountingAuth

    def open_session(self, deadline: Any) -> KeapSession:
        self.sessions += 1
        return KeapSession("https://keap.test/crm/rest", self.auth(), 5.0, sleep=lambda s: None,
                           transport=self.transport, deadline=deadline, retries=Retries())

    def deps(self) -> ActionsDeps:
        return ActionsDeps(service=ActionService(self.users, TagIds(self.users), "buttonpushed"),  # type: ignore[arg-type]
                           open_session=self.open_session, dead_letters=self.dlq,  # type: ignore[arg-type]
                           holding=Holding(self.store, self.mapping), queue=self.queue,  # type: ignore[arg-type]
                           concurrency=4, metrics=self.metrics, clock=lambda: NOW, sleep=lambda s: None)

    def run(self, *records: dict[str, Any]) -> list[str]:
        response = process_batch({"Records": list(records)}, self.deps())
        return [f["itemIdentifier"] for f in response["batchItemFailures"]]


def held(reason: HoldReason = HoldReason.QUOTA_SPENT, probe_in: float = 3600.0) -> HoldState:
    return HoldState(reason, "spent", since=NOW - 60, until=NOW + probe_in, next_probe_at=NOW + probe_in,
                     updated_at=NOW - 60)


def test_a_batch_that_arrives_while_held_goes_straight_back_without_a_token_read() -> None:
    world = World(hold=held())
    returned = world.run(record(1, signup("u1")), record(2, "{nope"), record(3, signup("u3")))
    assert returned == ["m1", "m3"] and world.sessions == 0 and world.transport.seen == []
    assert [d[2] for d in world.dlq.sent] == ["m2"]  # a poison body needs no Keap: dead-lettered anyway
    assert world.mapping.changes == ["pause"]


def test_an_outage_holds_the_queue_after_a_few_calls_and_spares_keap_the_rest() -> None:
    world = World(ScriptedTransport(*[answer(503) for _ in range(40)]))
    returned = world.run(*[record(i, signup(f"u{i}")) for i in range(10)])
    assert len(returned) == 10 and world.dlq.sent == []
    state = world.store.state
    assert state is not None and state.reason is HoldReason.KEAP_UNAVAILABLE and state.until is None
    assert world.mapping.changes == ["pause"] and "MessagesHeld" in world.metrics.names
    assert len(world.transport.seen) <= 2 * 8 + 2  # at most the calls in flight when the fifth failure came


def test_held_records_on_their_last_receive_are_re_sent_not_moved_to_the_dlq_by_sqs() -> None:
    world = World(ScriptedTransport(*[answer(503) for _ in range(40)]))
    returned = world.run(record(1, signup("u1"), receives=19), *[record(i, signup(f"u{i}"), receives=3)
                                                                  for i in range(2, 8)])
    assert world.store.state is not None  # an outage: held
    assert returned == [f"m{i}" for i in range(2, 8)] and [r["message_id"] for r in world.queue.requeued] == ["m1"]
    assert world.queue.requeued[0]["delay_s"] == 0 and world.dlq.sent == []


def test_a_record_that_kept_failing_on_its_own_is_dead_lettered_with_why_on_its_last_receive() -> None:
    world = World(ScriptedTransport(answer(503), answer(503)))
    assert world.run(record(1, signup("u1"), receives=19)) == []
    [(_, reason, message_id)] = world.dlq.sent
    assert message_id == "m1" and "returned 19 times" in reason and "KeapUnavailable" in reason
    assert world.store.state is None  # one failure is no outage


def test_a_press_before_its_signup_is_re_sent_later_then_dead_lettered_after_many_tries() -> None:
    press = json.dumps({"type": "button.pressed", "user_id": "u9"})
    world = World()
    assert world.run(record(1, press, receives=19)) == []
    assert world.queue.requeued == [{"body": press, "message_id": "m1", "delay_s": NOT_READY_DELAY_S}]
    tired = {"keaplink-requeues": {"stringValue": str(MAX_REQUEUES), "dataType": "Number"}}
    assert world.run(record(2, press, receives=19, attributes=tired)) == []
    assert "NotReady" in world.dlq.sent[0][1] and len(world.queue.requeued) == 1


def test_without_the_redrive_policy_records_are_returned_as_before() -> None:
    world = World(ScriptedTransport(answer(503), answer(503)), max_receive_count=None)
    assert world.run(record(1, signup("u1"), receives=19)) == ["m1"]


@pytest.mark.parametrize("reason", [HoldReason.NEEDS_REAUTH, HoldReason.KEAP_UNAVAILABLE])
def test_a_due_probe_lets_a_batch_try_keap(reason: HoldReason) -> None:
    lookup_misses, created = answer(200, {"contacts": [], "next_page_token": ""}), answer(201, {"id": "7"})
    world = World(ScriptedTransport(lookup_misses, created), hold=held(reason, probe_in=-1))
    assert world.run(record(1, signup("u1"))) == [] and world.sessions == 1


def test_a_press_before_its_signup_comes_back_in_seconds_not_after_the_visibility_timeout() -> None:
    world = World()
    press = json.dumps({"type": "button.pressed", "user_id": "nobody-yet"})
    assert world.run(record(1, press), record(2, press.replace("nobody-yet", "other"), receives=3)) == ["m1", "m2"]
    assert world.queue.retries == [("r1", 15), ("r2", 45)] and world.transport.seen == []


# --- the batch reads its users together ----------------------------------------------------------------
class TenantAuth(CountingAuth):
    def current(self, deadline: object = None) -> Credential:
        return Credential({"Authorization": f"Bearer t{self.version}"}, self.version, tenant="ab123")


def with_known_users(world: World, *user_ids: str) -> World:
    """Users who signed up in this Keap app (contact ids stored), and the tag's id known."""
    for u in user_ids:
        world.users.users[u] = UserRecord(u, contact_id=f"c-{u}", email=f"{u}@example.com", tenant="ab123")
    world.users.tag_cache[("ab123", "buttonpushed")] = "91"
    world.auth = TenantAuth
    return world


def press(user: str) -> str:
    return json.dumps({"type": "button.pressed", "user_id": user})


def test_a_batch_of_presses_reads_its_users_in_one_round_trip() -> None:
    users = [f"u{i}" for i in range(10)]
    applied = answer(200, {"results": {f"c-{u}": "SUCCESS" for u in users}})
    world = with_known_users(World(ScriptedTransport(applied)), *users)
    assert world.run(*[record(i, press(u)) for i, u in enumerate(users)]) == []
    assert world.users.batch_reads == [users] and world.users.reads == []
    assert all("buttonpushed" in world.users.users[u].tags for u in users)


def test_a_users_later_record_reads_what_the_earlier_one_wrote() -> None:
    lookup_misses, created = answer(200, {"contacts": [], "next_page_token": ""}), answer(201, {"id": "7"})
    applied = answer(200, {"results": {"7": "SUCCESS", "c-u2": "SUCCESS"}})
    world = with_known_users(World(ScriptedTransport(lookup_misses, created, applied)), "u2")
    assert world.run(record(1, signup("u1")), record(2, press("u1")), record(3, press("u2"))) == []
    # u1's signup and u2's press read together; u1's press after the signup saved the contact, on its own.
    assert world.users.batch_reads == [["u1", "u2"]] and world.users.reads == ["u1"]
    assert "buttonpushed" in world.users.users["u1"].tags and world.users.users["u1"].contact_id == "7"


def test_when_the_batch_read_fails_each_record_reads_its_own() -> None:
    users = ["u1", "u2"]
    applied = answer(200, {"results": {"c-u1": "SUCCESS", "c-u2": "SUCCESS"}})
    world = with_known_users(World(ScriptedTransport(applied)), *users)
    world.users.batch_read_error = RuntimeError("ProvisionedThroughputExceeded")
    assert world.run(*[record(i, press(u)) for i, u in enumerate(users)]) == []
    assert sorted(world.users.reads) == users and all("buttonpushed" in world.users.users[u].tags for u in users)


def test_the_oldest_message_figure_counts_retried_and_re_sent_records() -> None:
    from keaplink.actions.queue import FIRST_SENT, oldest_age_s

    now = 1_800_000_000.0
    retried = {"attributes": {"SentTimestamp": str(int((now - 3 * 86400) * 1000)), "ApproximateReceiveCount": "9"}}
    resent = {"attributes": {"SentTimestamp": str(int((now - 60) * 1000))},
              "messageAttributes": {FIRST_SENT: {"stringValue": str(int((now - 6 * 86400) * 1000))}}}
    fresh = {"attributes": {"SentTimestamp": str(int((now - 5) * 1000))}}
    assert oldest_age_s([fresh, retried], now) == pytest.approx(3 * 86400)
    assert oldest_age_s([fresh, resent, retried], now) == pytest.approx(6 * 86400)  # from its first sending
    assert oldest_age_s([{"attributes": {}}], now) is None
