"""Interest vectors on both real Redis servers, with a SQLite store and a Qdrant Edge shard.

The EMA and cold-start rules are checked with hand-made unit vectors (exact numbers); the "likes
move discovery toward a topic" story runs on the real model over cooking and football posts.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import redis

from labcore.adapters.events.redis_streams import RedisStreamsEventLog
from labcore.adapters.sql.store import SqlStore
from labcore.adapters.vectors.base import VectorItem
from labcore.adapters.vectors.qdrant_edge import QdrantEdgeVectors
from labcore.bootstrap import redis_client
from labcore.domain import (
    TOPIC_ENGAGEMENTS,
    TOPIC_NEW_POSTS,
    Post,
    PostCreated,
    PostLiked,
    Record,
    to_epoch,
    utcnow,
)
from labcore.embeddings import DIM, Embedder
from labcore.engines.process import free_port
from labcore.errors import BackendUnavailable
from labcore.interests import InterestVectors, interest_key, popular_post_ids
from labcore.testing import HashEmbedder
from labcore.workers.embedding import EmbeddingHandler
from labcore.workers.interests import InterestHandler
from labcore.workers.loop import ConsumerLoop
from tests.helpers import unit, wait_for

COOKING = [
    "Slow-roasted tomatoes with garlic make the best pasta sauce.",
    "I finally nailed a crusty sourdough loaf after a week of feeding the starter.",
    "Sear the steak in a hot cast iron pan, then baste it with butter and thyme.",
    "This lentil curry with coconut milk and fresh ginger is my new weeknight dinner.",
    "Homemade dumplings: the secret is a thin wrapper and a juicy pork filling.",
    "Roast the vegetables at high heat so they caramelize instead of steaming.",
    "My grandmother's apple pie recipe uses cold butter for a flaky crust.",
    "A squeeze of lemon and fresh herbs brightens any soup right before serving.",
]
FOOTBALL = [
    "What a goal in the last minute, the striker volleyed it into the top corner!",
    "The referee's offside call ruined the match for the home team.",
    "Our midfield pressed high all game and the coach's tactics paid off.",
    "The transfer window closes tonight and the club still needs a new goalkeeper.",
    "A clean sheet for the defence and three points on the road.",
    "The penalty shootout in the cup semi-final was unbearable to watch.",
    "Their winger's pace down the left flank destroyed our full-back.",
    "The league table is tight: four clubs within two points of the top.",
]

# What the followed football fan posts: football too, but not the same sentences as discovery's.
FOLLOWED_FOOTBALL = [
    "Watching the derby tonight with the whole supporters' club.",
    "Our captain scored a header from the corner kick in the second half.",
    "The new stadium holds sixty thousand fans and the atmosphere was electric.",
    "Relegation battle: we need a win in the final match of the season.",
]

_clock = itertools.count()


def normalized(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    # The stack's own client: it decodes replies as text, which the storage format must survive.
    client = redis_client(redis_url)
    yield client
    client.close()


@pytest.fixture
def interests(client: redis.Redis) -> InterestVectors:
    return InterestVectors(client, rate=0.2)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    store = SqlStore.from_url(f"sqlite:///{tmp_path / 'feed.db'}")
    store.create_schema()
    yield store
    store.dispose()


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(batch_size=32).load()


def add_users(store: SqlStore, *names: str) -> None:
    for name in names:
        store.create_user(name, name, name.title())


def add_post(store: SqlStore, author: str, content: str = "a post", delivery: str = "push") -> Post:
    # Strictly increasing creation times, so "newest" is well defined.
    created = utcnow() - timedelta(hours=1) + timedelta(seconds=next(_clock))
    post = Post(str(uuid.uuid4()), author, content, created, delivery)  # type: ignore[arg-type]
    return store.add_post(post, [])


def embed_by_hand(vectors: QdrantEdgeVectors, post: Post, vector: np.ndarray) -> None:
    vectors.upsert([VectorItem(post.id, vector, post.author_id, to_epoch(post.created_at))])


def post_records(posts: Sequence[Post]) -> list[Record]:
    records = []
    for i, post in enumerate(posts):
        event = PostCreated(post.id, post.author_id, post.content, to_epoch(post.created_at), post.delivery)
        records.append(Record(TOPIC_NEW_POSTS, 0, str(i), event.key, event.to_dict()))
    return records


def like_records(store: SqlStore, user: str, liked: Sequence[Post]) -> list[Record]:
    records = []
    for post in liked:
        assert store.like(user, post.id, [])
        event = PostLiked(user, post.id, post.author_id, to_epoch(utcnow()))
        records.append(Record(TOPIC_ENGAGEMENTS, 0, str(len(records)), event.key, event.to_dict()))
    return records


# --- storage and the EMA -------------------------------------------------------------------------


def test_vectors_round_trip_through_text_and_bytes_clients(interests: InterestVectors, redis_url: str) -> None:
    vector = normalized(np.arange(1, DIM + 1, dtype=np.float32))
    interests.set("alice", vector)
    got = interests.get("alice")
    assert got is not None and got.dtype == np.float32 and got.shape == (DIM,)
    np.testing.assert_array_equal(got, vector)  # exact: float32 in, float32 out
    raw = InterestVectors(redis.Redis.from_url(redis_url), rate=0.2)  # a non-decoding client
    np.testing.assert_array_equal(raw.get("alice"), vector)
    assert interests.get("nobody") is None


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.5, 1.0])
def test_like_is_an_ema_step_then_normalized(client: redis.Redis, rate: float) -> None:
    interests = InterestVectors(client, rate=rate)
    first, second = unit(1.0), unit(0.0, 1.0)

    start = interests.update_from_like("alice", first)  # no vector yet: start at the liked post
    np.testing.assert_allclose(start, first, atol=1e-6)

    moved = interests.update_from_like("alice", second)
    expected = normalized((1 - rate) * first + rate * second)
    np.testing.assert_allclose(moved, expected, atol=1e-6)
    np.testing.assert_allclose(interests.get("alice"), expected, atol=1e-6)
    assert np.linalg.norm(moved) == pytest.approx(1.0, abs=1e-6)
    # Each like turns the vector by atan(rate / (1 - rate)) here: the larger the rate, the further.
    assert float(moved @ second) == pytest.approx(float(expected @ second), abs=1e-6)


def test_repeated_likes_converge_on_the_liked_direction(interests: InterestVectors) -> None:
    interests.set("alice", unit(1.0))
    target = unit(0.0, 1.0)
    similarities = [float(interests.update_from_like("alice", target) @ target) for _ in range(10)]
    assert similarities == sorted(similarities) and similarities[-1] > 0.95


def test_opposite_like_at_rate_half_follows_the_like(client: redis.Redis) -> None:
    interests = InterestVectors(client, rate=0.5)
    interests.set("alice", unit(1.0))
    np.testing.assert_allclose(interests.update_from_like("alice", unit(-1.0)), unit(-1.0), atol=1e-6)


def test_rate_outside_zero_one_is_rejected(client: redis.Redis) -> None:
    for rate in (0.0, 1.5):
        with pytest.raises(ValueError):
            InterestVectors(client, rate=rate)


# --- cold start ----------------------------------------------------------------------------------


def test_cold_start_averages_followed_authors_posts_push_and_pull(
    interests: InterestVectors, store: SqlStore, vectors: QdrantEdgeVectors
) -> None:
    add_users(store, "alice", "ann", "celeb", "stranger")
    store.follow("alice", "ann")
    store.follow("alice", "celeb")
    ann_old, ann_new = add_post(store, "ann"), add_post(store, "ann")
    celeb_post = add_post(store, "celeb", delivery="pull")  # a celebrity's post: never fanned out
    stranger_post = add_post(store, "stranger")
    for post, vector in [(ann_old, unit(1.0)), (ann_new, unit(0.0, 1.0)), (celeb_post, unit(0.0, 0.0, 1.0))]:
        embed_by_hand(vectors, post, vector)
    embed_by_hand(vectors, stranger_post, unit(0.0, 0.0, 0.0, 1.0))

    vector = interests.cold_start("alice", store, vectors)

    expected = normalized(unit(1.0) + unit(0.0, 1.0) + unit(0.0, 0.0, 1.0))
    assert vector is not None
    np.testing.assert_allclose(vector, expected, atol=1e-6)
    np.testing.assert_allclose(interests.get("alice"), expected, atol=1e-6)  # stored
    # Only the newest posts count: with room for two, the oldest one drops out.
    newest_two = interests.cold_start("alice", store, vectors, limit=2)
    np.testing.assert_allclose(newest_two, normalized(unit(0.0, 1.0) + unit(0.0, 0.0, 1.0)), atol=1e-6)


def test_cold_start_without_follows_uses_the_most_liked_posts(
    interests: InterestVectors, store: SqlStore, vectors: QdrantEdgeVectors
) -> None:
    add_users(store, "newbie", "ann", "bob", "fan1", "fan2", "fan3")
    hit, liked_once, unliked = add_post(store, "ann"), add_post(store, "bob"), add_post(store, "bob")
    for fan in ("fan1", "fan2", "fan3"):
        store.like(fan, hit.id, [])
    store.like("fan1", liked_once.id, [])
    embed_by_hand(vectors, hit, unit(1.0))
    embed_by_hand(vectors, liked_once, unit(0.0, 1.0))
    embed_by_hand(vectors, unliked, unit(0.0, 0.0, 1.0))

    assert popular_post_ids(store, 10) == [hit.id, liked_once.id, unliked.id]
    np.testing.assert_allclose(interests.cold_start("newbie", store, vectors, limit=1), unit(1.0), atol=1e-6)
    top_two = interests.cold_start("newbie", store, vectors, limit=2)
    np.testing.assert_allclose(top_two, normalized(unit(1.0) + unit(0.0, 1.0)), atol=1e-6)


def test_follows_without_embedded_posts_fall_back_to_popular(
    interests: InterestVectors, store: SqlStore, vectors: QdrantEdgeVectors
) -> None:
    add_users(store, "alice", "ann", "bob")
    store.follow("alice", "ann")
    add_post(store, "ann")  # not embedded yet
    embed_by_hand(vectors, add_post(store, "bob"), unit(0.0, 1.0))
    np.testing.assert_allclose(interests.cold_start("alice", store, vectors), unit(0.0, 1.0), atol=1e-6)


def test_no_posts_means_no_vector(interests: InterestVectors, store: SqlStore, vectors: QdrantEdgeVectors) -> None:
    add_users(store, "alice", "ann")
    store.follow("alice", "ann")
    assert interests.cold_start("alice", store, vectors) is None
    assert interests.for_user("alice", store, vectors) is None
    assert interests.client.exists(interest_key("alice")) == 0  # nothing frozen: next time tries again
    add_post(store, "ann")  # a post, but not embedded yet: still nothing to start from
    assert interests.cold_start("alice", store, vectors) is None


def test_for_user_keeps_an_existing_vector(interests: InterestVectors, store: SqlStore, vectors: QdrantEdgeVectors) -> None:
    add_users(store, "alice", "ann")
    store.follow("alice", "ann")
    embed_by_hand(vectors, add_post(store, "ann"), unit(1.0))
    np.testing.assert_allclose(interests.for_user("alice", store, vectors), unit(1.0), atol=1e-6)  # cold start
    interests.set("alice", unit(0.0, 1.0))
    np.testing.assert_allclose(interests.for_user("alice", store, vectors), unit(0.0, 1.0), atol=1e-6)


# --- the engagement handler ------------------------------------------------------------------------


class TableEmbedder:
    """Stands in for the model where a test needs exact vectors: content → a fixed vector."""

    def __init__(self, table: dict[str, np.ndarray], delay: float = 0.0) -> None:
        self.table = table
        self.calls = 0
        self.delay = delay  # seconds per encode call: room for another worker to race
        self.started = threading.Event()  # set once an encode call began
        self._exclusive = threading.RLock()

    def exclusive(self) -> threading.RLock:
        return self._exclusive

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.started.set()
        time.sleep(self.delay)
        return np.stack([self.table[t] for t in texts]) if texts else np.empty((0, DIM), np.float32)


def test_engagement_handler_cold_starts_then_applies_likes_in_order(
    interests: InterestVectors, store: SqlStore, vectors: QdrantEdgeVectors
) -> None:
    add_users(store, "alice", "ann", "bob")
    store.follow("alice", "ann")
    embed_by_hand(vectors, add_post(store, "ann"), unit(1.0))
    first, second = add_post(store, "bob"), add_post(store, "bob")
    embed_by_hand(vectors, first, unit(0.0, 1.0))
    embed_by_hand(vectors, second, unit(0.0, 0.0, 1.0))
    handler = InterestHandler(interests, vectors, store)

    handler(like_records(store, "alice", [first, second]))

    cold = unit(1.0)  # from the followee's post, then two EMA steps in log order
    expected = normalized(0.8 * normalized(0.8 * cold + 0.2 * unit(0.0, 1.0)) + 0.2 * unit(0.0, 0.0, 1.0))
    np.testing.assert_allclose(interests.get("alice"), expected, atol=1e-5)
    assert (handler.likes, handler.cold_starts, handler.skipped) == (2, 1, 0)


def test_like_that_overtakes_its_embedding(interests: InterestVectors, store: SqlStore, vectors: QdrantEdgeVectors) -> None:
    add_users(store, "alice", "bob")
    post = add_post(store, "bob", "brand new post")  # liked before the embedding worker got to it
    records = like_records(store, "alice", [post])

    without_model = InterestHandler(interests, vectors, store)
    without_model(records)
    assert without_model.skipped == 1 and interests.get("alice") is None

    model = HashEmbedder({"brand new post": unit(0.0, 1.0)})  # the exact vector this test needs
    with_model = InterestHandler(interests, vectors, store, embedder=model)  # type: ignore[arg-type]
    with_model(records)
    np.testing.assert_allclose(interests.get("alice"), unit(0.0, 1.0), atol=1e-6)
    assert with_model.skipped == 0 and model.calls == 1


def test_a_post_is_encoded_once_when_a_like_overtakes_it(
    interests: InterestVectors, store: SqlStore, vectors: QdrantEdgeVectors
) -> None:
    """The interest worker stores what it encodes; the embedding worker reuses it, the model runs once."""
    add_users(store, "alice", "bob")
    post = add_post(store, "bob", "brand new post")
    model = HashEmbedder({"brand new post": unit(0.0, 1.0)})
    InterestHandler(interests, vectors, store, embedder=model)(like_records(store, "alice", [post]))  # type: ignore[arg-type]
    assert model.calls == 1 and set(vectors.vectors([post.id])) == {post.id}

    hooked: list[str] = []
    embedding = EmbeddingHandler(model, vectors, on_embedded=lambda batch: hooked.extend(e.post_id for e, _ in batch))  # type: ignore[arg-type]
    embedding(post_records([post]))
    assert model.calls == 1, "the embedding worker encoded a post whose vector was already stored"
    assert (embedding.posts, embedding.reused, hooked) == (1, 1, [post.id])  # features still refreshed


def test_a_like_during_its_posts_embedding_does_not_encode_the_post_again(
    interests: InterestVectors, store: SqlStore, vectors: QdrantEdgeVectors
) -> None:
    """The like arrives while the embedding worker is encoding the post: the interest worker waits and reuses."""
    add_users(store, "alice", "bob")
    post = add_post(store, "bob", "brand new post")
    model = TableEmbedder({"brand new post": unit(0.0, 1.0)}, delay=0.3)
    embedding = EmbeddingHandler(model, vectors)  # type: ignore[arg-type]
    worker = threading.Thread(target=embedding, args=(post_records([post]),))
    worker.start()
    assert model.started.wait(5), "the embedding worker never encoded"
    liker = InterestHandler(interests, vectors, store, embedder=model)  # type: ignore[arg-type]
    liker(like_records(store, "alice", [post]))  # the post's vector is not stored yet at this instant
    worker.join(5)
    assert model.calls == 1, "the post was encoded by both workers"
    assert (liker.likes, liker.embedded, embedding.reused) == (1, 0, 0)
    np.testing.assert_allclose(interests.get("alice"), unit(0.0, 1.0), atol=1e-6)


def test_liking_a_topic_moves_discovery_toward_it(
    embedder: Embedder, interests: InterestVectors, store: SqlStore, vectors: QdrantEdgeVectors
) -> None:
    """Alice follows a football fan; liking cooking posts turns her discovery results to cooking."""
    add_users(store, "alice", "fan", "cook1", "cook2", "fan1", "fan2")
    store.follow("alice", "fan")
    posts: dict[str, list[Post]] = {"cooking": [], "football": []}
    for text in FOLLOWED_FOOTBALL:
        add_post(store, "fan", text)  # followed: social candidates, never discovery
    for i, text in enumerate(FOOTBALL):
        posts["football"].append(add_post(store, f"fan{i % 2 + 1}", text))
    for i, text in enumerate(COOKING):
        posts["cooking"].append(add_post(store, f"cook{i % 2 + 1}", text))
    all_posts = store.get_posts([p for p, _ in store.followed_posts("alice", "push", 100)])
    all_posts |= {p.id: p for group in posts.values() for p in group}
    EmbeddingHandler(embedder, vectors)(post_records(list(all_posts.values())))
    cooking_centroid = normalized(embedder.encode(COOKING).mean(axis=0))
    cooking_ids = {p.id for p in posts["cooking"]}

    def discovery_top(k: int = 6) -> list[str]:
        vector = interests.for_user("alice", store, vectors)
        assert vector is not None
        return [h.post_id for h in vectors.search(vector, k, exclude_author_ids=["alice", "fan"])]

    before_top = discovery_top()
    before_similarity = float(interests.get("alice") @ cooking_centroid)
    assert sum(p in cooking_ids for p in before_top) <= 1  # cold start from a football fan's posts

    handler = InterestHandler(interests, vectors, store, embedder)
    handler(like_records(store, "alice", posts["cooking"][:6]))  # at the default rate, 0.2

    after_similarity = float(interests.get("alice") @ cooking_centroid)
    after_top = discovery_top()
    assert after_similarity > before_similarity + 0.3
    assert after_top[0] in cooking_ids
    assert sum(p in cooking_ids for p in after_top) >= 4  # 5 of 6 with this model and these texts
    assert handler.likes == 6 and handler.cold_starts == 0  # the vector already existed


def test_down_redis_is_backend_unavailable() -> None:
    down = InterestVectors(redis_client(f"redis://127.0.0.1:{free_port()}/0"))
    with pytest.raises(BackendUnavailable, match="redis"):
        down.get("alice")
    with pytest.raises(BackendUnavailable, match="redis"):
        down.update_from_like("alice", unit(1.0))


def test_embedding_and_interest_loops_over_redis_streams(
    embedder: Embedder, client: redis.Redis, interests: InterestVectors, store: SqlStore, vectors: QdrantEdgeVectors
) -> None:
    """Both loops of the embedding worker, in threads, fed through the real event log."""
    add_users(store, "alice", "cook1")
    cooking = [add_post(store, "cook1", text) for text in COOKING[:4]]
    events = RedisStreamsEventLog(client, partitions=2)
    for record in post_records(cooking):
        events.publish(TOPIC_NEW_POSTS, record.key, record.value)
    for record in like_records(store, "alice", cooking[:2]):
        events.publish(TOPIC_ENGAGEMENTS, record.key, record.value)
    embedded: list[str] = []
    loops = (
        ConsumerLoop(events, TOPIC_NEW_POSTS, "embedding", "embedding-0", EmbeddingHandler(
            embedder, vectors, on_embedded=lambda batch: embedded.extend(event.post_id for event, _ in batch)
        )),
        ConsumerLoop(events, TOPIC_ENGAGEMENTS, "interests", "interests-0", InterestHandler(interests, vectors, store, embedder)),
    )  # fmt: skip
    stop = threading.Event()
    threads = [threading.Thread(target=loop.run, args=(stop,), daemon=True) for loop in loops]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: vectors.count() >= 4 and loops[1].stats.handled >= 2, "both workers are done", 30, every=0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    assert vectors.count() == 4 and sorted(embedded) == sorted(p.id for p in cooking)
    assert loops[1].stats.handled == 2
    vector = interests.get("alice")
    assert vector is not None and float(vector @ embedder.encode([COOKING[0]])[0]) > 0.3
