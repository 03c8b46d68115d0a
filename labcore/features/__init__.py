"""Ranking features: Feast online (primary), the Redis feature cache (fallback), and how both stay fresh.

``base``     the rows (``user_stats``, ``post_stats``, ``user_author_affinity``), the ``FeatureSource``
             port and the affinity formula
``feast``    ``FeastServerFeatures``: Feast's feature server over HTTP (walkthrough step 7), and
             ``FeastOnlineFeatures``: the same rows read in-process (the embedded profile's feed)
``cache``    ``RedisFeatureCache``: the fallback, written alongside Feast
``writer``   ``FeatureWriter``: rows → Feast push sources + the cache + the offline history
``batch``    ``materialize``: SQL → parquet → ``feast apply`` → the online store
``repo``     the Feast deployment: ``feature_store.yaml``, definitions, the write lock
``history``  the offline side: every value a feature ever had, for point-in-time joins
``server``   Feast's own feature server, embedded in the runtime

The SQL that computes rows lives with the other SQL (``labcore.adapters.sql.feature_rows``); the
event-driven refresh is a worker (``labcore.workers.features``).

Until issue #15 ``labcore.features`` was one module; the names it offered that stayed in this package
are still importable from ``labcore.features``
(``from labcore.features import affinity_score``, ``FEEDLAB_AFFINITY=labcore.features:affinity_score``).
They load on first use: importing ``labcore.features.base`` must not pull in Feast, FastAPI or Arrow.
"""

from __future__ import annotations

import importlib
from typing import Any

# What labcore.features offered as one module, by the submodule that defines it now. The old module's
# other names left the package and are not re-exported: the SQL row builders (user_stats_rows,
# post_stats_rows, affinity_rows, all_post_ids) to labcore.adapters.sql.feature_rows, FeatureRefresh
# to labcore.workers.features (a features -> workers import would point the layers the wrong way).
_SUBMODULES = {
    "base": [
        "AFFINITY_FEATURES", "AFFINITY_SCALE", "AFFINITY_SERVICE", "FOLLOW_EVIDENCE", "POST_FEATURES",
        "POST_SCALARS", "RANKING_SERVICE", "RANKING_WITHOUT_EMBEDDING", "USER_FEATURES", "AuthorAffinity",
        "EmbeddingsFor", "FeatureRow", "FeatureSource", "PostStats", "RankingFeatures", "UserStats",
        "affinity_score",
    ],
    "batch": ["MaterializeReport", "materialize"],
    "cache": ["TS_FIELD", "RedisFeatureCache", "affinity_key", "post_key", "user_key"],
    "feast": ["FeastServerFeatures"],
    "server": ["FeatureServerThread", "feature_server_app"],
    "writer": ["AFFINITY_SCHEMA", "POST_STATS_SCHEMA", "USER_STATS_SCHEMA", "VIEWS", "FeatureWriter"],
}  # fmt: skip
_EXPORTS = {name: submodule for submodule, names in _SUBMODULES.items() for name in names}

__all__ = list(_EXPORTS)  # loaded on first use, by __getattr__


def __getattr__(name: str) -> Any:
    """Load a re-exported name from its submodule on first use (PEP 562)."""
    submodule = _EXPORTS.get(name)
    if submodule is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{submodule}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
