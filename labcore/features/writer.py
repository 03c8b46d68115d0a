"""Writing features: rows → Feast's push sources, the Redis cache and the offline history, together.

Both online stores always get the same rows, so the fallback is as fresh as Feast; the history gets
them too, so Feast's point-in-time join can answer "what was the like count at 10:00".
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import redis

from labcore.errors import BackendUnavailable
from labcore.features.base import AuthorAffinity, PostStats, UserStats
from labcore.features.cache import RedisFeatureCache
from labcore.features.history import FeatureHistory
from labcore.features.repo import write_lock

if TYPE_CHECKING:
    import feast



USER_STATS_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("follower_count", pa.int64()),
        ("following_count", pa.int64()),
        ("post_count", pa.int64()),
        ("avg_engagement_rate", pa.float64()),
        ("event_timestamp", pa.timestamp("us", tz="UTC")),
    ]
)
POST_STATS_SCHEMA = pa.schema(
    [
        ("post_id", pa.string()),
        ("author_id", pa.string()),
        ("like_count", pa.int64()),
        ("has_media", pa.bool_()),
        ("author_follower_count", pa.int64()),
        ("created_at", pa.float64()),
        ("embedding", pa.list_(pa.float32())),
        ("event_timestamp", pa.timestamp("us", tz="UTC")),
    ]
)
AFFINITY_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("author_id", pa.string()),
        ("affinity_score", pa.float64()),
        ("interaction_count", pa.int64()),
        ("event_timestamp", pa.timestamp("us", tz="UTC")),
    ]
)

# view name -> (its push source, its parquet/Arrow schema)
VIEWS: dict[str, tuple[str, pa.Schema]] = {
    "user_stats": ("user_stats_push", USER_STATS_SCHEMA),
    "post_stats": ("post_stats_push", POST_STATS_SCHEMA),
    "user_author_affinity": ("user_author_affinity_push", AFFINITY_SCHEMA),
}


def arrow_table(rows: Sequence[Any], schema: pa.Schema, computed_at: datetime) -> pa.Table:
    """Rows (dataclasses) → an Arrow table with the view's exact types, event_timestamp included."""
    columns: dict[str, list[Any]] = {name: [] for name in schema.names}
    for row in rows:
        for name in schema.names:
            if name == "event_timestamp":
                columns[name].append(computed_at)
            elif name == "embedding":
                vector = row.embedding
                columns[name].append(None if vector is None else np.asarray(vector, dtype=np.float32))
            else:
                columns[name].append(getattr(row, name))
    return pa.table(columns, schema=schema)


def online_store_failed(exc: Exception) -> bool:
    """Online-store failures worth a fallback (Redis down, SQLite locked), not programming errors."""
    return isinstance(exc, (redis.RedisError, sqlite3.OperationalError, OSError))


class FeatureWriter:
    """Write feature rows to the Feast online store (push sources) and to the Redis cache.

    ``store`` may be None — e.g. a process with no access to the online store — and then only the
    cache is written. With ``history`` every write is also appended to the view's offline history
    (what Feast's ``PushMode.ONLINE_AND_OFFLINE`` would do, without its rewrite of the whole file per
    push), so training rows can be joined point-in-time. Every target is attempted; if any failed,
    ``BackendUnavailable`` is raised afterwards so the caller can log it (the next event or batch
    repairs the row).
    """

    def __init__(
        self,
        store: feast.FeatureStore | None,
        cache: RedisFeatureCache,
        *,
        history: FeatureHistory | None = None,
    ) -> None:
        self.store = store
        self.cache = cache
        self.history = history
        self.rows_written = 0

    def write_users(self, rows: Sequence[UserStats], computed_at: datetime | None = None) -> None:
        self._write("user_stats", rows, [RedisFeatureCache.user_hash(r) for r in rows], computed_at)

    def write_posts(self, rows: Sequence[PostStats], computed_at: datetime | None = None) -> None:
        self._write("post_stats", rows, [RedisFeatureCache.post_hash(r) for r in rows], computed_at)

    def write_affinity(self, rows: Sequence[AuthorAffinity], computed_at: datetime | None = None) -> None:
        hashes = [RedisFeatureCache.affinity_hash(r) for r in rows]
        self._write("user_author_affinity", rows, hashes, computed_at)

    def _write(
        self,
        view: str,
        rows: Sequence[Any],
        hashes: list[tuple[str, dict[str, str]]],
        computed_at: datetime | None,
    ) -> None:
        if not rows:
            return
        computed_at = computed_at or datetime.now(UTC)
        errors: list[str] = []
        push_source, schema = VIEWS[view]
        table = arrow_table(rows, schema, computed_at)
        if self.store is not None:
            from feast.data_source import PushMode

            try:
                with write_lock(self.store):
                    self.store.push(push_source, table.to_pandas(), to=PushMode.ONLINE)
            except Exception as exc:
                if not online_store_failed(exc):
                    raise
                errors.append(f"feast online store: {exc}")
        if self.history is not None:
            try:
                with write_lock(self.store) if self.store is not None else nullcontext():
                    self.history.append(view, table)  # under the lock: a batch's fold never races it
            except OSError as exc:
                errors.append(f"feature history: {exc}")
        try:
            self.cache.write(hashes, computed_at.timestamp())
        except BackendUnavailable as exc:
            errors.append(str(exc))
        self.rows_written += len(rows)
        if errors:
            raise BackendUnavailable("features", "; ".join(errors))
