"""Write path → outbox → event log → fan-out → mailboxes → social candidates, on real SQLite and Redis.

Stage 1's social half (``FeedPipeline.social``); the whole four-stage feed is tested over HTTP
against a running stack in ``tests/e2e``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from labcore.bootstrap import Stack, build_stack, redis_client
from labcore.domain import TOPIC_NEW_POSTS
from labcore.feed import stage1_retrieval
from labcore.settings import Settings
from labcore.workers.fanout import FanoutHandler
from labcore.write.outbox import OutboxRelay
from labcore.write.posts import WritePath


class Pipeline:
    """The runtime's workers, driven step by step so tests see every stage."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.writes = WritePath(stack)
        self.relay = OutboxRelay(stack.store, stack.events)
        self.fanout = FanoutHandler(stack.store, stack.mailboxes)
        self.subscription = stack.events.subscribe(TOPIC_NEW_POSTS, "fanout", "fanout-test")

    def pump(self) -> None:
        self.relay.publish_pending()
        while records := self.subscription.poll(500, 50):
            self.fanout(records)
            self.subscription.ack(records)

    def user(self, name: str) -> str:
        return self.writes.create_user(name, name.title()).id


@pytest.fixture
def lab(tmp_path: Path, redis_url: str) -> Iterator[Pipeline]:
    settings = Settings(data_dir=tmp_path, redis_url=redis_url, celebrity_threshold=2, api_port=8000)
    stack = build_stack(settings)
    stack.store.create_schema()
    yield Pipeline(stack)
    stack.close()


@dataclass
class Social:
    ids: list[str]
    sources: list[str]
    fallbacks: list[str]


def social(lab: Pipeline, user_id: str) -> Social:
    fallbacks: list[str] = []
    journeys = stage1_retrieval.social(lab.stack, user_id, fallbacks)
    return Social([j.post_id for j in journeys], [j.source for j in journeys], fallbacks)


def test_post_reaches_followers_mailboxes_and_feed(lab: Pipeline) -> None:
    alice, bob, carol, dave = (lab.user(n) for n in ("alice", "bob", "carol", "dave"))
    lab.writes.follow(bob, alice)
    lab.writes.follow(carol, alice)
    post = lab.writes.create_post(alice, "Hello from Alice!")
    assert post.delivery == "push"
    lab.pump()
    for follower in (bob, carol):
        assert [p for p, _ in lab.stack.mailboxes.entries(follower)] == [post.id]
    assert lab.stack.mailboxes.entries(dave) == []
    feed = social(lab, bob)
    assert feed.ids == [post.id] and feed.sources == ["social"] and feed.fallbacks == []


def test_feed_is_newest_first(lab: Pipeline) -> None:
    alice, bob = lab.user("alice"), lab.user("bob")
    lab.writes.follow(bob, alice)
    now = datetime.now(UTC)
    older = lab.writes.create_post(alice, "older", created_at=now - timedelta(hours=1))
    newer = lab.writes.create_post(alice, "newer", created_at=now)
    lab.pump()
    assert social(lab, bob).ids == [newer.id, older.id]


def test_celebrity_is_pulled_not_fanned_out(lab: Pipeline) -> None:
    star = lab.user("star")
    fans = [lab.user(f"fan{i}") for i in range(3)]  # 3 followers > threshold 2
    for fan in fans:
        lab.writes.follow(fan, star)
    post = lab.writes.create_post(star, "A celebrity speaks")
    assert post.delivery == "pull"
    lab.pump()
    assert all(lab.stack.mailboxes.entries(fan) == [] for fan in fans)  # no write amplification
    for fan in fans:
        feed = social(lab, fan)
        assert feed.ids == [post.id]  # ...and no follower misses it
        assert feed.sources == ["celebrity"]


def test_expired_mailbox_is_rebuilt_from_the_follow_graph(lab: Pipeline) -> None:
    alice, bob = lab.user("alice"), lab.user("bob")
    lab.writes.follow(bob, alice)
    posts = [lab.writes.create_post(alice, f"post {i}") for i in range(3)]
    lab.pump()
    social(lab, bob)
    lab.stack.redis.delete(f"feed:{bob}", f"feed:{bob}:built")  # as if the TTL ran out
    assert social(lab, bob).ids == [p.id for p in reversed(posts)]
    assert len(lab.stack.mailboxes.entries(bob)) == 3  # and it is back in Redis


def test_follow_and_unfollow_change_the_feed(lab: Pipeline) -> None:
    alice, bob = lab.user("alice"), lab.user("bob")
    early = lab.writes.create_post(alice, "before bob followed")
    lab.pump()
    assert social(lab, bob).ids == []
    lab.writes.follow(bob, alice)
    assert social(lab, bob).ids == [early.id]  # backfilled by the rebuild
    lab.writes.unfollow(bob, alice)
    assert social(lab, bob).ids == []


def test_redelivered_event_changes_nothing(lab: Pipeline) -> None:
    alice, bob = lab.user("alice"), lab.user("bob")
    lab.writes.follow(bob, alice)
    lab.writes.create_post(alice, "once")
    lab.relay.publish_pending()
    records = lab.subscription.poll(10, 100)
    lab.fanout(records)
    before = lab.stack.mailboxes.entries(bob)
    lab.fanout(records)  # delivered again, e.g. after a crash before the ack
    assert lab.stack.mailboxes.entries(bob) == before


def test_redis_down_falls_back_to_sql_visibly(lab: Pipeline) -> None:
    alice, bob = lab.user("alice"), lab.user("bob")
    lab.writes.follow(bob, alice)
    post = lab.writes.create_post(alice, "still here")
    lab.pump()
    from labcore.adapters.redis.mailboxes import RedisMailboxes
    from labcore.engines.process import free_port

    lab.stack.mailboxes = RedisMailboxes(redis_client(f"redis://127.0.0.1:{free_port()}/0"))
    feed = social(lab, bob)
    assert feed.ids == [post.id]
    assert feed.fallbacks == ["mailbox:sql"]


def test_outbox_holds_events_while_the_log_is_down(lab: Pipeline) -> None:
    from labcore.adapters.events.redis_streams import RedisStreamsEventLog
    from labcore.engines.process import free_port
    from labcore.errors import BackendUnavailable

    alice, bob = lab.user("alice"), lab.user("bob")
    lab.writes.follow(bob, alice)
    post = lab.writes.create_post(alice, "written while the log is down")
    working = lab.relay.events
    lab.relay.events = RedisStreamsEventLog(redis_client(f"redis://127.0.0.1:{free_port()}/0"), 4)
    with pytest.raises(BackendUnavailable):
        lab.relay.publish_pending()
    assert lab.stack.store.outbox_backlog() == 1  # acknowledged write, waiting in SQL
    lab.relay.events = working
    lab.pump()
    assert lab.stack.store.outbox_backlog() == 0
    assert [p for p, _ in lab.stack.mailboxes.entries(bob)] == [post.id]
