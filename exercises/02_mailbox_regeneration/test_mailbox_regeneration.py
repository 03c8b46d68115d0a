"""Exercise 02: a missing or expired mailbox is rebuilt from the follow graph on read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from labcore.adapters.redis.mailboxes import RedisMailboxes
from labcore.adapters.sql.store import SqlStore
from labcore.domain import Post, to_epoch

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def users(store: SqlStore, *names: str) -> None:
    for name in names:
        store.create_user(name, name, name.title())


def posts(store: SqlStore, author: str, count: int, delivery: str = "push") -> list[tuple[str, float]]:
    """``count`` posts by ``author``, one minute apart; returns ``(post_id, epoch)`` newest first."""
    made = []
    for i in range(count):
        created = T0 + timedelta(minutes=i)
        store.add_post(Post(f"{author}-{delivery}-{i}", author, f"post {i}", created, delivery), [])  # type: ignore[arg-type]
        made.append((f"{author}-{delivery}-{i}", to_epoch(created)))
    return made[::-1]


@pytest.mark.points(3)
def test_a_missing_mailbox_is_rebuilt_from_the_follow_graph(
    exercise, store: SqlStore, mailboxes: RedisMailboxes
) -> None:
    users(store, "alice", "bob")
    store.follow("bob", "alice")
    expected = posts(store, "alice", 3)
    entries = exercise.read_mailbox("bob", store, mailboxes, limit=10, cap=800)
    assert entries == expected, "the newest pushed posts of the followed authors, newest first"
    assert mailboxes.entries("bob") == expected, "the rebuilt mailbox is stored in Redis"
    built, _ = mailboxes.read("bob", 10)
    assert built, "a rebuilt mailbox is marked built (feed:{user}:built), so the next read is one ZREVRANGE"


@pytest.mark.points(3)
def test_a_built_mailbox_is_read_as_it_is(exercise, store: SqlStore, mailboxes: RedisMailboxes) -> None:
    users(store, "alice", "bob")
    store.follow("bob", "alice")
    posts(store, "alice", 3)  # in SQL, but the mailbox says it is complete
    mailboxes.rebuild("bob", [("fanned-out", 5_000_000_000.0)])
    entries = exercise.read_mailbox("bob", store, mailboxes, limit=10, cap=800)
    assert entries == [("fanned-out", 5_000_000_000.0)], "a built mailbox is read, not rebuilt from SQL"


@pytest.mark.points(2)
def test_limit_applies_to_the_answer_not_to_the_rebuild(
    exercise, store: SqlStore, mailboxes: RedisMailboxes
) -> None:
    users(store, "alice", "bob")
    store.follow("bob", "alice")
    expected = posts(store, "alice", 5)
    assert exercise.read_mailbox("bob", store, mailboxes, limit=2, cap=800) == expected[:2]
    assert len(mailboxes.entries("bob")) == 5, "the mailbox itself keeps up to `cap` posts"
