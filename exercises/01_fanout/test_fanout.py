"""Exercise 01: fan-out on write with the celebrity bypass (real redis-server, SQLite follow graph)."""

from __future__ import annotations

import pytest

from labcore.adapters.redis.mailboxes import RedisMailboxes
from labcore.adapters.sql.store import SqlStore
from labcore.domain import PostCreated


def users(store: SqlStore, *names: str) -> None:
    for name in names:
        store.create_user(name, name, name.title())


def post(post_id: str, author: str, created_at: float, delivery: str = "push") -> PostCreated:
    return PostCreated(post_id, author, f"{post_id} by {author}", created_at, delivery)  # type: ignore[arg-type]


@pytest.mark.points(3)
def test_every_follower_gets_the_post_and_nobody_else(exercise, store: SqlStore, mailboxes: RedisMailboxes) -> None:
    users(store, "alice", "bob", "carol", "dave")
    store.follow("bob", "alice")
    store.follow("carol", "alice")
    written = exercise.deliver(post("p1", "alice", 1_700_000_000.5), store, mailboxes)
    assert written == 2, "deliver returns how many mailboxes it wrote"
    assert mailboxes.entries("bob") == [("p1", 1_700_000_000.5)]
    assert mailboxes.entries("carol") == [("p1", 1_700_000_000.5)]
    assert mailboxes.entries("dave") == [], "dave does not follow alice"


@pytest.mark.points(3)
def test_a_celebrity_post_is_not_fanned_out(exercise, store: SqlStore, mailboxes: RedisMailboxes) -> None:
    users(store, "star", "fan1", "fan2")
    store.follow("fan1", "star")
    store.follow("fan2", "star")
    written = exercise.deliver(post("p1", "star", 1_700_000_000.0, delivery="pull"), store, mailboxes)
    assert written == 0, "a 'pull' post is merged at read time, never pushed"
    assert mailboxes.entries("fan1") == [] and mailboxes.entries("fan2") == []


@pytest.mark.points(2)
def test_mailboxes_sort_by_creation_time_not_arrival(exercise, store: SqlStore, mailboxes: RedisMailboxes) -> None:
    users(store, "alice", "bob")
    store.follow("bob", "alice")
    exercise.deliver(post("newer", "alice", 2_000.0), store, mailboxes)
    exercise.deliver(post("older", "alice", 1_000.0), store, mailboxes)  # a late event
    assert [post_id for post_id, _ in mailboxes.entries("bob")] == ["newer", "older"]
