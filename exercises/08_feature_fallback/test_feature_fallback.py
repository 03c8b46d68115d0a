"""Exercise 08: Feast, else the Redis cache, else nothing (the feed falls back to SQL)."""

from __future__ import annotations

import pytest

from labcore.testing import MemoryFeatures  # a feature source in memory: down=True stops it

KEYS = [("p1", "alice"), ("p2", "bob")]


@pytest.mark.points(2)
def test_feast_answers(exercise) -> None:
    feast, cache = MemoryFeatures(), MemoryFeatures()
    source, rows = exercise.fetch_features("reader", KEYS, feast, cache)
    assert source == "feast" and set(rows) == {"p1", "p2"}
    assert cache.calls == [], "the cache is the fallback, not a second opinion"


@pytest.mark.points(3)
def test_feast_down_falls_back_to_the_redis_cache(exercise) -> None:
    source, rows = exercise.fetch_features("reader", KEYS, MemoryFeatures(down=True), MemoryFeatures())
    assert source == "redis-cache" and set(rows) == {"p1", "p2"}


@pytest.mark.points(3)
def test_both_down_leaves_it_to_sql(exercise) -> None:
    source, rows = exercise.fetch_features("reader", KEYS, MemoryFeatures(down=True), MemoryFeatures(down=True))
    assert (source, rows) == ("sql", {})
