"""The feature contract: Feast (SQLite and Redis online stores) and the Redis cache, end to end, and
the in-memory fake of ``labcore.testing`` loaded with the same rows (so it answers like they do).

A tiny world is written through ``SqlStore``, materialized SQL → parquet → online store (+ cache),
and served by Feast's own feature server in a uvicorn thread. Every test runs on both Feast online
stores × both real Redis servers (the embedded child and the machine's), which hold the cache and —
for ``redis`` — Feast's online store too.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis

from labcore.adapters.sql.feature_rows import (
    affinity_rows,
    post_stats_rows,
    user_stats_rows,
)
from labcore.adapters.sql.store import SqlStore
from labcore.domain import Post, to_epoch, utcnow
from labcore.engines.process import free_port
from labcore.errors import BackendUnavailable
from labcore.features.base import (
    AuthorAffinity,
    PostStats,
    RankingFeatures,
    UserStats,
    affinity_score,
)
from labcore.features.batch import MaterializeReport, materialize
from labcore.features.cache import RedisFeatureCache
from labcore.features.feast import FeastOnlineFeatures, FeastServerFeatures
from labcore.features.repo import (
    open_serving_store,
    open_store,
    redis_connection_string,
)
from labcore.features.server import FeatureServerThread
from labcore.features.writer import FeatureWriter
from labcore.settings import Settings
from labcore.testing import MemoryFeatures
from labcore.workers.features import FeatureRefresh
from tests.helpers import wait_for

USERS = ("alice", "bob", "carol", "dave")
FOLLOWS = [("alice", "bob"), ("alice", "carol"), ("bob", "carol"), ("dave", "alice")]
POSTS = {  # post id -> (author, has media)
    "a1": ("alice", False),
    "b1": ("bob", True),
    "b2": ("bob", False),
    "c1": ("carol", False),
    "c2": ("carol", False),
}
LIKES = [("alice", "b1"), ("alice", "b2"), ("alice", "c1"), ("bob", "c1"), ("carol", "a1"), ("bob", "b1")]
WITHOUT_EMBEDDING = {"c2"}  # not embedded yet: the features must say "unknown", not invent one


def unit_vector(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(384).astype(np.float32)
    return vector / np.linalg.norm(vector)


def build_world(sql: SqlStore) -> SqlStore:
    """The tiny world, written through SqlStore the way the write path writes it."""
    sql.drop_schema()  # the MariaDB database is shared by the session: start clean
    sql.create_schema()
    for name in USERS:
        sql.create_user(name, name, name.title())
    for follower, followee in FOLLOWS:
        sql.follow(follower, followee)
    for post_id, (author, media) in POSTS.items():
        sql.add_post(Post(post_id, author, f"post {post_id}", utcnow(), media_key="m.png" if media else None), [])
    for user, post_id in LIKES:
        sql.like(user, post_id, [])
    return sql


@dataclass
class Lab:
    settings: Settings
    sql: SqlStore
    cache: RedisFeatureCache
    writer: FeatureWriter
    refresh: FeatureRefresh
    server: FeatureServerThread
    feast: FeastServerFeatures
    embeddings: dict[str, np.ndarray]
    report: MaterializeReport
    memory: MemoryFeatures  # the fake, holding the rows the batch computed

    def candidates(self, *post_ids: str) -> list[tuple[str, str]]:
        return [(pid, POSTS[pid][0] if pid in POSTS else "nobody") for pid in post_ids]


@pytest.fixture(params=["sqlite", "redis"])
def lab(request: pytest.FixtureRequest, redis_url: str, tmp_path: Path) -> Iterator[Lab]:
    settings = Settings(data_dir=tmp_path / "feedlab", redis_url=redis_url, feast_online_store=request.param)
    sql = build_world(SqlStore.from_url(f"sqlite:///{tmp_path / 'feed.db'}"))
    embeddings = {pid: unit_vector(i) for i, pid in enumerate(POSTS) if pid not in WITHOUT_EMBEDDING}

    def embeddings_for(post_ids):  # the vector store's role
        return {pid: embeddings[pid] for pid in post_ids if pid in embeddings}

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    cache = RedisFeatureCache(client)
    store = open_store(settings)
    report = materialize(settings, sql.engine, store, cache, embeddings_for=embeddings_for)
    writer = FeatureWriter(store, cache)
    server = FeatureServerThread(open_serving_store(settings), port=free_port()).start()
    feast = FeastServerFeatures(server.url, timeout=2.0)
    memory = MemoryFeatures(
        [*user_stats_rows(sql.engine), *post_stats_rows(sql.engine, None, embeddings), *affinity_rows(sql.engine)]
    )
    yield Lab(
        settings, sql, cache, writer, FeatureRefresh(sql.engine, writer, embeddings_for), server, feast,
        embeddings, report, memory,
    )  # fmt: skip
    feast.close()
    server.stop()
    client.close()
    sql.dispose()


def eventually(read: Callable[[], RankingFeatures], ok: Callable[[RankingFeatures], bool], within: float = 1.0):
    """Poll ``read`` until ``ok``; fail if it takes longer than ``within`` seconds."""
    last: RankingFeatures = {}

    def visible() -> RankingFeatures | None:
        nonlocal last
        last = read()
        return last if ok(last) else None

    return wait_for(visible, f"the rows are visible within {within}s", within, every=0.02, detail=lambda: str(last))


# --- SQL → rows, on every SQL backend ---------------------------------------------------------


def test_feature_rows_from_sql(sql_url: str) -> None:
    sql = build_world(SqlStore.from_url(sql_url))
    users = {row.user_id: row for row in user_stats_rows(sql.engine)}
    assert users == {
        "alice": UserStats("alice", 1, 2, 1, 1.0),
        "bob": UserStats("bob", 1, 1, 2, 1.5),  # b1: 2 likes (one his own), b2: 1
        "carol": UserStats("carol", 2, 0, 2, 1.0),
        "dave": UserStats("dave", 0, 1, 0, 0.0),
    }
    assert user_stats_rows(sql.engine, ["bob"]) == [users["bob"]]

    vector = unit_vector(1)
    posts = {row.post_id: row for row in post_stats_rows(sql.engine, None, {"b1": vector})}
    assert set(posts) == set(POSTS)
    b1 = posts["b1"]
    assert (b1.author_id, b1.like_count, b1.has_media, b1.author_follower_count) == ("bob", 2, True, 1)
    assert b1.created_at == pytest.approx(to_epoch(sql.get_post("b1").created_at), abs=1e-3)
    np.testing.assert_array_equal(b1.embedding, vector)
    assert posts["c2"].embedding is None and posts["c2"].like_count == 0

    assert affinity_rows(sql.engine) == [
        AuthorAffinity("alice", "bob", affinity_score(2, True), 2),
        AuthorAffinity("alice", "carol", affinity_score(1, True), 1),
        AuthorAffinity("bob", "carol", affinity_score(1, True), 1),
        AuthorAffinity("carol", "alice", affinity_score(1, False), 1),
        AuthorAffinity("dave", "alice", affinity_score(0, True), 0),
    ]  # bob liking his own b1 is not affinity
    assert affinity_rows(sql.engine, [("dave", "bob"), ("alice", "bob")]) == [
        AuthorAffinity("alice", "bob", affinity_score(2, True), 2),
        AuthorAffinity("dave", "bob", 0.0, 0),  # asked for: an explicit zero overwrites a stale row
    ]
    sql.dispose()


# --- walkthrough step 7, verbatim -------------------------------------------------------------


def test_walkthrough_step7_request_works_verbatim(lab: Lab) -> None:
    response = httpx.post(
        f"{lab.server.url}/get-online-features",
        json={"feature_service": "ranking_features", "entities": {"user_id": ["alice", "alice"], "post_id": ["b1", "c2"]}},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    names = body["metadata"]["feature_names"]
    columns = {name: result for name, result in zip(names, body["results"], strict=True)}
    assert set(names) == {
        "user_id", "post_id",
        "follower_count", "following_count", "post_count", "avg_engagement_rate",
        "author_id", "like_count", "has_media", "author_follower_count", "created_at", "embedding",
    }  # fmt: skip
    assert columns["post_id"]["values"] == ["b1", "c2"]
    assert columns["like_count"]["values"] == [2, 0]
    assert columns["has_media"]["values"] == [True, False]
    assert columns["author_id"]["values"] == ["bob", "carol"]
    assert columns["follower_count"]["values"] == [1, 1]  # alice's: dave follows her
    assert columns["like_count"]["statuses"] == ["PRESENT", "PRESENT"]
    created = lab.sql.get_post("b1").created_at
    assert columns["created_at"]["values"][0] == pytest.approx(to_epoch(created), abs=1e-3)
    np.testing.assert_array_equal(np.asarray(columns["embedding"]["values"][0], np.float32), lab.embeddings["b1"])
    assert not columns["embedding"]["values"][1]  # c2 has no embedding yet: null, not noise


def test_affinity_is_its_own_service_keyed_by_user_and_author(lab: Lab) -> None:
    response = httpx.post(
        f"{lab.server.url}/get-online-features",
        json={"feature_service": "affinity_features", "entities": {"user_id": ["alice"], "author_id": ["bob"]}},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    columns = dict(zip(body["metadata"]["feature_names"], body["results"], strict=True))
    assert columns["interaction_count"]["values"] == [2]
    assert columns["affinity_score"]["values"][0] == pytest.approx(affinity_score(2, True))


# --- both sources, same rows ------------------------------------------------------------------


def test_materialize_reports_the_world(lab: Lab) -> None:
    report = lab.report
    assert (report.users, report.posts, report.posts_with_embedding) == (4, 5, 4)
    assert report.affinity_pairs == 5  # alice→bob, alice→carol, bob→carol, carol→alice, dave→alice
    for view in ("user_stats", "post_stats", "user_author_affinity"):
        assert (lab.settings.data_dir / "feast" / "data" / f"{view}.parquet").exists()


def test_feast_and_cache_return_equal_rows(lab: Lab) -> None:
    candidates = lab.candidates("a1", "b1", "b2", "c1", "c2", "missing")
    from_feast = lab.feast.ranking_features("alice", candidates)
    from_cache = lab.cache.ranking_features("alice", candidates)
    assert from_feast == from_cache == lab.memory.ranking_features("alice", candidates)
    assert list(from_feast) == ["a1", "b1", "b2", "c1", "c2", "missing"]

    b1 = from_feast["b1"]
    assert b1.user == UserStats("alice", follower_count=1, following_count=2, post_count=1, avg_engagement_rate=1.0)
    assert b1.post is not None and (b1.post.like_count, b1.post.has_media, b1.post.author_follower_count) == (2, True, 1)
    assert b1.post.created_at == pytest.approx(to_epoch(lab.sql.get_post("b1").created_at), abs=1e-3)
    np.testing.assert_array_equal(b1.post.embedding, lab.embeddings["b1"])
    assert b1.affinity == AuthorAffinity("alice", "bob", affinity_score(2, True), 2)
    assert from_feast["c1"].affinity == AuthorAffinity("alice", "carol", affinity_score(1, True), 1)
    assert from_feast["a1"].affinity is None  # no self-affinity
    assert from_feast["c2"].post is not None and from_feast["c2"].post.embedding is None
    assert from_feast["missing"].post is None

    features = b1.as_features()
    assert features["like_count"] == 2 and features["has_media"] == 1.0
    assert features["affinity_score"] == pytest.approx(1 - math.exp(-2.5 / 3))
    assert "embedding" not in from_feast["c2"].as_features()


def test_no_affinity_evidence_means_no_row(lab: Lab) -> None:
    rows = lab.feast.ranking_features("dave", lab.candidates("b1", "a1"))
    assert rows["b1"].affinity is None  # dave never engaged with bob
    assert rows["a1"].affinity == AuthorAffinity("dave", "alice", affinity_score(0, True), 0)  # follows only
    assert rows == lab.cache.ranking_features("dave", lab.candidates("b1", "a1"))
    assert rows == lab.memory.ranking_features("dave", lab.candidates("b1", "a1"))


# --- freshness --------------------------------------------------------------------------------


def test_a_new_post_is_served_within_a_second(lab: Lab) -> None:
    created = utcnow()
    lab.sql.add_post(Post("c3", "carol", "fresh", created), [])
    vector = unit_vector(99)
    lab.refresh.posts_created({"c3": vector})  # what the embedding worker calls

    rows = eventually(
        lambda: lab.feast.ranking_features("alice", [("c3", "carol")]), lambda r: r["c3"].post is not None
    )
    post = rows["c3"].post
    assert post.created_at == pytest.approx(to_epoch(created), abs=1e-3)
    assert time.time() - post.created_at < 5  # a real recency: seconds old, not "epoch 0"
    np.testing.assert_array_equal(post.embedding, vector)
    assert rows == lab.cache.ranking_features("alice", [("c3", "carol")])
    carol = lab.cache.ranking_features("carol", [("c3", "carol")])["c3"].user
    assert carol is not None and carol.post_count == 3  # the author's counters moved too


def test_feature_writer_rows_reach_the_server(lab: Lab) -> None:
    row = PostStats("x1", "bob", like_count=7, has_media=False, author_follower_count=1, created_at=time.time(),
                    embedding=unit_vector(7))  # fmt: skip
    lab.writer.write_posts([row])
    rows = eventually(lambda: lab.feast.ranking_features("alice", [("x1", "bob")]), lambda r: r["x1"].post is not None)
    assert rows["x1"].post == row
    assert rows == lab.cache.ranking_features("alice", [("x1", "bob")])


def test_a_like_updates_like_count_and_affinity(lab: Lab) -> None:
    assert lab.sql.like("alice", "c2", [])
    lab.refresh.post_liked("alice", "c2")  # what the engagement consumer calls

    rows = eventually(
        lambda: lab.feast.ranking_features("alice", lab.candidates("c2")),
        lambda r: r["c2"].post is not None and r["c2"].post.like_count == 1,
    )
    assert rows["c2"].affinity == AuthorAffinity("alice", "carol", affinity_score(2, True), 2)
    assert rows == lab.cache.ranking_features("alice", lab.candidates("c2"))


def test_a_batch_of_likes_refreshes_each_post_and_pair_once(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """The engagement consumer hands over its whole batch: c2 liked twice is one row, written once."""
    likes = [("alice", "c2"), ("dave", "c2"), ("dave", "b2")]
    for user_id, post_id in likes:
        assert lab.sql.like(user_id, post_id, [])
    written: list[list[str]] = []
    write_posts = lab.writer.write_posts
    monkeypatch.setattr(lab.writer, "write_posts", lambda rows, *a, **k: (written.append([r.post_id for r in rows]), write_posts(rows, *a, **k))[1])
    lab.refresh.posts_liked(likes)
    assert written == [["b2", "c2"]] or written == [["c2", "b2"]]
    rows = eventually(
        lambda: {reader: lab.feast.ranking_features(reader, lab.candidates("c2", "b2")) for reader in ("alice", "dave")},
        lambda r: r["alice"]["c2"].post is not None and r["alice"]["c2"].post.like_count == 2,
    )
    assert rows["dave"]["b2"].post.like_count == 2  # alice's from the world, dave's from this batch
    assert rows["alice"]["c2"].affinity == AuthorAffinity("alice", "carol", affinity_score(2, True), 2)
    assert rows["dave"]["c2"].affinity.interaction_count == 1 and rows["dave"]["b2"].affinity.interaction_count == 1


def test_a_like_keeps_a_known_embedding(lab: Lab) -> None:
    lab.refresh.embeddings_for = None  # vector store unavailable: the cached vector is reused
    assert lab.sql.like("dave", "b2", [])
    lab.refresh.post_liked("dave", "b2")
    rows = lab.feast.ranking_features("dave", lab.candidates("b2"))
    assert rows["b2"].post is not None and rows["b2"].post.like_count == 2
    np.testing.assert_array_equal(rows["b2"].post.embedding, lab.embeddings["b2"])


def test_a_like_that_overtook_its_post_never_erases_the_embedding_written_meanwhile(lab: Lab) -> None:
    """The feature worker looks up c2's vector (none yet) while the embedding worker stores it and
    writes c2's post_stats: whatever the interleaving, the last row written carries the embedding.

    The batch also holds b2, whose vector is known: Feast then stores the batch's missing vector as
    null (a batch of only unknown vectors leaves it alone), so a stale look-up would erase c2's."""
    vector = unit_vector(99)
    assert lab.sql.like("dave", "c2", []) and lab.sql.like("dave", "b2", [])
    embedding_worker = threading.Thread(
        target=lambda: (lab.embeddings.__setitem__("c2", vector), lab.refresh.posts_created({"c2": vector}))
    )
    cached = lab.cache.embeddings  # the look-up's last step: the vector store, then the cache

    def embeddings(post_ids: list[str]) -> dict[str, np.ndarray]:
        found = cached(post_ids)  # nothing for c2 yet, in either
        embedding_worker.start()  # ... and now the worker stores c2's vector and refreshes c2
        embedding_worker.join(timeout=1.0)  # it finishes, unless this refresh holds the lock it needs
        return found

    lab.cache.embeddings = embeddings  # type: ignore[method-assign]
    lab.refresh.posts_liked([("dave", "c2"), ("dave", "b2")])
    embedding_worker.join()
    for online in (lab.feast, lab.cache):
        post = online.ranking_features("dave", lab.candidates("c2"))["c2"].post
        assert post is not None and post.like_count == 1
        np.testing.assert_array_equal(post.embedding, vector)


def test_an_older_row_does_not_overwrite_a_newer_one_in_the_cache(lab: Lab) -> None:
    fresh = UserStats("bob", 9, 9, 9, 9.0)
    lab.writer.write_users([fresh])
    stale_at = lab.report.snapshot_at - timedelta(seconds=5)
    lab.cache.write([RedisFeatureCache.user_hash(UserStats("bob", 0, 0, 0, 0.0))], stale_at.timestamp())
    assert lab.cache.ranking_features("bob", lab.candidates("a1"))["a1"].user == fresh


# --- failure ----------------------------------------------------------------------------------


def test_server_down_is_backend_unavailable_quickly(lab: Lab) -> None:
    lab.server.stop()
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as info:
        lab.feast.ranking_features("alice", lab.candidates("b1"))
    assert info.value.component == "features"
    with pytest.raises(BackendUnavailable):
        lab.feast.health()
    assert time.monotonic() - started < 1.0
    # the fallback still answers, with the same data the server had
    assert lab.cache.ranking_features("alice", lab.candidates("b1"))["b1"].post.like_count == 2


def test_nothing_listens_is_backend_unavailable() -> None:
    source = FeastServerFeatures(f"http://127.0.0.1:{free_port()}", timeout=0.5)
    with pytest.raises(BackendUnavailable):
        source.ranking_features("alice", [("p", "bob")])
    source.close()


def test_a_down_memory_source_is_backend_unavailable() -> None:
    source = MemoryFeatures(down=True)
    with pytest.raises(BackendUnavailable, match="features"):
        source.ranking_features("alice", [("p", "bob")])
    with pytest.raises(BackendUnavailable):
        source.health()


def test_empty_world_materializes(redis_url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "feedlab", redis_url=redis_url, feast_online_store="sqlite")
    sql = SqlStore.from_url(f"sqlite:///{tmp_path / 'feed.db'}")
    sql.create_schema()
    cache = RedisFeatureCache(redis.Redis.from_url(redis_url, decode_responses=True))
    report = materialize(settings, sql.engine, open_store(settings), cache, embeddings_for=lambda ids: {})
    assert (report.users, report.posts, report.affinity_pairs) == (0, 0, 0)
    sql.dispose()


# --- pieces -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/15", "127.0.0.1:6379,db=15"),
        ("redis://redis:6380", "redis:6380,db=0"),
        ("redis://:s3cret@redis:6379/2", "redis:6379,db=2,password=s3cret"),
        ("rediss://u:p%40ss@host/1", "host:6379,db=1,username=u,password=p@ss,ssl=true"),
    ],
)
def test_redis_connection_string(url: str, expected: str) -> None:
    assert redis_connection_string(url) == expected + ",socket_connect_timeout=1,socket_timeout=2"


@pytest.mark.parametrize(
    ("likes", "follows", "expected"),
    [(0, False, 0.0), (0, True, 1 - math.exp(-0.5 / 3)), (1, False, 1 - math.exp(-1 / 3)), (3, True, 1 - math.exp(-3.5 / 3))],
)
def test_affinity_score(likes: int, follows: bool, expected: float) -> None:
    assert affinity_score(likes, follows) == pytest.approx(expected)
    assert 0.0 <= affinity_score(likes, follows) < 1.0


def test_rows_without_embeddings_are_the_same_rows_minus_the_vector(lab: Lab) -> None:
    light = FeastServerFeatures(lab.server.url, include_embeddings=False)
    candidates = lab.candidates("a1", "b1", "c2")
    full = lab.feast.ranking_features("alice", candidates)
    rows = light.ranking_features("alice", candidates)
    light.close()
    for post_id, row in rows.items():
        assert row.post is not None and row.post.embedding is None
        assert row.post == replace(full[post_id].post, embedding=None)
        assert (row.user, row.affinity) == (full[post_id].user, full[post_id].affinity)


def test_in_process_feast_answers_what_the_feature_server_answers(lab: Lab) -> None:
    """The embedded feed reads Feast in-process; the rows must equal the server's, embeddings
    included, after a fresh write too and for missing keys."""
    in_process = FeastOnlineFeatures(lambda: open_serving_store(lab.settings))
    server = FeastServerFeatures(lab.server.url, include_embeddings=True)
    candidates = lab.candidates("a1", "b1", "b2", "c1", "c2", "missing")
    lab.refresh.post_liked("alice", "c2")  # a pushed row, not only the batch's
    try:
        for reader in ("alice", "nobody-at-all"):
            ours, theirs = in_process.ranking_features(reader, candidates), server.ranking_features(reader, candidates)
            assert ours.keys() == theirs.keys()
            for post_id, row in ours.items():
                other = theirs[post_id]
                assert (row.user, row.affinity) == (other.user, other.affinity), post_id
                if row.post is None:
                    assert other.post is None, post_id
                    continue
                assert replace(row.post, embedding=None) == replace(other.post, embedding=None), post_id
                assert (row.post.embedding is None) == (other.post.embedding is None), post_id
                if row.post.embedding is not None:
                    assert np.array_equal(row.post.embedding, other.post.embedding), post_id
        assert sum(row.post is not None and row.post.embedding is not None for row in ours.values()) >= 4
        assert in_process.ranking_features("alice", []) == {}
        in_process.health()
    finally:
        server.close()


def test_in_process_feast_without_applied_definitions_is_backend_unavailable(tmp_path: Path) -> None:
    """A stack built before the runtime applied Feast's repo: features are down (a fallback), not a 500."""
    empty = Settings(data_dir=tmp_path / "nothing-applied")
    source = FeastOnlineFeatures(lambda: open_serving_store(empty))
    with pytest.raises(BackendUnavailable, match="features"):
        source.ranking_features("alice", [("p1", "bob")])
