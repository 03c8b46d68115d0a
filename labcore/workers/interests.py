"""Consumer group ``interests`` on ``engagements``: a like moves the liker's interest vector.

``InterestHandler`` moves each liker's interest vector toward the liked post (cold-starting it first
when the user has none yet). The vector maths lives in ``labcore.interests``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from opentelemetry import trace

from labcore.adapters.sql.store import SqlStore
from labcore.adapters.vectors.base import VectorItem, VectorStore
from labcore.domain import PostLiked, Record, engagement_from_dict, to_epoch
from labcore.embeddings import Embedder
from labcore.interests import InterestVectors
from labcore.observability import metrics, tracing

tracer = trace.get_tracer(__name__)


class InterestHandler:
    """Move each liker's interest vector toward the liked post, for a batch of ``PostLiked``.

    The post vectors of the whole batch come from the vector store in one call. A like can overtake
    its post's embedding (the two topics are consumed by different groups): with an ``embedder``
    the handler embeds such posts from their SQL content and stores the vectors, so the embedding
    worker reuses them instead of encoding the post a second time (every post is encoded once);
    without one the like is skipped and counted in ``skipped``.
    """

    def __init__(
        self,
        interests: InterestVectors,
        vectors: VectorStore,
        store: SqlStore,
        embedder: Embedder | None = None,
    ) -> None:
        self.interests = interests
        self.vectors = vectors
        self.store = store
        self.embedder = embedder
        self.likes = 0
        self.cold_starts = 0
        self.skipped = 0
        self.embedded = 0  # posts this handler encoded (and stored) because a like overtook them

    def __call__(self, records: Sequence[Record]) -> None:
        with tracing.continue_each(tracer, "interests.update_from_likes", records):
            events = (engagement_from_dict(r.value) for r in records)
            self._apply([e for e in events if isinstance(e, PostLiked)])  # follows move no vector

    def _apply(self, likes: list[PostLiked]) -> None:
        post_ids = list(dict.fromkeys(like.post_id for like in likes))
        post_vectors = self.vectors.vectors(post_ids) if post_ids else {}
        missing = [p for p in post_ids if p not in post_vectors]
        if missing and self.embedder is not None:
            with self.embedder.exclusive():  # the embedding worker may be encoding them right now
                post_vectors.update(self.vectors.vectors(missing))
                post_vectors.update(self._embed_missing([p for p in missing if p not in post_vectors]))
        for like in likes:  # in log order: one user's likes apply in the order they happened
            vector = post_vectors.get(like.post_id)
            if vector is None:
                self.skipped += 1
                continue
            if (
                self.interests.get(like.user_id) is None
                and self.interests.cold_start(like.user_id, self.store, self.vectors) is not None
            ):
                self.cold_starts += 1
            self.interests.update_from_like(like.user_id, vector)
            self.likes += 1

    def _embed_missing(self, post_ids: list[str]) -> dict[str, np.ndarray]:
        """Encode the posts no worker has embedded yet, and store them for the embedding worker."""
        if not post_ids or self.embedder is None:
            return {}
        posts = self.store.get_posts(post_ids)
        ids = list(posts)
        if not ids:
            return {}
        matrix = self.embedder.encode([posts[p].content for p in ids])
        self.vectors.upsert(
            [VectorItem(p, matrix[i], posts[p].author_id, to_epoch(posts[p].created_at)) for i, p in enumerate(ids)]
        )
        self.embedded += len(ids)
        metrics.EMBEDDINGS.inc(len(ids))
        return {p: matrix[i] for i, p in enumerate(ids)}
