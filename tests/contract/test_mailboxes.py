"""The mailbox contract, on both real Redis servers (the embedded child and the machine's)."""

from __future__ import annotations

import pytest
import redis

from labcore.adapters.redis.mailboxes import RedisMailboxes, built_key, mailbox_key
from labcore.errors import BackendUnavailable


@pytest.fixture
def mailboxes(redis_url: str) -> RedisMailboxes:
    return RedisMailboxes(redis.Redis.from_url(redis_url, decode_responses=True), cap=5, ttl_seconds=60, chunk_size=3)


def test_deliver_orders_by_creation_time_not_arrival(mailboxes: RedisMailboxes) -> None:
    mailboxes.deliver("newer", 200.0, ["bob"])
    mailboxes.deliver("older", 100.0, ["bob"])  # arrives late, still sorts as older
    assert mailboxes.entries("bob") == [("newer", 200.0), ("older", 100.0)]


def test_redelivery_neither_duplicates_nor_reorders(mailboxes: RedisMailboxes) -> None:
    for _ in range(3):
        mailboxes.deliver("p1", 100.0, ["bob", "carol"])
    mailboxes.deliver("p2", 150.0, ["bob"])
    mailboxes.deliver("p1", 100.0, ["bob"])
    assert mailboxes.entries("bob") == [("p2", 150.0), ("p1", 100.0)]
    assert mailboxes.entries("carol") == [("p1", 100.0)]


def test_chunked_delivery_reaches_every_follower(mailboxes: RedisMailboxes) -> None:
    followers = [f"u{i}" for i in range(10)]  # chunk_size=3: four pipelines
    assert mailboxes.deliver("p1", 1.0, followers) == 10
    assert all(mailboxes.entries(f) == [("p1", 1.0)] for f in followers)


def test_trim_keeps_the_newest_cap(mailboxes: RedisMailboxes) -> None:
    for i in range(8):
        mailboxes.deliver(f"p{i}", float(i), ["bob"])
    assert [p for p, _ in mailboxes.entries("bob")] == ["p7", "p6", "p5", "p4", "p3"]


def test_read_reports_built_and_rebuild_merges(mailboxes: RedisMailboxes) -> None:
    mailboxes.deliver("fanned-out", 300.0, ["bob"])  # written while the mailbox was expired
    built, entries = mailboxes.read("bob", 10)
    assert built is False and entries == [("fanned-out", 300.0)]
    mailboxes.rebuild("bob", [("from-graph", 100.0)])
    built, entries = mailboxes.read("bob", 10)
    assert built is True
    assert entries == [("fanned-out", 300.0), ("from-graph", 100.0)]  # merged, nothing lost


def test_read_refreshes_ttl_and_invalidate_forgets(mailboxes: RedisMailboxes) -> None:
    mailboxes.rebuild("bob", [("p", 1.0)])
    client = mailboxes.client
    client.expire(mailbox_key("bob"), 5)
    mailboxes.read("bob", 10)
    assert client.ttl(mailbox_key("bob")) > 5 and client.ttl(built_key("bob")) > 5
    mailboxes.invalidate("bob")
    assert mailboxes.read("bob", 10) == (False, [])


def test_invalidate_many_forgets_only_the_named_mailboxes(mailboxes: RedisMailboxes) -> None:
    users = [f"reader{i}" for i in range(5)]  # ten keys, chunk_size=3: several DELs in one pipeline
    for user in [*users, "keeper"]:
        mailboxes.rebuild(user, [("p", 1.0)])
    mailboxes.invalidate_many([*users, users[0]])
    assert all(mailboxes.read(user, 10) == (False, []) for user in users)
    assert mailboxes.read("keeper", 10) == (True, [("p", 1.0)])
    mailboxes.invalidate_many([])  # nothing to forget: no round trip, no error


def test_rebuild_of_an_empty_graph_still_marks_built(mailboxes: RedisMailboxes) -> None:
    mailboxes.rebuild("loner", [])
    assert mailboxes.read("loner", 10) == (True, [])


def test_down_redis_is_backend_unavailable() -> None:
    from labcore.bootstrap import redis_client
    from labcore.engines.process import free_port

    down = RedisMailboxes(redis_client(f"redis://127.0.0.1:{free_port()}/0"))
    with pytest.raises(BackendUnavailable, match="redis"):
        down.read("bob", 10)
    with pytest.raises(BackendUnavailable):
        down.deliver("p", 1.0, ["bob"])
