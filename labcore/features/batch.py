"""The feature batch: SQL → parquet → ``feast apply`` → ``materialize`` into the online store (+ the cache).

It recomputes every row from SQL; the event-driven refresh (``labcore.workers.features``) keeps rows
fresh between batches.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from labcore import extensions
from labcore.adapters.sql.feature_rows import (
    affinity_rows,
    all_post_ids,
    post_stats_rows,
    user_stats_rows,
)
from labcore.errors import BackendUnavailable
from labcore.features.base import EmbeddingsFor
from labcore.features.cache import RedisFeatureCache
from labcore.features.history import FeatureHistory
from labcore.features.repo import ensure_applied, offline_data_dir, write_lock
from labcore.features.writer import VIEWS, arrow_table, online_store_failed
from labcore.settings import Settings

if TYPE_CHECKING:
    import feast




@dataclass(frozen=True)
class MaterializeReport:
    snapshot_at: datetime
    users: int
    posts: int
    posts_with_embedding: int
    affinity_pairs: int
    seconds: dict[str, float]  # per stage: sql, parquet, apply, materialize, cache


def materialize(
    settings: Settings,
    sql_engine: Engine,
    feast_store: feast.FeatureStore | None,
    cache: RedisFeatureCache,
    *,
    embeddings_for: EmbeddingsFor,
) -> MaterializeReport:
    """The batch path: SQL → parquet → ``feast apply`` (if changed) → online store, and the cache.

    ``embeddings_for(post_ids)`` returns the real vectors (the vector store provides them); posts it
    does not know keep ``embedding = None``. The snapshot time is taken before the first SQL read
    and is every row's ``event_timestamp``; Feast materializes exactly that snapshot.

    The whole run holds ``write_lock(feast_store)``: a push that comes meanwhile waits, then lands
    on top with its newer numbers, so the snapshot never overwrites a fresher row — which matters
    for the SQLite online store, which (unlike Feast's Redis store and the cache) does not compare
    timestamps. Pushes wait for the duration of a batch (~0.1 s for the tiny world).
    """
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = round(now - clock, 4)
        clock = now

    with write_lock(feast_store) if feast_store is not None else nullcontext():
        snapshot_at = datetime.now(UTC)
        user_rows = user_stats_rows(sql_engine)
        ids = all_post_ids(sql_engine)
        vectors = dict(embeddings_for(ids)) if ids else {}
        post_rows = post_stats_rows(sql_engine, None, vectors)
        pair_rows = affinity_rows(sql_engine, score=extensions.load(settings, "affinity"))
        lap("sql")

        # The snapshot becomes a part of each view's history; older parts are folded first.
        history = FeatureHistory(offline_data_dir(settings))
        for view, rows in (("user_stats", user_rows), ("post_stats", post_rows), ("user_author_affinity", pair_rows)):
            history.write_batch(view, arrow_table(rows, VIEWS[view][1], snapshot_at))
        lap("parquet")

        if feast_store is not None:
            try:
                ensure_applied(feast_store)  # `feast apply`, when the definitions changed
                lap("apply")
                # Exactly this snapshot: every row's event_timestamp is snapshot_at.
                feast_store.materialize(snapshot_at - timedelta(seconds=1), snapshot_at + timedelta(seconds=1))
            except Exception as exc:
                if not online_store_failed(exc):
                    raise
                raise BackendUnavailable("features", f"materialize: {exc}") from exc
            lap("materialize")

        stamp = snapshot_at.timestamp()
        cache.write((RedisFeatureCache.user_hash(r) for r in user_rows), stamp)
        cache.write((RedisFeatureCache.post_hash(r) for r in post_rows), stamp)
        cache.write((RedisFeatureCache.affinity_hash(r) for r in pair_rows), stamp)
        lap("cache")
    return MaterializeReport(
        snapshot_at=snapshot_at,
        users=len(user_rows),
        posts=len(post_rows),
        posts_with_embedding=sum(r.embedding is not None for r in post_rows),
        affinity_pairs=len(pair_rows),
        seconds=seconds,
    )
