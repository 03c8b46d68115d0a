"""The read path: ``FeedPipeline.run(user_id)`` — four stages, every candidate's journey recorded.

1. ``stage1_retrieval``  social (mailbox + celebrity pull) and discovery (ANN from the interest vector)
2. ``stage2_filter``     drop what the user has seen in the last 24 h
3. ``stage3_rank``       features (Feast) + topic similarity, then the ranking service's scores
4. ``stage4_rerank``     author diversity, the out-of-network mix, (exploration,) hydration

Each dependency has a named fallback, reported in ``FeedResult.fallbacks`` (and so in the response):

======================  ==========================================================
``mailbox:sql``         Redis down: the social candidates come straight from SQL
``vectors:social-only`` vector store or interest vectors down: no discovery
``olap:redis-recent``   OLAP down: the bounded recent-impressions set in Redis
``impressions:none``    both down: nothing is filtered (better a repeat than nothing)
``features:redis-cache`` Feast down: the Redis feature cache
``features:sql``        both down: counts and times straight from the post rows
``ranking:recency``     ranking service down: newest first
======================  ==========================================================

Each stage is a span named after its module (``stage1_retrieval``, ``stage2_impression_filtering``,
``stage3_feature_fetch``, ``stage3_ranking``, ``stage4_rerank_hydrate``), a histogram sample and a
figure in the response's ``stage_latency_ms``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opentelemetry import trace

from labcore import extensions
from labcore.feed import stage1_retrieval, stage2_filter, stage3_rank, stage4_rerank
from labcore.feed.journey import FeedItem, Journey
from labcore.observability import metrics
from labcore.observability.tracing import trace_id_of

if TYPE_CHECKING:
    from labcore.bootstrap import Stack

tracer = trace.get_tracer(__name__)


@dataclass
class FeedResult:
    user_id: str
    items: list[FeedItem]
    journeys: list[Journey]
    candidates_social: int = 0
    candidates_discovery: int = 0
    candidates_after_filter: int = 0
    fallbacks: list[str] = field(default_factory=list)
    feature_source: str = "feast"
    model_version: str = ""
    stage_ms: dict[str, float] = field(default_factory=dict)
    latency_ms: float = 0.0
    trace_id: str | None = None


class StageTimer:
    """Each named stage is a span (the trace), a histogram sample (the metrics) and a figure in ms
    (the response) — three views of one measurement: the span's own start and end when it records
    (so the response and the trace agree to the nanosecond), else the same clock around the stage."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[trace.Span]:
        start = time.perf_counter()
        span = tracer.start_span(name)
        try:
            with trace.use_span(span, end_on_exit=False):
                yield span
        finally:
            span.end()
            started, ended = getattr(span, "start_time", None), getattr(span, "end_time", None)
            seconds = (ended - started) / 1e9 if started and ended else time.perf_counter() - start
            self.ms[name] = round(seconds * 1000, 3)
            metrics.FEED_STAGE_LATENCY.labels(name).observe(seconds)


class FeedPipeline:
    """The four stages over the stack's adapters. Build once, call ``run`` per request."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.settings = stack.settings
        # labcore's own functions unless the settings name a replacement (labcore.extensions)
        self._read_mailbox = extensions.load(self.settings, "mailbox_reader")
        self._fetch_features = extensions.load(self.settings, "feature_fallback")
        self._similarity = extensions.load(self.settings, "topic_similarity")
        self._rerank = extensions.load(self.settings, "reranker")

    def run(self, user_id: str, limit: int | None = None, now: float | None = None) -> FeedResult:
        """Build one feed; the ``get_feed`` span holds one child span per stage."""
        with tracer.start_as_current_span("get_feed", attributes={"user_id": user_id}) as span:
            result = self._run(user_id, limit, now)
            span.set_attributes(
                {
                    "candidates.social": result.candidates_social,
                    "candidates.discovery": result.candidates_discovery,
                    "candidates.after_filter": result.candidates_after_filter,
                    "items": len(result.items),
                    "feature_source": result.feature_source,
                    "model_version": result.model_version,
                    "fallbacks": result.fallbacks,
                }
            )
            result.trace_id = trace_id_of(span)
        record_metrics(result)
        return result

    def _run(self, user_id: str, limit: int | None, now: float | None) -> FeedResult:
        started = time.perf_counter()
        stack, settings = self.stack, self.settings
        limit = limit or settings.feed_limit
        now = now or time.time()
        stack.store.get_user(user_id)  # NotFound for an unknown user
        timer, fallbacks = StageTimer(), []

        with timer.stage("stage1_retrieval"):
            found = stage1_retrieval.retrieve(stack, user_id, fallbacks, self._read_mailbox)
        journeys = found.social + found.discovery

        with timer.stage("stage2_impression_filtering") as span:
            survivors = stage2_filter.filter_seen(stack, user_id, journeys, now, fallbacks)
            span.set_attributes({"candidates.in": len(journeys), "candidates.out": len(survivors)})

        with timer.stage("stage3_feature_fetch") as span:
            posts = stack.store.get_posts([j.post_id for j in survivors])
            for journey in survivors:
                if journey.post_id not in posts:
                    journey.filtered = "post_missing"
                else:
                    journey.author_id = posts[journey.post_id].author_id
            survivors = [j for j in survivors if j.filtered is None]
            fetch_started = time.perf_counter()
            feature_source = stage3_rank.features(stack, user_id, survivors, posts, fallbacks, self._fetch_features)
            metrics.FEATURE_FETCH.labels(feature_source).observe(time.perf_counter() - fetch_started)
            stage3_rank.topic_similarity(stack, found.interest, survivors, self._similarity)
            span.set_attribute("feature_source", feature_source)

        with timer.stage("stage3_ranking") as span:
            model_version = stage3_rank.rank(stack, user_id, survivors, now, fallbacks)
            span.set_attributes({"model_version": model_version, "candidates": len(survivors)})

        with timer.stage("stage4_rerank_hydrate"):
            kept = self._rerank(
                survivors,
                limit,
                max_per_author=settings.max_posts_per_author,
                out_of_network_share=settings.out_of_network_share,
            )
            if settings.exploration_share > 0:  # off by default: the page is the ranker's
                rng = stage4_rerank.exploration_rng(settings.seed, user_id, [j.post_id for j in kept])
                kept = stage4_rerank.explore(kept, survivors, settings.exploration_share, rng)
            items = stage4_rerank.hydrate(stack, kept, posts)

        return FeedResult(
            user_id=user_id,
            items=items,
            journeys=journeys,
            candidates_social=len(found.social),
            candidates_discovery=len(found.discovery),
            candidates_after_filter=len(survivors),
            fallbacks=fallbacks,
            feature_source=feature_source,
            model_version=model_version,
            stage_ms=timer.ms,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
        )


def record_metrics(result: FeedResult) -> None:
    """One request's figures into the Prometheus metrics (stage latencies are observed as they run)."""
    metrics.FEED_LATENCY.observe(result.latency_ms / 1000)
    for source, count in Counter(j.source for j in result.journeys).items():
        metrics.FEED_CANDIDATES.labels(source).inc(count)
    retrieved = result.candidates_social + result.candidates_discovery
    if retrieved:
        seen = sum(1 for j in result.journeys if j.filtered == "seen_in_24h")
        metrics.IMPRESSION_FILTER_SURVIVAL.observe((retrieved - seen) / retrieved)
    for fallback in result.fallbacks:
        metrics.FEED_FALLBACKS.labels(fallback.split(":")[0], fallback).inc()
