"""Feature freshness: what keeps Feast's online store within seconds of the truth between batches.

A periodic batch (``materialize``) recomputes every feature from SQL; between batches two event-driven
paths refresh just the rows an event changed:

* after the embedding worker upserts a batch of new posts, ``after_embedding`` writes those posts'
  ``post_stats`` (with their real ``created_at`` and embedding) — a post from two seconds ago ranks
  as fresh;
* consumer group ``features`` on ``engagements`` (``FeatureEngagementHandler``): a batch of likes
  refreshes the liked posts' counters and the liker→author affinities, each once per batch.

The embedded runtime and the compose embedding worker run both, so the two profiles are equally fresh.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from opentelemetry import trace

from labcore import extensions
from labcore.adapters.events.base import EventLog
from labcore.bootstrap import Stack
from labcore.consumer import ConsumerLoop
from labcore.domain import TOPIC_ENGAGEMENTS, PostCreated, PostLiked, Record
from labcore.embedding_worker import OnEmbedded, worker_loops
from labcore.errors import LabError
from labcore.features import FeatureRefresh, FeatureWriter
from labcore.tracing import continue_each

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


class FeatureEngagementHandler:
    """Consumer group ``features`` on ``engagements``: a like refreshes the post's and pair's rows."""

    def __init__(self, refresh: FeatureRefresh) -> None:
        self.refresh = refresh
        self.likes = 0

    def __call__(self, records: Sequence[Record]) -> None:
        likes = [PostLiked.from_dict(record.value) for record in records]
        with continue_each(tracer, "features.refresh_like", records):
            self.refresh.posts_liked([(like.user_id, like.post_id) for like in likes])
        self.likes += len(likes)


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


def engagement_loop(events: EventLog, refresh: FeatureRefresh, worker_id: str) -> ConsumerLoop:
    """The ``features`` consumer group on ``engagements``."""
    return ConsumerLoop(events, TOPIC_ENGAGEMENTS, "features", f"features-{worker_id}", FeatureEngagementHandler(refresh))


def fresh_worker_loops(stack: Stack, writer: FeatureWriter) -> tuple[ConsumerLoop, ConsumerLoop, ConsumerLoop]:
    """The embedding worker's loops with features kept fresh: ``(embedding, interests, features)``.

    What the embedded runtime and the compose embedding worker both run: embedding (then the new
    posts' features), interest vectors, and the ``features`` group refreshing likes.
    """
    settings = stack.settings
    refresh = FeatureRefresh(
        stack.store.engine,
        writer,
        embeddings_for=stack.vectors.vectors,
        affinity=extensions.load(settings, "affinity"),
    )
    embedding, interests = worker_loops(
        stack.events,
        stack.embedder,
        stack.vectors,
        stack.interests,
        stack.store,
        worker_id=settings.worker_id,
        batch_size=settings.embedding_batch_size,
        on_embedded=after_embedding(refresh),
    )
    return embedding, interests, engagement_loop(stack.events, refresh, settings.worker_id)
