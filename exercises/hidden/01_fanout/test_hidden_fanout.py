"""Exercise 01, hidden tests: redelivery, the recorded decision, edge cases."""

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


@pytest.mark.points(2)
def test_a_redelivered_event_changes_nothing(exercise, store: SqlStore, mailboxes: RedisMailboxes) -> None:
    users(store, "alice", "bob")
    store.follow("bob", "alice")
    event = post("p1", "alice", 1_000.0)
    exercise.deliver(event, store, mailboxes)
    exercise.deliver(event, store, mailboxes)  # at-least-once delivery: the log replays it
    assert mailboxes.entries("bob") == [("p1", 1_000.0)]


@pytest.mark.points(2)
def test_the_decision_recorded_on_the_post_wins(exercise, store: SqlStore, mailboxes: RedisMailboxes) -> None:
    """Push or pull was decided when the post was written; the follower count today does not matter."""
    users(store, "alice", "bob")
    store.follow("bob", "alice")
    assert exercise.deliver(post("pulled", "alice", 1_000.0, delivery="pull"), store, mailboxes) == 0
    assert mailboxes.entries("bob") == []
    assert exercise.deliver(post("pushed", "alice", 2_000.0), store, mailboxes) == 1
    assert mailboxes.entries("bob") == [("pushed", 2_000.0)]


@pytest.mark.points(1)
def test_an_author_without_followers_writes_nothing(exercise, store: SqlStore, mailboxes: RedisMailboxes) -> None:
    users(store, "hermit")
    assert exercise.deliver(post("p1", "hermit", 1_000.0), store, mailboxes) == 0
    assert mailboxes.entries("hermit") == [], "authors do not get their own posts in their mailbox"


@pytest.mark.points(1)
def test_many_followers(exercise, store: SqlStore, mailboxes: RedisMailboxes) -> None:
    names = [f"f{i}" for i in range(60)]
    users(store, "alice", *names)
    for name in names:
        store.follow(name, "alice")
    assert exercise.deliver(post("p1", "alice", 1_000.0), store, mailboxes) == 60
    assert all(mailboxes.entries(name) == [("p1", 1_000.0)] for name in names)
