"""Exercise 08, hidden tests: bugs are not outages, one call each, arguments passed through."""

from __future__ import annotations

import pytest

from labcore.testing import MemoryFeatures  # a feature source in memory: down=True stops it

KEYS = [("p1", "alice"), ("p2", "bob")]


@pytest.mark.points(2)
def test_a_bug_is_not_an_outage(exercise) -> None:
    """Catch BackendUnavailable only: a KeyError must not become a quietly degraded feed."""
    with pytest.raises(KeyError):
        exercise.fetch_features("reader", KEYS, MemoryFeatures(error=KeyError("user_stats")), MemoryFeatures())


@pytest.mark.points(1)
def test_each_source_is_asked_once(exercise) -> None:
    feast, cache = MemoryFeatures(down=True), MemoryFeatures()
    exercise.fetch_features("reader", KEYS, feast, cache)
    assert len(feast.calls) == 1 and len(cache.calls) == 1


@pytest.mark.points(1)
def test_the_reader_and_keys_reach_both_sources(exercise) -> None:
    feast, cache = MemoryFeatures(down=True), MemoryFeatures()
    exercise.fetch_features("reader", KEYS, feast, cache)
    assert feast.calls == cache.calls == [("reader", KEYS)]


@pytest.mark.points(1)
def test_no_candidates(exercise) -> None:
    source, rows = exercise.fetch_features("reader", [], MemoryFeatures(), MemoryFeatures())
    assert source == "feast" and rows == {}
