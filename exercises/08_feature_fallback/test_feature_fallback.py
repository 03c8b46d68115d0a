"""Exercise 08: Feast, else the Redis cache, else nothing (the feed falls back to SQL)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from labcore.errors import BackendUnavailable
from labcore.features.base import FeatureRow, FeatureSource, RankingFeatures

KEYS = [("p1", "alice"), ("p2", "bob")]


class Source(FeatureSource):
    """A feature source that answers fixed rows, or is down; counts the calls."""

    def __init__(self, name: str, *, down: bool = False) -> None:
        self.name, self.down, self.calls = name, down, 0

    def ranking_features(self, user_id: str, posts: Sequence[tuple[str, str]]) -> RankingFeatures:
        self.calls += 1
        if self.down:
            raise BackendUnavailable("features", f"{self.name} stopped by the test")
        return {post_id: FeatureRow(post_id, author_id, None, None, None) for post_id, author_id in posts}

    def health(self) -> None:
        if self.down:
            raise BackendUnavailable("features", f"{self.name} stopped by the test")


@pytest.mark.points(2)
def test_feast_answers(exercise) -> None:
    feast, cache = Source("feast"), Source("cache")
    source, rows = exercise.fetch_features("reader", KEYS, feast, cache)
    assert source == "feast" and set(rows) == {"p1", "p2"}
    assert cache.calls == 0, "the cache is the fallback, not a second opinion"


@pytest.mark.points(3)
def test_feast_down_falls_back_to_the_redis_cache(exercise) -> None:
    source, rows = exercise.fetch_features("reader", KEYS, Source("feast", down=True), Source("cache"))
    assert source == "redis-cache" and set(rows) == {"p1", "p2"}


@pytest.mark.points(3)
def test_both_down_leaves_it_to_sql(exercise) -> None:
    source, rows = exercise.fetch_features("reader", KEYS, Source("feast", down=True), Source("cache", down=True))
    assert (source, rows) == ("sql", {})
