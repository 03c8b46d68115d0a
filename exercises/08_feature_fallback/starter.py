"""Exercise 08 — the fallback when the feature store is down. The task: README.md next to this file.

Run the tests:   feedlab grade 08          (or: pytest exercises/08_feature_fallback)
Plug it in:      FEEDLAB_FEATURE_FALLBACK=exercises.08_feature_fallback.starter:fetch_features
"""

from __future__ import annotations

from collections.abc import Sequence

from labcore.features.base import FeatureSource, RankingFeatures


def fetch_features(
    user_id: str, keys: Sequence[tuple[str, str]], primary: FeatureSource, cache: FeatureSource
) -> tuple[str, RankingFeatures]:
    """Ranking features for ``user_id`` and ``keys`` = ``[(post_id, author_id), ...]``, and where
    they came from: ``("feast", rows)`` from the feature store (``primary``); when it is down
    ``("redis-cache", rows)`` from the Redis cache; when both are down ``("sql", {})``.
    """
    raise NotImplementedError(
        "exercise 08: implement fetch_features(user_id, keys, primary, cache) in "
        "exercises/08_feature_fallback/starter.py — Feast first, the Redis cache when it is down, "
        "('sql', {}) when both are"
    )
