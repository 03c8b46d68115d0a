"""Consumer group ``embedding`` on ``new-posts``: embed new posts and store their vectors.

``EmbeddingHandler`` embeds a micro-batch of posts in *one* model call and upserts the vectors.
Batching is the point — on a CPU the model embeds several times more posts per second at batch 128
than one at a time. Upserting by post id makes a replayed batch a no-op.

Every post is encoded once. A like can overtake its post's embedding (the ``interests`` group reads
another topic), and the interest worker then encodes the post itself and *stores* the vector
(``workers.interests``); this handler asks the store first and reuses what is there, so neither the
model's time nor its result is thrown away. Both hold ``Embedder.exclusive()`` from the look-up to
the upsert, so they never both encode a post that neither had stored yet (they share one embedder in
one process; replicas in separate processes could still race, harmlessly).
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
        self.reused = 0  # posts whose vector was already stored (by the interest worker)

    def __call__(self, records: Sequence[Record]) -> None:
        # A replay can repeat a post within one batch; embed each post once.
        events = list({e.post_id: e for e in (PostCreated.from_dict(r.value) for r in records)}.values())
        if not events:
            return
        with tracing.continue_each(tracer, "embedding.embed_post", records), self.embedder.exclusive():
            # Under the embedder's exclusive lock, the interest worker cannot encode these posts meanwhile.
            stored = self.vectors.vectors([e.post_id for e in events])  # embedded already (a like got there first)
            todo = [e for e in events if e.post_id not in stored]
            if todo:
                matrix = self.embedder.encode([e.content for e in todo])
                fresh = {e.post_id: matrix[i] for i, e in enumerate(todo)}
                self.vectors.upsert([VectorItem(e.post_id, fresh[e.post_id], e.author_id, e.created_at) for e in todo])
                stored.update(fresh)
        done = time.time()
        metrics.EMBEDDINGS.inc(len(todo))
        self.reused += len(events) - len(todo)
        for record in records:
            if record.written_at is not None:
                metrics.EMBEDDING_LAG.observe(max(0.0, done - record.written_at))
        if self.on_embedded is not None:
            with tracing.continue_each(tracer, "features.refresh_posts", records):
                self.on_embedded([(e, stored[e.post_id]) for e in events])
        self.posts += len(events)
        self.batches += 1
