"""Write path → outbox → event log → fan-out → mailboxes → feed, on real SQLite and Redis."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from labcore.bootstrap import Stack, build_stack, redis_client
from labcore.domain import TOPIC_NEW_POSTS
from labcore.fanout import FanoutHandler
from labcore.feed import get_feed
from labcore.outbox import OutboxRelay
from labcore.settings import Settings
from labcore.write_path import WritePath


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


def ids(feed) -> list[str]:  # noqa: ANN001
    return [item.post.id for item in feed.items]


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
    feed = get_feed(lab.stack, bob)
    assert ids(feed) == [post.id]
    assert feed.items[0].source == "social" and feed.items[0].author.username == "alice"
    assert feed.fallbacks == [] and feed.candidates_social == 1


def test_feed_is_newest_first(lab: Pipeline) -> None:
    alice, bob = lab.user("alice"), lab.user("bob")
    lab.writes.follow(bob, alice)
    now = datetime.now(UTC)
    older = lab.writes.create_post(alice, "older", created_at=now - timedelta(hours=1))
    newer = lab.writes.create_post(alice, "newer", created_at=now)
    lab.pump()
    assert ids(get_feed(lab.stack, bob)) == [newer.id, older.id]


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
        feed = get_feed(lab.stack, fan)
        assert ids(feed) == [post.id]  # ...and no follower misses it
        assert feed.items[0].source == "celebrity"


def test_expired_mailbox_is_rebuilt_from_the_follow_graph(lab: Pipeline) -> None:
    alice, bob = lab.user("alice"), lab.user("bob")
    lab.writes.follow(bob, alice)
    posts = [lab.writes.create_post(alice, f"post {i}") for i in range(3)]
    lab.pump()
    get_feed(lab.stack, bob)
    lab.stack.redis.delete(f"feed:{bob}", f"feed:{bob}:built")  # as if the TTL ran out
    assert ids(get_feed(lab.stack, bob)) == [p.id for p in reversed(posts)]
    assert len(lab.stack.mailboxes.entries(bob)) == 3  # and it is back in Redis


def test_follow_and_unfollow_change_the_feed(lab: Pipeline) -> None:
    alice, bob = lab.user("alice"), lab.user("bob")
    early = lab.writes.create_post(alice, "before bob followed")
    lab.pump()
    assert ids(get_feed(lab.stack, bob)) == []
    lab.writes.follow(bob, alice)
    assert ids(get_feed(lab.stack, bob)) == [early.id]  # backfilled by the rebuild
    lab.writes.unfollow(bob, alice)
    assert ids(get_feed(lab.stack, bob)) == []


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
    from labcore.adapters.redis.server import free_port

    lab.stack.mailboxes = RedisMailboxes(redis_client(f"redis://127.0.0.1:{free_port()}/0"))
    feed = get_feed(lab.stack, bob)
    assert ids(feed) == [post.id]
    assert feed.fallbacks == ["mailbox:sql"]


def test_outbox_holds_events_while_the_log_is_down(lab: Pipeline) -> None:
    from labcore.adapters.events.redis_streams import RedisStreamsEventLog
    from labcore.adapters.redis.server import free_port
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
