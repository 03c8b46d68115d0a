"""One contract suite for SqlStore, run on every SQL backend: a SQLite file and MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from labcore.adapters.sql.store import OutboxEntry, SqlStore
from labcore.domain import Post
from labcore.errors import BackendUnavailable, Conflict, InvalidInput, NotFound


@pytest.fixture
def store(sql_url: str) -> SqlStore:
    store = SqlStore.from_url(sql_url)
    store.drop_schema()  # the MariaDB database is shared by the session: start clean
    store.create_schema()
    yield store
    store.dispose()


def _users(store: SqlStore, *names: str) -> list[str]:
    return [store.create_user(f"id-{n}", n, n.title()).id for n in names]


def _post(author: str, post_id: str, minutes_ago: float = 0, delivery: str = "push") -> Post:
    created = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return Post(id=post_id, author_id=author, content=f"post {post_id}", created_at=created, delivery=delivery)


def test_user_roundtrip_and_unique_username(store: SqlStore) -> None:
    created = store.create_user("u1", "alice", "Alice")
    loaded = store.get_user("u1")
    assert (loaded.username, loaded.display_name) == ("alice", "Alice")
    assert abs((loaded.created_at - created.created_at).total_seconds()) < 0.01  # microseconds kept
    with pytest.raises(Conflict, match="already taken"):
        store.create_user("u2", "alice", "Other Alice")
    with pytest.raises(NotFound):
        store.get_user("missing")


def test_follow_is_idempotent_and_counted(store: SqlStore) -> None:
    alice, bob = _users(store, "alice", "bob")
    assert store.follow(bob, alice) is True
    assert store.follow(bob, alice) is False
    assert store.get_user(alice).follower_count == 1
    assert store.get_user(bob).following_count == 1
    assert store.follower_ids(alice) == [bob]
    assert store.followee_ids(bob) == [alice]
    assert store.unfollow(bob, alice) is True
    assert store.unfollow(bob, alice) is False
    assert store.get_user(alice).follower_count == 0


def test_followers_and_following_come_in_pages_newest_first(store: SqlStore) -> None:
    alice, bob, carol, dave = _users(store, "alice", "bob", "carol", "dave")
    for follower in (bob, carol, dave):  # microsecond timestamps: dave's edge is the newest
        store.follow(follower, alice)
    store.follow(alice, bob)

    first, total = store.connections(alice, "followers", limit=2)
    assert ([u.username for u in first], total) == (["dave", "carol"], 3)
    rest, _ = store.connections(alice, "followers", limit=2, offset=2)
    assert [u.username for u in rest] == ["bob"]
    assert store.connections(alice, "followers", limit=2, offset=3) == ([], 3)
    following, total = store.connections(alice, "following", limit=10)
    assert ([u.username for u in following], total) == (["bob"], 1)
    assert store.connections(dave, "followers", limit=10) == ([], 0)
    with pytest.raises(NotFound):
        store.connections("ghost", "following", limit=10)


@pytest.mark.parametrize(
    ("follower", "followee", "error"),
    [("id-alice", "id-alice", InvalidInput), ("id-alice", "ghost", NotFound), ("ghost", "id-alice", NotFound)],
)
def test_follow_rejects_bad_edges(store: SqlStore, follower: str, followee: str, error: type) -> None:
    _users(store, "alice")
    with pytest.raises(error):
        store.follow(follower, followee)


def _edge_event(follower: str, followee: str) -> list[OutboxEntry]:
    return [OutboxEntry("engagements", follower, {"follower_id": follower, "followee_id": followee}, {})]


def test_follow_many_skips_existing_edges_and_counts_only_new_ones(store: SqlStore) -> None:
    alice, bob, carol, dave = _users(store, "alice", "bob", "carol", "dave")
    assert store.follow(bob, alice) is True
    pairs = [(bob, alice), (carol, alice), (dave, alice), (carol, alice), (bob, carol)]
    new = store.follow_many(pairs, _edge_event)

    assert new == [(carol, alice), (dave, alice), (bob, carol)]  # in order; repeats and bob→alice skipped
    assert [(e.payload["follower_id"], e.payload["followee_id"]) for e in store.outbox_pending()] == new
    assert store.get_user(alice).follower_count == 3
    assert (store.get_user(bob).following_count, store.get_user(carol).follower_count) == (2, 1)
    assert sorted(store.follower_ids(alice)) == sorted([bob, carol, dave])

    assert store.follow_many(pairs, _edge_event) == []  # idempotent: nothing new, no events, no counts
    assert len(store.outbox_pending()) == 3
    assert store.get_user(alice).follower_count == 3
    assert store.follow_many([], _edge_event) == []


def test_follow_many_bigger_than_an_in_clause(store: SqlStore) -> None:
    """More users than one IN chunk: existence checks and counter updates span several statements."""
    star = store.create_user("star", "star", "Star").id
    fans = [store.create_user(f"fan{i}", f"fan{i}", "Fan").id for i in range(1_200)]
    pairs = [(fan, star) for fan in fans] + [(star, fan) for fan in fans[:700]]
    assert len(store.follow_many(pairs[:900])) == 900
    assert len(store.follow_many(pairs)) == len(pairs) - 900
    assert store.get_user(star).follower_count == 1_200
    assert store.get_user(star).following_count == 700
    assert store.get_user(fans[699]).follower_count == 1
    assert store.get_user(fans[700]).follower_count == 0
    assert store.counts()["follows"] == 1_900


@pytest.mark.parametrize(
    ("bad", "error"),
    [(("id-bob", "id-bob"), InvalidInput), (("id-bob", "ghost"), NotFound), (("ghost", "id-alice"), NotFound)],
)
def test_follow_many_refuses_a_bad_edge_as_a_whole(store: SqlStore, bad: tuple[str, str], error: type) -> None:
    alice, bob, carol = _users(store, "alice", "bob", "carol")
    with pytest.raises(error):
        store.follow_many([(bob, alice), bad, (carol, alice)], _edge_event)
    assert store.counts()["follows"] == 0 and store.outbox_pending() == []
    assert store.get_user(alice).follower_count == 0


def test_like_many_skips_existing_likes_and_counts_only_new_ones(store: SqlStore) -> None:
    alice, bob, carol = _users(store, "alice", "bob", "carol")
    store.add_post(_post(alice, "p1"), [])
    store.add_post(_post(bob, "p2"), [])
    assert store.like(bob, "p1", []) is True

    def liked(user: str, post: str, author: str) -> list[OutboxEntry]:
        return [OutboxEntry("engagements", user, {"post_id": post, "author_id": author}, {})]

    new = store.like_many([(bob, "p1"), (carol, "p1"), (carol, "p2"), (carol, "p1")], liked)
    assert new == [(carol, "p1"), (carol, "p2")]
    assert [e.payload for e in store.outbox_pending()] == [
        {"post_id": "p1", "author_id": alice}, {"post_id": "p2", "author_id": bob}
    ]
    assert (store.get_post("p1").like_count, store.get_post("p2").like_count) == (2, 1)
    assert store.like_many([(carol, "p1")], liked) == []
    with pytest.raises(NotFound):
        store.like_many([(alice, "p2"), (alice, "gone")], liked)
    with pytest.raises(NotFound):
        store.like_many([("ghost", "p2")], liked)
    assert store.get_post("p2").like_count == 1 and len(store.outbox_pending()) == 2


def test_post_and_outbox_commit_together(store: SqlStore) -> None:
    (alice,) = _users(store, "alice")
    event = OutboxEntry("new-posts", alice, {"post_id": "p1"}, {"traceparent": "00-abc"})
    store.add_post(_post(alice, "p1"), [event])
    assert store.get_post("p1").content == "post p1"
    [pending] = store.outbox_pending()
    assert (pending.topic, pending.key, pending.payload, pending.headers) == (
        "new-posts", alice, {"post_id": "p1"}, {"traceparent": "00-abc"}
    )
    store.outbox_mark_published([pending.id])
    assert store.outbox_pending() == [] and store.outbox_backlog() == 0


def test_failed_post_leaves_no_outbox_row(store: SqlStore) -> None:
    (alice,) = _users(store, "alice")
    store.add_post(_post(alice, "p1"), [OutboxEntry("new-posts", alice, {"n": 1}, {})])
    with pytest.raises(Conflict):  # same id again: the whole transaction rolls back
        store.add_post(_post(alice, "p1"), [OutboxEntry("new-posts", alice, {"n": 2}, {})])
    with pytest.raises(NotFound):
        store.add_post(_post("ghost", "p2"), [OutboxEntry("new-posts", "ghost", {"n": 3}, {})])
    assert [e.payload for e in store.outbox_pending()] == [{"n": 1}]


def test_add_posts_commits_all_or_nothing(store: SqlStore) -> None:
    alice, bob = _users(store, "alice", "bob")
    events = [OutboxEntry("new-posts", alice, {"post_id": p}, {}) for p in ("p1", "p2")]
    store.add_posts([_post(alice, "p1"), _post(bob, "p2")], events)
    assert set(store.get_posts(["p1", "p2"])) == {"p1", "p2"} and len(store.outbox_pending()) == 2
    with pytest.raises(Conflict):  # p1 again: p3 is not written either
        store.add_posts([_post(bob, "p3"), _post(alice, "p1")], [OutboxEntry("new-posts", bob, {}, {})])
    with pytest.raises(NotFound):
        store.add_posts([_post(bob, "p4"), _post("ghost", "p5")], [])
    assert store.counts()["posts"] == 2 and len(store.outbox_pending()) == 2


def test_the_training_reads_likes_and_authors_and_the_cold_start_reads_the_most_liked(store: SqlStore) -> None:
    alice, bob, carol = _users(store, "alice", "bob", "carol")
    store.add_post(_post(alice, "p1", minutes_ago=2), [])
    store.add_post(_post(bob, "p2", minutes_ago=1), [])
    store.add_post(_post(bob, "p3"), [])
    for user, post in [(bob, "p1"), (carol, "p1"), (carol, "p2")]:
        store.like(user, post, [])
    likes = store.likes_of()
    assert sorted((user, post) for user, post, _ in likes) == [(bob, "p1"), (carol, "p1"), (carol, "p2")]
    assert all(isinstance(at, datetime) for _, _, at in likes)
    assert sorted(post for _, post, _ in store.likes_of([carol, carol])) == ["p1", "p2"]
    assert store.likes_of([alice]) == []
    assert store.authors_of(["p2", "gone", "p1", "p2"]) == {"p1": alice, "p2": bob}  # gone: absent, not an error
    assert store.most_liked_post_ids(2) == ["p1", "p2"]  # 2 likes, then 1; p3 (0) is past the limit
    assert store.most_liked_post_ids(10) == ["p1", "p2", "p3"]


def test_like_is_idempotent_and_emits_one_event(store: SqlStore) -> None:
    alice, bob = _users(store, "alice", "bob")
    store.add_post(_post(alice, "p1"), [])
    like_event = [OutboxEntry("engagements", bob, {"post_id": "p1"}, {})]
    assert store.like(bob, "p1", like_event) is True
    assert store.like(bob, "p1", like_event) is False
    assert store.get_post("p1").like_count == 1
    assert len(store.outbox_pending()) == 1
    with pytest.raises(NotFound):
        store.like(bob, "nope", like_event)


def test_followed_posts_by_delivery_newest_first(store: SqlStore) -> None:
    alice, bob, carol, star = _users(store, "alice", "bob", "carol", "star")
    for followee in (alice, carol, star):
        store.follow(bob, followee)
    store.add_post(_post(alice, "a-old", minutes_ago=10), [])
    store.add_post(_post(carol, "c-new", minutes_ago=1), [])
    store.add_post(_post(star, "s-1", minutes_ago=5, delivery="pull"), [])
    store.add_post(_post(bob, "own", minutes_ago=0), [])  # not followed by bob himself
    push = store.followed_posts(bob, "push", limit=10)
    assert [post_id for post_id, _ in push] == ["c-new", "a-old"]
    assert push[0][1] > push[1][1]  # epoch scores, newest first
    assert [p for p, _ in store.followed_posts(bob, "pull", limit=10)] == ["s-1"]
    assert len(store.followed_posts(bob, "push", limit=1)) == 1


def test_hydration_skips_missing_ids(store: SqlStore) -> None:
    (alice,) = _users(store, "alice")
    store.add_post(_post(alice, "p1"), [])
    assert set(store.get_posts(["p1", "gone"])) == {"p1"}
    assert store.get_posts([]) == {}
    assert store.counts() == {"users": 1, "follows": 0, "posts": 1, "likes": 0}


def test_unreachable_database_is_backend_unavailable() -> None:
    store = SqlStore.from_url("mysql+pymysql://root@127.0.0.1:1/none?connect_timeout=1")
    with pytest.raises(BackendUnavailable, match="sql"):
        store.health()
