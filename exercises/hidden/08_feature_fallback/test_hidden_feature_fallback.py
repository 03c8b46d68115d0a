"""Exercise 08, hidden tests: bugs are not outages, one call each, arguments passed through."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from labcore.errors import BackendUnavailable
from labcore.features.base import FeatureRow, FeatureSource, RankingFeatures

KEYS = [("p1", "alice"), ("p2", "bob")]


class Source(FeatureSource):
    def __init__(self, *, down: bool = False, error: Exception | None = None) -> None:
        self.down, self.error, self.calls = down, error, []

    def ranking_features(self, user_id: str, posts: Sequence[tuple[str, str]]) -> RankingFeatures:
        self.calls.append((user_id, list(posts)))
        if self.error is not None:
            raise self.error
        if self.down:
            raise BackendUnavailable("features", "stopped by the test")
        return {post_id: FeatureRow(post_id, author_id, None, None, None) for post_id, author_id in posts}

    def health(self) -> None:
        pass


@pytest.mark.points(2)
def test_a_bug_is_not_an_outage(exercise) -> None:
    """Catch BackendUnavailable only: a KeyError must not become a quietly degraded feed."""
    with pytest.raises(KeyError):
        exercise.fetch_features("reader", KEYS, Source(error=KeyError("user_stats")), Source())


@pytest.mark.points(1)
def test_each_source_is_asked_once(exercise) -> None:
    feast, cache = Source(down=True), Source()
    exercise.fetch_features("reader", KEYS, feast, cache)
    assert len(feast.calls) == 1 and len(cache.calls) == 1


@pytest.mark.points(1)
def test_the_reader_and_keys_reach_both_sources(exercise) -> None:
    feast, cache = Source(down=True), Source()
    exercise.fetch_features("reader", KEYS, feast, cache)
    assert feast.calls == cache.calls == [("reader", KEYS)]


@pytest.mark.points(1)
def test_no_candidates(exercise) -> None:
    source, rows = exercise.fetch_features("reader", [], Source(), Source())
    assert source == "feast" and rows == {}
