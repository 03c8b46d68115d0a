"""Feature freshness: what keeps Feast's online store within seconds of the truth between batches.

A periodic batch (``materialize``) recomputes every feature from SQL; between batches two event-driven
paths refresh just the rows an event changed:

* after the embedding worker upserts a batch of new posts, ``after_embedding`` writes those posts'
  ``post_stats`` (with their real ``created_at`` and embedding) — a post from two seconds ago ranks
  as fresh;
* consumer group ``features`` on ``engagements`` (``FeatureEngagementHandler``): a batch of likes
  refreshes the liked posts' counters and the liker→author affinities, each once per batch.

``FeatureRefresh`` turns those events into rows recomputed from SQL — the source of truth, so a
redelivered event rewrites the same numbers (idempotent). The embedded runtime and the compose
embedding worker run both (``labcore.bootstrap.build_workers``), so the two profiles are equally fresh.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any

import numpy as np
from opentelemetry import trace
from sqlalchemy.engine import Engine

from labcore.adapters.sql.feature_rows import (
    affinity_rows,
    post_stats_rows,
    user_stats_rows,
)
from labcore.domain import (
    PostCreated,
    PostLiked,
    Record,
    UserFollowed,
    engagement_from_dict,
)
from labcore.errors import BackendUnavailable, LabError
from labcore.features.base import EmbeddingsFor, affinity_score
from labcore.features.repo import write_lock
from labcore.features.writer import FeatureWriter
from labcore.observability.tracing import continue_each
from labcore.workers.embedding import OnEmbedded

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


class FeatureEngagementHandler:
    """Consumer group ``features`` on ``engagements``: a like refreshes the post's and the pair's rows;
    a follow or unfollow both users' counters and the pair's affinity — so the periodic batch is a
    rare reconciliation, not the only way a follower count moves."""

    def __init__(self, refresh: FeatureRefresh) -> None:
        self.refresh = refresh
        self.likes = 0
        self.follows = 0

    def __call__(self, records: Sequence[Record]) -> None:
        events = [engagement_from_dict(record.value) for record in records]
        likes = [e for e in events if isinstance(e, PostLiked)]
        pairs = list(dict.fromkeys((e.follower_id, e.followee_id) for e in events if isinstance(e, UserFollowed)))
        with continue_each(tracer, "features.refresh_like", records):
            if likes:
                self.refresh.posts_liked([(like.user_id, like.post_id) for like in likes])
            if pairs:  # recomputed from SQL: follow and unfollow alike
                self.refresh.follows_changed(pairs)
        self.likes += len(likes)
        self.follows += len(pairs)


def after_embedding(refresh: FeatureRefresh) -> OnEmbedded:
    """The embedding worker's hook: fresh ``post_stats`` for the posts it just embedded.

    A failure is logged, not raised: the vectors are already stored, and the next event or batch
    repairs the features (raising would replay the whole embedding batch for nothing).
    """

    def on_embedded(batch: list[tuple[PostCreated, np.ndarray]]) -> None:
        try:
            refresh.posts_created({event.post_id: vector for event, vector in batch})
        except LabError as exc:
            log.warning("feature refresh after embedding failed: %s", exc)

    return on_embedded




class FeatureRefresh:
    """Keeps features fresh between batches, one event at a time.

    * ``posts_created({post_id: embedding})`` — the embedding worker calls it right after it embedded
      a micro-batch: each post gets ``post_stats`` (with its real ``created_at`` and vector) and its
      author's ``user_stats`` (post count, engagement rate) are rewritten.
    * ``posts_liked([(user_id, post_id), ...])`` — the engagement consumer, per batch: each post's like
      count, its author's engagement rate and the liker's affinity to the author (``post_liked`` for one).
    * ``follows_changed([(follower_id, followee_id), ...])`` — the ``features`` consumer, per batch of
      follows and unfollows: both users' counters and the follower's affinity.
      (``author_follower_count`` of the followee's posts is refreshed by the next batch, or when the
      post itself changes: rewriting every post of a celebrity on each follow is not worth it.)

    Rows are recomputed from SQL rather than incremented, so a redelivered event is harmless. The
    SQL read and the write happen under ``write_lock(store)``, so of two refreshes of one post the
    one that read later also writes later — even on the SQLite online store, which keeps whatever
    was written last. Every write is attempted; the first failure is raised at the end.
    """

    def __init__(
        self,
        sql_engine: Engine,
        writer: FeatureWriter,
        embeddings_for: EmbeddingsFor | None = None,
        affinity: Callable[[int, bool], float] = affinity_score,
    ) -> None:
        self.engine = sql_engine
        self.writer = writer
        self.embeddings_for = embeddings_for
        self.affinity = affinity  # the ``affinity`` extension point

    def posts_created(self, embeddings: Mapping[str, np.ndarray | None]) -> None:
        post_ids = list(embeddings)
        known = {pid: v for pid, v in embeddings.items() if v is not None}
        if len(known) < len(post_ids):
            known.update(self._lookup([pid for pid in post_ids if pid not in known]))
        with self._lock():
            computed_at = datetime.now(UTC)
            rows = post_stats_rows(self.engine, post_ids, known)
            authors = user_stats_rows(self.engine, sorted({r.author_id for r in rows}))
            self._write_all(
                lambda: self.writer.write_posts(rows, computed_at),
                lambda: self.writer.write_users(authors, computed_at),
            )

    def post_liked(self, user_id: str, post_id: str) -> None:
        self.posts_liked([(user_id, post_id)])

    def posts_liked(self, likes: Sequence[tuple[str, str]]) -> None:
        """A consumer batch of likes ``(user_id, post_id)``, refreshed together: each liked post, each
        author and each liker→author pair is recomputed and written once per batch, under one lock.

        One refresh per like cost ~50 ms (SQL, three Feast writes, the lock); catching up on a seeded
        world's thousands of likes took minutes. Per batch, a like storm on one post is one refresh.
        """
        post_ids = list(dict.fromkeys(post_id for _, post_id in likes))
        if not post_ids:
            return
        with self._lock():
            # Looked up under the lock: the embedding worker's ``posts_created`` takes it too, so a
            # vector stored before this look-up is in these rows, and one stored after it is written
            # after them. Looked up before the lock, a like that overtook its post could erase the
            # embedding the worker had just written (1 post in 20,000 on the medium world's catch-up).
            vectors = self._lookup(post_ids)
            computed_at = datetime.now(UTC)
            rows = post_stats_rows(self.engine, post_ids, vectors)
            if not rows:
                return  # the posts are gone; nothing to refresh
            author_of = {row.post_id: row.author_id for row in rows}
            authors = user_stats_rows(self.engine, sorted(set(author_of.values())))
            pairs = list(dict.fromkeys((user_id, author_of[p]) for user_id, p in likes if p in author_of))
            affinity = affinity_rows(self.engine, pairs, score=self.affinity)
            self._write_all(
                lambda: self.writer.write_posts(rows, computed_at),
                lambda: self.writer.write_users(authors, computed_at),
                lambda: self.writer.write_affinity(affinity, computed_at),
            )

    def follows_changed(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Follows or unfollows, per batch: every user's counters and every pair's affinity, one SQL
        read and one write per view (seeding a world sends tens of thousands of follows)."""
        pairs = list(dict.fromkeys(pairs))
        if not pairs:
            return
        users = list(dict.fromkeys(user for pair in pairs for user in pair))
        with self._lock():
            computed_at = datetime.now(UTC)
            stats = user_stats_rows(self.engine, users)
            affinity = affinity_rows(self.engine, pairs, score=self.affinity)
            self._write_all(
                lambda: self.writer.write_users(stats, computed_at),
                lambda: self.writer.write_affinity(affinity, computed_at),
            )

    def _lock(self) -> AbstractContextManager[Any]:
        return write_lock(self.writer.store) if self.writer.store is not None else nullcontext()

    @staticmethod
    def _write_all(*writes: Callable[[], None]) -> None:
        failure: BackendUnavailable | None = None
        for write in writes:
            try:
                write()
            except BackendUnavailable as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def _lookup(self, post_ids: list[str]) -> dict[str, np.ndarray]:
        """Vectors from the vector store, else the cache: a like must not erase a known embedding."""
        found: dict[str, np.ndarray] = {}
        if self.embeddings_for is not None and post_ids:
            try:
                found.update(self.embeddings_for(post_ids))
            except BackendUnavailable:
                pass
        missing = [pid for pid in post_ids if pid not in found]
        if missing:
            try:
                found.update(self.writer.cache.embeddings(missing))
            except BackendUnavailable:
                pass
        return found
