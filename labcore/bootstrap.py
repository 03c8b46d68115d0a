"""The composition root: the only place that turns settings into live clients.

Tests, notebooks, services and the runtime all call ``build_stack``, and ``build_workers`` wires the
event-log consumers for the embedded runtime and the compose worker services alike; any adapter can be passed in as a
keyword override (a fake from ``labcore.testing``, a server started by a test fixture, ...). Backends
are chosen by short names from settings and imported lazily, so ``import labcore`` never needs kafka,
minio or pinot to be installed or reachable.

Cheap clients (SQL, Redis, the event log) are built at once; media (the S3 bucket) on first use, so
a worker that never stores a picture never needs the S3 server. The read path's components are
built on first use: in the embedded profile the vector store (Qdrant Edge) and the OLAP store
(DuckDB) are files one process owns — the runtime — so a ``feedlab seed`` process that only writes
must never open them. Touching ``stack.vectors`` in such a process is what would fail, loudly.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from labcore import extensions
from labcore.adapters.events.base import EventLog
from labcore.adapters.impressions.redis_recent import RedisRecentImpressions
from labcore.adapters.media.base import MediaStore
from labcore.adapters.redis.mailboxes import RedisMailboxes
from labcore.adapters.sql.store import SqlStore
from labcore.domain import TOPIC_ENGAGEMENTS, TOPIC_IMPRESSIONS, TOPIC_NEW_POSTS
from labcore.errors import LabError
from labcore.features.cache import RedisFeatureCache
from labcore.interests import InterestVectors
from labcore.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Sequence

    from labcore.adapters.impressions.base import ImpressionStore
    from labcore.adapters.vectors.base import VectorStore
    from labcore.embeddings import Embedder
    from labcore.features.base import FeatureSource
    from labcore.features.writer import FeatureWriter
    from labcore.ranking.client import RankingClient
    from labcore.ranking.in_process import InProcessRanker
    from labcore.workers.loop import ConsumerLoop

# Built on first use; ``build_stack(name=...)`` overrides any of them.
LAZY = ("media", "vectors", "impressions", "features", "ranker", "embedder")


class Stack:
    """Every backend client the lab uses, built once and shared."""

    def __init__(
        self,
        settings: Settings,
        store: SqlStore,
        redis_client: redis.Redis,
        events: EventLog,
        **overrides: Any,
    ) -> None:
        self.settings = settings
        self.store = store
        self.redis = redis_client
        self.events = events
        self.mailboxes = RedisMailboxes(
            redis_client,
            cap=settings.mailbox_cap,
            ttl_seconds=settings.mailbox_ttl_seconds,
            chunk_size=settings.fanout_chunk_size,
        )
        self.recent_impressions = RedisRecentImpressions(
            redis_client,
            cap=settings.recent_impressions_cap,
            window_seconds=settings.impression_window_hours * 3600,
        )
        self.interests = InterestVectors(
            redis_client, settings.interest_rate, extensions.load(settings, "interest_update")
        )
        self.feature_cache = RedisFeatureCache(redis_client)
        for name, value in overrides.items():
            if name not in LAZY:
                raise TypeError(f"unknown stack component {name!r}")
            if value is not None:
                self.__dict__[name] = value  # what cached_property would have stored

    # --- built on first use ----------------------------------------------------------------------
    @cached_property
    def media(self) -> MediaStore:
        """The S3 bucket: a worker process that never touches media never needs the S3 server."""
        return build_media(self.settings)

    @cached_property
    def vectors(self) -> VectorStore:
        settings = self.settings
        vectors: VectorStore
        if settings.resolved_vector_url():
            from labcore.adapters.vectors.qdrant import QdrantVectors

            vectors = QdrantVectors.server(settings.resolved_vector_url(), settings.vector_collection)
        else:
            from labcore.adapters.vectors.qdrant_edge import QdrantEdgeVectors

            vectors = QdrantEdgeVectors(
                settings.data_dir / "qdrant-edge" / settings.vector_collection,
                hnsw_ef=settings.vector_hnsw_ef,
                optimize_after=settings.vector_optimize_after,
            )
        vectors.ensure_collection()
        return vectors

    @cached_property
    def impressions(self) -> ImpressionStore:
        """The OLAP store behind the seen-in-24h filter."""
        if self.settings.resolved_olap() == "pinot":
            from labcore.adapters.impressions.pinot import PinotImpressions

            return PinotImpressions(self.settings.pinot_broker_url, query=extensions.load(self.settings, "seen_query"))
        from labcore.adapters.impressions.duckdb import DuckdbImpressions

        olap = DuckdbImpressions(
            self.settings.data_dir / "impressions.duckdb", query=extensions.load(self.settings, "seen_query")
        )
        olap.ensure_table()
        return olap

    @cached_property
    def features(self) -> FeatureSource:
        """Feast's online features: in-process where this profile owns the store, else its server."""
        settings = self.settings
        if settings.resolved_feature_read() == "in-process":
            from labcore.features.feast import FeastOnlineFeatures
            from labcore.features.repo import open_serving_store

            return FeastOnlineFeatures(lambda: open_serving_store(settings, redis_url=settings.redis_url))
        from labcore.features.feast import FeastServerFeatures

        return FeastServerFeatures(
            settings.resolved_feature_server_url(),
            settings.feature_timeout_seconds,
            include_embeddings=settings.feature_include_embeddings,
        )

    @cached_property
    def ranker(self) -> RankingClient | InProcessRanker:
        """The ranking model: loaded in this process where this profile owns it, else its service."""
        settings = self.settings
        if settings.resolved_ranking_read() == "in-process":
            from labcore.ranking.in_process import InProcessRanker
            from labcore.ranking.scorer import Scorer

            return InProcessRanker(Scorer.from_settings(settings), seed=settings.seed)
        from labcore.ranking.client import RankingClient

        return RankingClient(
            self.settings.resolved_ranking_url(), self.settings.ranking_timeout_seconds, seed=self.settings.seed
        )

    @cached_property
    def embedder(self) -> Embedder:
        from labcore.embeddings import (
            Embedder,  # the model itself loads on first encode
        )

        return Embedder(batch_size=self.settings.embedding_forward_batch_size)

    def close(self) -> None:
        for name in ("vectors", "impressions", "features", "ranker"):
            component = self.__dict__.get(name)
            if component is not None and hasattr(component, "close"):
                component.close()
        self.events.close()
        self.redis.close()
        self.store.dispose()


def redis_client(url: str) -> redis.Redis:
    """A client that fails fast: a down Redis must become a fallback within a request, not hang it.

    redis-py's default retries with exponential back-off (seconds per call); one immediate retry is
    enough to replace a stale pooled connection after a Redis restart.
    """
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        retry=Retry(NoBackoff(), 1),
    )


def build_event_log(settings: Settings, client: redis.Redis) -> EventLog:
    if settings.resolved_event_log() == "kafka":
        from labcore.adapters.events.kafka import KafkaEventLog

        return KafkaEventLog(
            settings.kafka_bootstrap, settings.event_partitions, settings.kafka_bootstrap_timeout_ms
        )
    from labcore.adapters.events.redis_streams import RedisStreamsEventLog

    return RedisStreamsEventLog(client, settings.event_partitions)


def build_media(settings: Settings) -> MediaStore:
    """The S3 bucket for media (SeaweedFS in both profiles), created if missing."""
    from labcore.adapters.media.s3 import S3Media

    media = S3Media(
        settings.s3_endpoint,
        settings.s3_access_key,
        settings.s3_secret_key,
        settings.s3_bucket,
        secure=settings.s3_secure,
        public_endpoint=settings.s3_public_endpoint,
    )
    media.ensure_bucket()
    return media


def build_stack(
    settings: Settings | None = None,
    *,
    store: SqlStore | None = None,
    redis: redis.Redis | None = None,
    events: EventLog | None = None,
    **lazy: Any,
) -> Stack:
    """Build the stack from ``settings``; keyword arguments replace single adapters.

    ``lazy`` may name any of ``media``, ``vectors``, ``impressions``, ``features``, ``ranker``, ``embedder``.
    """
    settings = settings or Settings()
    if redis is None:
        if not settings.redis_url:
            raise LabError(
                "no Redis URL: set FEEDLAB_REDIS_URL, or let `feedlab up` start the embedded server"
            )
        redis = redis_client(settings.redis_url)
    return Stack(
        settings,
        store=store or SqlStore.from_url(settings.resolved_sql_url()),
        redis_client=redis,
        events=events or build_event_log(settings, redis),
        **lazy,
    )


# The workers by name (a runtime thread, a compose service's loop): each one consumer group.
WORKERS = ("fanout-worker", "embedding-worker", "interest-worker", "feature-worker", "impressions-loader")


def build_workers(
    stack: Stack, names: Sequence[str] = WORKERS, *, writer: FeatureWriter | None = None
) -> dict[str, ConsumerLoop]:
    """The consumer loops for ``names``, wired from settings — the one place workers are put together.

    The embedded runtime runs all five in threads; in compose the ``fanout_worker`` service runs
    ``fanout-worker`` and the ``embedding_worker`` service the embedding, interest and feature
    workers. ``writer`` (where fresh features go) is needed by ``embedding-worker`` (a new post's
    ``post_stats``) and ``feature-worker`` (a like's counters and affinities).
    """
    from labcore.workers.embedding import EmbeddingHandler
    from labcore.workers.fanout import FanoutHandler
    from labcore.workers.features import (
        FeatureEngagementHandler,
        FeatureRefresh,
        after_embedding,
    )
    from labcore.workers.impressions import ImpressionHandler
    from labcore.workers.interests import InterestHandler
    from labcore.workers.loop import ConsumerLoop

    settings, worker_id = stack.settings, stack.settings.worker_id
    unknown = set(names) - set(WORKERS)
    if unknown:
        raise ValueError(f"unknown workers {sorted(unknown)}; known: {', '.join(WORKERS)}")
    needs_writer = {"embedding-worker", "feature-worker"} & set(names)
    if needs_writer and writer is None:
        raise ValueError(f"{sorted(needs_writer)} need a FeatureWriter")
    refresh = None
    if writer is not None:
        refresh = FeatureRefresh(
            stack.store.engine, writer, embeddings_for=stack.vectors.vectors, affinity=extensions.load(settings, "affinity")
        )

    def build(name: str) -> ConsumerLoop:
        if name == "fanout-worker":
            handler = FanoutHandler(stack.store, stack.mailboxes, extensions.load(settings, "fanout"))
            return ConsumerLoop(stack.events, TOPIC_NEW_POSTS, "fanout", f"fanout-{worker_id}", handler)
        if name == "embedding-worker":
            # One poll is one model call; inside it the embedder runs ``embedding_forward_batch_size``
            # texts per forward pass.
            handler = EmbeddingHandler(stack.embedder, stack.vectors, after_embedding(refresh))
            return ConsumerLoop(
                stack.events, TOPIC_NEW_POSTS, "embedding", f"embedding-{worker_id}", handler,
                batch_size=settings.embedding_batch_size,
            )  # fmt: skip
        if name == "interest-worker":
            handler = InterestHandler(stack.interests, stack.vectors, stack.store, stack.embedder)
            return ConsumerLoop(stack.events, TOPIC_ENGAGEMENTS, "interests", f"interests-{worker_id}", handler)
        if name == "feature-worker":
            handler = FeatureEngagementHandler(refresh)
            return ConsumerLoop(
                stack.events, TOPIC_ENGAGEMENTS, "features", f"features-{worker_id}", handler,
                batch_size=settings.feature_refresh_batch_size,
            )  # fmt: skip
        handler = ImpressionHandler(stack.impressions)
        return ConsumerLoop(stack.events, TOPIC_IMPRESSIONS, "impressions-loader", f"loader-{worker_id}", handler)

    return {name: build(name) for name in names}
