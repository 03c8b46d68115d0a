"""The embedding worker's two batch handlers (plugged into ``ConsumerLoop``).

* ``EmbeddingHandler`` over ``new-posts``: embeds a micro-batch of posts in *one* model call and
  upserts the vectors. Batching is the point — on a CPU the model embeds several times more posts per
  second at batch 128 than one at a time. Upserting by post id makes a replayed batch a no-op.
* ``EngagementHandler`` over ``engagements``: moves each liker's interest vector toward the liked
  post (cold-starting it first when the user has none yet).

``worker_loops`` builds both consumer loops; the ``embedding_worker`` service and the embedded
runtime run them in threads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
from opentelemetry import trace

from labcore import metrics, tracing
from labcore.adapters.events.base import EventLog
from labcore.adapters.sql.store import SqlStore
from labcore.adapters.vectors.base import VectorItem, VectorStore
from labcore.consumer import ConsumerLoop
from labcore.domain import TOPIC_ENGAGEMENTS, TOPIC_NEW_POSTS, PostCreated, PostLiked, Record
from labcore.embeddings import Embedder
from labcore.interests import InterestVectors

tracer = trace.get_tracer(__name__)

OnEmbedded = Callable[[list[tuple[PostCreated, np.ndarray]]], None]


class EmbeddingHandler:
    """Embed and upsert a batch of ``PostCreated`` events, then tell ``on_embedded`` (if any).

    ``on_embedded`` is the freshness hook for whoever else needs the real vectors (the feature
    store); it runs after the upsert, so a failure there replays the batch, which is harmless.
    """

    def __init__(self, embedder: Embedder, vectors: VectorStore, on_embedded: OnEmbedded | None = None) -> None:
        self.embedder = embedder
        self.vectors = vectors
        self.on_embedded = on_embedded
        self.posts = 0
        self.batches = 0

    def __call__(self, records: Sequence[Record]) -> None:
        # A replay can repeat a post within one batch; embed each post once.
        events = list({e.post_id: e for e in (PostCreated.from_dict(r.value) for r in records)}.values())
        if not events:
            return
        with tracing.continue_each(tracer, "embedding.embed_post", records):
            matrix = self.embedder.encode([e.content for e in events])
            self.vectors.upsert(
                [VectorItem(e.post_id, matrix[i], e.author_id, e.created_at) for i, e in enumerate(events)]
            )
        done = time.time()
        metrics.EMBEDDINGS.inc(len(events))
        for record in records:
            if record.written_at is not None:
                metrics.EMBEDDING_LAG.observe(max(0.0, done - record.written_at))
        if self.on_embedded is not None:
            with tracing.continue_each(tracer, "features.refresh_posts", records):
                self.on_embedded([(e, matrix[i]) for i, e in enumerate(events)])
        self.posts += len(events)
        self.batches += 1


class EngagementHandler:
    """Move each liker's interest vector toward the liked post, for a batch of ``PostLiked``.

    The post vectors of the whole batch come from the vector store in one call. A like can overtake
    its post's embedding (the two topics are consumed by different groups): with an ``embedder``
    the handler embeds such posts from their SQL content — the same model gives the same vector the
    embedding worker will store — otherwise the like is skipped and counted in ``skipped``.
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

    def __call__(self, records: Sequence[Record]) -> None:
        with tracing.continue_each(tracer, "interests.update_from_likes", records):
            self._apply([PostLiked.from_dict(r.value) for r in records])

    def _apply(self, likes: list[PostLiked]) -> None:
        post_ids = list(dict.fromkeys(like.post_id for like in likes))
        post_vectors = self.vectors.vectors(post_ids) if post_ids else {}
        post_vectors.update(self._embed_missing([p for p in post_ids if p not in post_vectors]))
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
        if not post_ids or self.embedder is None:
            return {}
        posts = self.store.get_posts(post_ids)
        ids = list(posts)
        matrix = self.embedder.encode([posts[p].content for p in ids])
        return {p: matrix[i] for i, p in enumerate(ids)}


def worker_loops(
    events: EventLog,
    embedder: Embedder,
    vectors: VectorStore,
    interests: InterestVectors,
    store: SqlStore,
    *,
    worker_id: str = "0",
    batch_size: int = 128,
    on_embedded: OnEmbedded | None = None,
) -> tuple[ConsumerLoop, ConsumerLoop]:
    """The two loops of the embedding worker: groups ``embedding`` and ``interests``.

    One poll is one model call, so ``batch_size`` is ``settings.embedding_batch_size``; inside the
    call the embedder runs ``settings.embedding_forward_batch_size`` texts per forward pass.
    """
    embedding = ConsumerLoop(
        events,
        TOPIC_NEW_POSTS,
        "embedding",
        f"embedding-{worker_id}",
        EmbeddingHandler(embedder, vectors, on_embedded),
        batch_size=batch_size,
    )
    engagement = ConsumerLoop(
        events,
        TOPIC_ENGAGEMENTS,
        "interests",
        f"interests-{worker_id}",
        EngagementHandler(interests, vectors, store, embedder),
    )
    return embedding, engagement
