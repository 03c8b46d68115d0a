"""Exercise 02, hidden tests: merge not replace, pushed posts only, cap, empty graphs, Redis down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from labcore.adapters.redis.mailboxes import RedisMailboxes
from labcore.engines.process import free_port
from labcore.adapters.sql.store import SqlStore
from labcore.bootstrap import redis_client
from labcore.domain import Post, to_epoch
from labcore.errors import BackendUnavailable

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def users(store: SqlStore, *names: str) -> None:
    for name in names:
        store.create_user(name, name, name.title())


def posts(store: SqlStore, author: str, count: int, delivery: str = "push") -> list[tuple[str, float]]:
    made = []
    for i in range(count):
        created = T0 + timedelta(minutes=i)
        store.add_post(Post(f"{author}-{delivery}-{i}", author, f"post {i}", created, delivery), [])  # type: ignore[arg-type]
        made.append((f"{author}-{delivery}-{i}", to_epoch(created)))
    return made[::-1]


@pytest.mark.points(2)
def test_rebuilding_merges_with_what_fan_out_wrote_meanwhile(
    exercise, store: SqlStore, mailboxes: RedisMailboxes
) -> None:
    users(store, "alice", "bob")
    store.follow("bob", "alice")
    expected = posts(store, "alice", 2)
    mailboxes.deliver("late", 9_000_000_000.0, ["bob"])  # fan-out into the expired mailbox
    exercise.read_mailbox("bob", store, mailboxes, limit=10, cap=800)
    assert mailboxes.entries("bob") == [("late", 9_000_000_000.0), *expected], "merge (ZADD), never replace"


@pytest.mark.points(2)
def test_only_pushed_posts_go_into_a_mailbox(exercise, store: SqlStore, mailboxes: RedisMailboxes) -> None:
    users(store, "alice", "star", "bob")
    store.follow("bob", "alice")
    store.follow("bob", "star")
    pushed = posts(store, "alice", 2)
    posts(store, "star", 2, delivery="pull")  # celebrities are merged at read time, not stored
    assert exercise.read_mailbox("bob", store, mailboxes, limit=10, cap=800) == pushed
    assert mailboxes.entries("bob") == pushed


@pytest.mark.points(1)
def test_the_rebuild_keeps_the_newest_cap_posts(exercise, store: SqlStore, mailboxes: RedisMailboxes) -> None:
    users(store, "alice", "bob")
    store.follow("bob", "alice")
    expected = posts(store, "alice", 5)
    exercise.read_mailbox("bob", store, mailboxes, limit=10, cap=3)
    assert mailboxes.entries("bob") == expected[:3]


@pytest.mark.points(1)
def test_following_nobody_is_remembered_too(exercise, store: SqlStore, mailboxes: RedisMailboxes) -> None:
    users(store, "loner")
    assert exercise.read_mailbox("loner", store, mailboxes, limit=10, cap=800) == []
    built, _ = mailboxes.read("loner", 10)
    assert built, "an empty rebuild is still a rebuild: mark it, or every read goes to SQL"


@pytest.mark.points(1)
def test_a_redis_outage_is_left_to_the_feeds_fallback(exercise, store: SqlStore) -> None:
    users(store, "bob")
    down = RedisMailboxes(redis_client(f"redis://127.0.0.1:{free_port()}/0"))
    with pytest.raises(BackendUnavailable):
        exercise.read_mailbox("bob", store, down, limit=10, cap=800)
