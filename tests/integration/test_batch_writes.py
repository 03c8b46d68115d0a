"""The batch write path (``WritePath.follow_many``, ``create_posts``, ``like_many``) on real SQLite and Redis: what
``follow`` and ``like`` do per edge — events, counters, forgotten mailboxes — per chunk."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from labcore.bootstrap import build_stack
from labcore.domain import TOPIC_ENGAGEMENTS, TOPIC_NEW_POSTS, PostLiked, UserFollowed, engagement_from_dict
from labcore.errors import Conflict, InvalidInput, NotFound
from labcore.settings import Settings
from labcore.write.outbox import OutboxRelay
from labcore.write.posts import PostDraft, WritePath


class Writes:
    def __init__(self, stack) -> None:  # noqa: ANN001 - the test's Stack
        self.stack = stack
        self.commits = 0
        self.path = WritePath(stack, on_commit=self._committed)
        self.relay = OutboxRelay(stack.store, stack.events)
        self.engagements = stack.events.subscribe(TOPIC_ENGAGEMENTS, "batch-test", "batch-test-1")

    def _committed(self) -> None:
        self.commits += 1

    def users(self, *names: str) -> list[str]:
        return [self.path.create_user(name, name.title()).id for name in names]

    def published(self) -> list[PostLiked | UserFollowed]:
        self.relay.publish_pending()
        events = []
        while records := self.engagements.poll(500, 50):
            events.extend(engagement_from_dict(r.value) for r in records)
            self.engagements.ack(records)
        return events


@pytest.fixture
def writes(tmp_path: Path, redis_url: str) -> Iterator[Writes]:
    stack = build_stack(Settings(data_dir=tmp_path, redis_url=redis_url, api_port=8000, celebrity_threshold=1))
    stack.store.create_schema()
    yield Writes(stack)
    stack.close()


def test_follow_many_is_follow_per_edge_in_chunks(writes: Writes) -> None:
    alice, bob, carol, dave = writes.users("alice", "bob", "carol", "dave")
    assert writes.path.follow(bob, alice) is True
    writes.published()
    for reader in (bob, carol, dave):
        writes.stack.mailboxes.rebuild(reader, [("old", 1.0)])
    writes.commits = 0

    pairs = [(bob, alice), (carol, alice), (dave, alice), (carol, bob), (carol, alice)]
    new = writes.path.follow_many(pairs, chunk_size=2)

    assert new == [(carol, alice), (dave, alice), (carol, bob)]
    assert writes.commits == 2  # chunks [bob→alice, carol→alice] and [dave→alice, carol→bob]
    events = writes.published()
    # one event per new edge (keyed by follower, so only each follower's own events are ordered)
    assert sorted((e.follower_id, e.followee_id, e.following) for e in events) == sorted((*p, True) for p in new)
    users = writes.stack.store.get_users([alice, bob, carol])
    assert (users[alice].follower_count, users[bob].follower_count, users[carol].following_count) == (3, 1, 2)
    # the new followers' mailboxes are forgotten (rebuilt on the next read); bob's edge was not new
    assert writes.stack.mailboxes.read(carol, 10) == (False, [])
    assert writes.stack.mailboxes.read(dave, 10) == (False, [])
    assert writes.stack.mailboxes.read(bob, 10) == (True, [("old", 1.0)])

    assert writes.path.follow_many(pairs) == []  # idempotent: no events, no counts, no wake-up
    assert writes.published() == [] and writes.commits == 2
    assert writes.stack.store.get_user(alice).follower_count == 3


def test_follow_many_refuses_bad_input(writes: Writes) -> None:
    alice, bob = writes.users("alice", "bob")
    with pytest.raises(InvalidInput):  # anywhere in the batch: nothing is written, not even chunk one
        writes.path.follow_many([(bob, alice), (alice, alice)], chunk_size=1)
    with pytest.raises(NotFound):
        writes.path.follow_many([(bob, alice), (bob, "ghost")])
    assert writes.stack.store.counts()["follows"] == 0
    assert writes.published() == [] and writes.commits == 0


def test_like_many_emits_one_event_per_new_like(writes: Writes) -> None:
    alice, bob, carol = writes.users("alice", "bob", "carol")
    p1 = writes.path.create_post(alice, "one").id
    p2 = writes.path.create_post(bob, "two").id
    writes.path.like(bob, p1)
    writes.published()

    new = writes.path.like_many([(bob, p1), (carol, p1), (carol, p2), (alice, p2)], chunk_size=3)

    assert new == [(carol, p1), (carol, p2), (alice, p2)]
    events = writes.published()
    assert sorted((e.user_id, e.post_id, e.author_id) for e in events) == sorted(
        [(carol, p1, alice), (carol, p2, bob), (alice, p2, bob)]
    )
    posts = writes.stack.store.get_posts([p1, p2])
    assert (posts[p1].like_count, posts[p2].like_count) == (2, 2)
    assert writes.path.like_many([(carol, p1)]) == [] and writes.published() == []
    with pytest.raises(NotFound):
        writes.path.like_many([(carol, "gone")])


def test_create_posts_decides_delivery_and_emits_one_event_per_post(writes: Writes) -> None:
    star, alice, bob, carol = writes.users("star", "alice", "bob", "carol")
    writes.path.follow_many([(alice, star), (bob, star), (carol, alice)])
    new_posts = writes.stack.events.subscribe(TOPIC_NEW_POSTS, "batch-test", "batch-test-2")
    writes.commits = 0
    when = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    drafts = [
        PostDraft(star, " famous ", post_id="p1", created_at=when),
        PostDraft(alice, "ordinary", post_id="p2"),
        PostDraft(star, "again"),
    ]

    posts = writes.path.create_posts(drafts, chunk_size=2)

    assert [(p.id, p.content, p.delivery) for p in posts[:2]] == [("p1", "famous", "pull"), ("p2", "ordinary", "push")]
    assert posts[2].delivery == "pull" and posts[0].created_at == when
    assert writes.commits == 2
    assert writes.stack.store.get_post("p1").content == "famous"
    writes.relay.publish_pending()
    records = new_posts.poll(10, 100)
    events = sorted((r.value["post_id"], r.value["delivery"]) for r in records)
    assert events == sorted((p.id, p.delivery) for p in posts)


def test_create_posts_refuses_bad_input(writes: Writes) -> None:
    (alice,) = writes.users("alice")
    with pytest.raises(InvalidInput):  # checked before the first chunk is written
        writes.path.create_posts([PostDraft(alice, "fine"), PostDraft(alice, "   ")], chunk_size=1)
    with pytest.raises(NotFound):
        writes.path.create_posts([PostDraft(alice, "fine"), PostDraft("ghost", "who?")])
    writes.path.create_posts([PostDraft(alice, "first", post_id="p1")])
    with pytest.raises(Conflict):
        writes.path.create_posts([PostDraft(alice, "new", post_id="p2"), PostDraft(alice, "again", post_id="p1")])
    assert writes.stack.store.counts()["posts"] == 1
