"""Consumer group ``embedding`` on ``new-posts``: embed new posts and store their vectors.

``EmbeddingHandler`` embeds a micro-batch of posts in *one* model call and upserts the vectors.
Batching is the point — on a CPU the model embeds several times more posts per second at batch 128
than one at a time. Upserting by post id makes a replayed batch a no-op.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
from opentelemetry import trace

from labcore.adapters.vectors.base import VectorItem, VectorStore
from labcore.domain import PostCreated, Record
from labcore.embeddings import Embedder
from labcore.observability import metrics, tracing

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
