"""Training rows are joined point-in-time: a feature value written after an impression never leaks
into that impression's row — not even when the write is caused by the very like that labels it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import redis

from labcore.adapters.sql.store import SqlStore
from labcore.domain import Post, utcnow
from labcore.engines.redis import EmbeddedRedis
from labcore.features.base import affinity_score
from labcore.features.batch import materialize
from labcore.features.cache import RedisFeatureCache
from labcore.features.history import FeatureHistory
from labcore.features.repo import (
    feast_dir,
    offline_data_dir,
    open_store,
    open_training_store,
)
from labcore.features.writer import FeatureWriter
from labcore.ranking.learned.dataset import training_rows
from labcore.settings import Settings
from labcore.workers.features import FeatureRefresh


@dataclass
class World:
    settings: Settings
    sql: SqlStore
    cache: RedisFeatureCache
    refresh: FeatureRefresh

    def materialize(self) -> None:
        materialize(self.settings, self.sql.engine, self.refresh.writer.store, self.cache, embeddings_for=lambda ids: {})

    def like(self, user_id: str, post_id: str) -> None:
        assert self.sql.like(user_id, post_id, [])
        self.refresh.post_liked(user_id, post_id)  # what the engagement consumer does


@pytest.fixture
def world(embedded_redis: EmbeddedRedis, tmp_path: Path) -> Iterator[World]:
    client = redis.Redis.from_url(embedded_redis.url, decode_responses=True)
    client.flushdb()
    settings = Settings(data_dir=tmp_path / "feedlab", redis_url=embedded_redis.url, feast_online_store="sqlite")
    sql = SqlStore.from_url(f"sqlite:///{tmp_path / 'feed.db'}")
    sql.create_schema()
    for name in ("alice", "bob", "carol"):
        sql.create_user(name, name, name.title())
    sql.follow("alice", "bob")
    sql.add_post(Post("b1", "bob", "a post by bob", utcnow()), [])
    store = open_store(settings)
    cache = RedisFeatureCache(client)
    writer = FeatureWriter(store, cache, history=FeatureHistory(offline_data_dir(settings)))
    lab = World(settings, sql, cache, FeatureRefresh(sql.engine, writer))
    lab.materialize()
    yield lab
    client.flushdb()
    client.close()
    sql.dispose()


def now() -> datetime:
    moment = datetime.now(UTC)
    time.sleep(0.02)  # the next write is strictly later
    return moment


def test_a_feature_written_after_the_impression_is_not_in_its_row(world: World) -> None:
    first_seen = now()  # alice sees b1: 0 likes
    world.like("carol", "b1")  # like_count 0 → 1, after the first impression
    second_seen = now()  # alice sees b1 again: 1 like
    world.like("alice", "b1")  # the like that labels both impressions; like_count 2, alice → bob affinity
    world.materialize()  # a later batch must not rewrite the past

    impressions = pd.DataFrame({"user_id": ["alice", "alice"], "post_id": ["b1", "b1"], "ts": [first_seen, second_seen]})
    rows = training_rows(open_training_store(feast_dir(world.settings)), world.sql, impressions)

    assert rows["label"].tolist() == [1, 1]  # alice liked b1 within the window after each impression
    assert rows["like_count"].tolist() == [0, 1]  # as at each impression, never the later 2
    assert rows["interaction_count"].tolist() == [0, 0]  # her like came after both impressions
    assert rows["affinity_score"].tolist() == pytest.approx([affinity_score(0, True)] * 2)  # following only
    assert (rows["author_id"] == "bob").all() and (rows["follower_count"] == 0).all()

    # ...while the online store serves the present
    online = world.cache.ranking_features("alice", [("b1", "bob")])["b1"]
    assert online.post.like_count == 2 and online.affinity.interaction_count == 1


def test_an_impression_before_the_post_existed_gets_no_post_features(world: World) -> None:
    before = datetime(2020, 1, 1, tzinfo=UTC)
    impressions = pd.DataFrame({"user_id": ["alice"], "post_id": ["b1"], "ts": [before]})
    rows = training_rows(open_training_store(feast_dir(world.settings)), world.sql, impressions)
    assert len(rows) == 1 and pd.isna(rows.loc[0, "like_count"]) and rows.loc[0, "label"] == 0


def test_an_impression_of_a_post_liked_before_it_is_left_out(world: World) -> None:
    """A post is liked once: an impression after the like had no outcome to observe, and kept as a 0
    it would teach the model that the posts a reader loves go unliked."""
    before_like = now()
    world.like("alice", "b1")
    after_like = now()
    impressions = pd.DataFrame(
        {"user_id": ["alice", "alice", "carol"], "post_id": ["b1", "b1", "b1"], "ts": [before_like, after_like, after_like]}
    )
    rows = training_rows(open_training_store(feast_dir(world.settings)), world.sql, impressions)
    assert rows[["user_id", "label"]].values.tolist() == [["alice", 1], ["carol", 0]]
    assert "liked_before" not in rows.columns
