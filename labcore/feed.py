"""The read path: ``FeedPipeline.run(user_id)`` — four stages, every candidate's journey recorded.

1. **Retrieval.** *Social*: the user's mailbox (fan-out on write; rebuilt from the follow graph when
   missing) merged with the celebrity pull (recent ``delivery="pull"`` posts of followed authors, read
   from SQL). *Discovery*: ANN top-K from the user's interest vector, excluding their own posts.
2. **Impression filtering.** Drop what the user has *seen* (client-reported impressions) in the last
   24 h, asked of the OLAP store. Serving a post is not seeing it.
3. **Features and ranking.** Online features (Feast), ``topic_similarity`` = cosine(interest vector,
   post embedding), then the ranking service scores every candidate.
4. **Re-rank and hydrate.** At most N posts per author, a cap on out-of-network (discovery) posts,
   then the top ``limit`` hydrated from SQL. With ``exploration_share`` > 0 a few slots go to random
   candidates, marked ``explored`` (``labcore.exploration``: unbiased data for a learned ranker).

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
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from opentelemetry import trace

from labcore import extensions, metrics
from labcore.bootstrap import Stack
from labcore.domain import Post, User, to_epoch
from labcore.errors import BackendUnavailable
from labcore.exploration import exploration_rng, explore
from labcore.ranking import Candidate, recency
from labcore.tracing import trace_id_of

if TYPE_CHECKING:
    from labcore.adapters.redis.mailboxes import RedisMailboxes
    from labcore.adapters.sql.store import SqlStore
    from labcore.features import FeatureSource, RankingFeatures

tracer = trace.get_tracer(__name__)


@dataclass
class Journey:
    """One candidate's path through the pipeline: what ``GET /feed/explain`` shows."""

    post_id: str
    source: str  # social | celebrity | discovery
    retrieval_score: float  # creation time (social) or ANN similarity (discovery)
    author_id: str | None = None
    filtered: str | None = None  # why stage 2 removed it
    features: dict[str, Any] = field(default_factory=dict)
    score: float | None = None
    rank: int | None = None
    dropped: str | None = None  # why stage 4 did not keep it
    explored: bool = False  # placed by exploration, not by the ranker (labcore.exploration)

    @property
    def in_network(self) -> bool:
        return self.source != "discovery"


@dataclass(frozen=True)
class FeedItem:
    post: Post
    author: User
    source: str
    score: float | None
    media_url: str | None
    explored: bool = False


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
    (the response) — three views of one measurement."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[trace.Span]:
        start = time.perf_counter()
        with tracer.start_as_current_span(name) as span:
            try:
                yield span
            finally:
                seconds = time.perf_counter() - start
                self.ms[name] = round(seconds * 1000, 3)
                metrics.FEED_STAGE_LATENCY.labels(name).observe(seconds)


def cosine(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    if a is None or b is None:
        return None
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b) / norm) if norm else None


# --- the stages' pure pieces: labcore's side of the extension points (labcore.extensions) ---------
def read_mailbox(
    user_id: str, store: SqlStore, mailboxes: RedisMailboxes, *, limit: int, cap: int
) -> list[tuple[str, float]]:
    """The newest ``limit`` mailbox entries; a missing or expired mailbox is first rebuilt from the
    follow graph (the newest ``cap`` pushed posts of the followed authors). Redis errors propagate
    as ``BackendUnavailable`` — the caller's ``mailbox:sql`` fallback."""
    built, entries = mailboxes.read(user_id, limit)
    if not built:
        entries = store.followed_posts(user_id, "push", cap)
        mailboxes.rebuild(user_id, entries)
        entries = entries[:limit]
    return entries


def fetch_features(
    user_id: str, keys: Sequence[tuple[str, str]], primary: FeatureSource, cache: FeatureSource
) -> tuple[str, RankingFeatures]:
    """``(source, rows)``: Feast's rows (``feast``); when Feast is down the Redis cache's
    (``redis-cache``); when both are down none (``sql``: the feed fills in from the post rows)."""
    try:
        return "feast", primary.ranking_features(user_id, keys)
    except BackendUnavailable:
        pass
    try:
        return "redis-cache", cache.ranking_features(user_id, keys)
    except BackendUnavailable:
        return "sql", {}


def rerank(
    journeys: list[Journey], limit: int, *, max_per_author: int, out_of_network_share: float
) -> list[Journey]:
    """Author diversity and the in/out-of-network mix over the score order; keeps ``limit``.

    Sets ``rank`` (1, 2, ...) on each kept journey and ``dropped`` (``below_cutoff``,
    ``author_cap``, ``out_of_network_cap``) on the others; returns the kept ones in rank order.
    """
    per_author: dict[str, int] = {}
    out_of_network_cap = math.floor(out_of_network_share * limit)
    out_of_network = 0
    kept: list[Journey] = []
    for journey in sorted(journeys, key=lambda j: j.score or 0.0, reverse=True):
        author = journey.author_id or ""
        if len(kept) >= limit:
            journey.dropped = "below_cutoff"
        elif per_author.get(author, 0) >= max_per_author:
            journey.dropped = "author_cap"
        elif not journey.in_network and out_of_network >= out_of_network_cap:
            journey.dropped = "out_of_network_cap"
        else:
            per_author[author] = per_author.get(author, 0) + 1
            out_of_network += 0 if journey.in_network else 1
            journey.rank = len(kept) + 1
            kept.append(journey)
    return kept


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

    # --- stage 1 ---------------------------------------------------------------------------------
    def social(self, user_id: str, fallbacks: list[str]) -> list[Journey]:
        store, mailboxes, limit = self.stack.store, self.stack.mailboxes, self.settings.social_candidates
        try:
            entries = self._read_mailbox(user_id, store, mailboxes, limit=limit, cap=self.settings.mailbox_cap)
        except BackendUnavailable:
            fallbacks.append("mailbox:sql")
            entries = store.followed_posts(user_id, "push", limit)
        pulled = store.followed_posts(user_id, "pull", self.settings.celebrity_pull_limit)
        journeys: dict[str, Journey] = {}
        for post_id, score in entries:
            journeys[post_id] = Journey(post_id, "social", score)
        for post_id, score in pulled:
            journeys.setdefault(post_id, Journey(post_id, "celebrity", score))
        return sorted(journeys.values(), key=lambda j: j.retrieval_score, reverse=True)[:limit]

    def discovery(self, user_id: str, interest: np.ndarray | None, already: set[str]) -> list[Journey]:
        if interest is None:
            return []  # no posts exist yet to build a taste from
        hits = self.stack.vectors.search(
            interest, self.settings.discovery_candidates, exclude_author_ids={user_id}
        )
        return [
            Journey(hit.post_id, "discovery", hit.score, author_id=hit.author_id)
            for hit in hits
            if hit.post_id not in already  # in both? it stays a social candidate
        ]

    def interest(self, user_id: str) -> np.ndarray | None:
        return self.stack.interests.for_user(user_id, self.stack.store, self.stack.vectors)

    # --- stage 2 ---------------------------------------------------------------------------------
    def seen(self, user_id: str, post_ids: Sequence[str], now: float, fallbacks: list[str]) -> set[str]:
        """Posts the user saw in the window: the OLAP store, plus Redis's recent set.

        The union covers the OLAP store's ingestion lag (an impression reported a moment ago is in
        Redis at once, in DuckDB or Pinot a little later). When the OLAP store is down, Redis's
        bounded set alone answers — the named fallback.
        """
        since = now - self.settings.impression_window_hours * 3600
        olap_up = True
        try:
            seen = self.stack.impressions.seen_since(user_id, since, post_ids)
        except BackendUnavailable:
            fallbacks.append("olap:redis-recent")
            olap_up, seen = False, set()
        try:
            seen |= self.stack.recent_impressions.seen_since(user_id, since, post_ids)
        except BackendUnavailable:
            if not olap_up:
                fallbacks[-1] = "impressions:none"
        return seen

    # --- stage 3 ---------------------------------------------------------------------------------
    def features(
        self, user_id: str, journeys: list[Journey], posts: dict[str, Post], fallbacks: list[str]
    ) -> str:
        """Fill ``journey.features``; returns where they came from (feast | redis-cache | sql)."""
        keys = [(j.post_id, posts[j.post_id].author_id) for j in journeys]
        source, rows = self._fetch_features(user_id, keys, self.stack.features, self.stack.feature_cache)
        if source != "feast":
            fallbacks.append(f"features:{source}")  # features:redis-cache | features:sql
        for journey in journeys:
            post = posts[journey.post_id]
            row = rows.get(journey.post_id)
            values = row.as_features() if row is not None else {}
            if source != "sql":
                # The store keeps a row only for pairs with evidence (a like or a follow); no row
                # means no evidence, which the affinity formula scores 0. Only when no feature
                # store answered is affinity unknown (None), and the ranker uses its proxy.
                values.setdefault("affinity_score", 0.0)
            # The row is authoritative when present; SQL fills what a brand-new post lacks.
            values.setdefault("created_at", to_epoch(post.created_at))
            values.setdefault("like_count", post.like_count)
            values.setdefault("has_media", 1.0 if post.media_key else 0.0)
            journey.features = values
        return source

    def topic_similarity(self, interest: np.ndarray | None, journeys: list[Journey]) -> None:
        """cosine(interest vector, post embedding) from real vectors.

        Embeddings come with the features; a row without one (the cache, SQL) is completed from the
        vector store. Where neither has it the similarity stays ``None`` and the model treats it as
        neutral — never a made-up number.
        """
        embeddings = {j.post_id: j.features.pop("embedding", None) for j in journeys}
        missing = [pid for pid, e in embeddings.items() if e is None]
        if missing and interest is not None:
            try:
                embeddings.update(self.stack.vectors.vectors(missing))
            except BackendUnavailable:
                pass  # already reported as vectors:social-only if the store is down
        for journey in journeys:
            journey.features["topic_similarity"] = self._similarity(interest, embeddings.get(journey.post_id))

    def rank(self, user_id: str, journeys: list[Journey], now: float, fallbacks: list[str]) -> str:
        candidates = [Candidate(j.post_id, j.features) for j in journeys]
        try:
            scores, version = self.stack.ranker.rank(user_id, candidates, now)
        except BackendUnavailable:
            fallbacks.append("ranking:recency")
            scores, version = {c.post_id: recency(c.features.get("created_at"), now) for c in candidates}, "recency"
        for journey in journeys:
            journey.score = scores.get(journey.post_id)
        return version

    # --- stage 4 ---------------------------------------------------------------------------------
    def rerank(self, journeys: list[Journey], limit: int) -> list[Journey]:
        """Author diversity and the in/out-of-network mix over the score order; keeps ``limit``."""
        return self._rerank(
            journeys,
            limit,
            max_per_author=self.settings.max_posts_per_author,
            out_of_network_share=self.settings.out_of_network_share,
        )

    # --- the whole request -----------------------------------------------------------------------
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
        limit = limit or self.settings.feed_limit
        now = now or time.time()
        store = self.stack.store
        store.get_user(user_id)  # NotFound for an unknown user
        timer, fallbacks = StageTimer(), []

        with timer.stage("stage1_retrieval"):
            with tracer.start_as_current_span("social_retrieval") as span:
                social = self.social(user_id, fallbacks)
                span.set_attribute("candidates", len(social))
            with tracer.start_as_current_span("discovery_retrieval") as span:
                try:
                    interest = self.interest(user_id)
                    discovery = self.discovery(user_id, interest, {j.post_id for j in social})
                except BackendUnavailable:
                    fallbacks.append("vectors:social-only")
                    interest, discovery = None, []
                span.set_attribute("candidates", len(discovery))
        journeys = social + discovery

        with timer.stage("stage2_impression_filtering") as span:
            seen = self.seen(user_id, [j.post_id for j in journeys], now, fallbacks)
            for journey in journeys:
                if journey.post_id in seen:
                    journey.filtered = "seen_in_24h"
            survivors = [j for j in journeys if j.filtered is None]
            span.set_attributes({"candidates.in": len(journeys), "candidates.out": len(survivors)})

        with timer.stage("stage3_feature_fetch") as span:
            posts = store.get_posts([j.post_id for j in survivors])
            for journey in survivors:
                if journey.post_id not in posts:
                    journey.filtered = "post_missing"
                else:
                    journey.author_id = posts[journey.post_id].author_id
            survivors = [j for j in survivors if j.filtered is None]
            fetch_started = time.perf_counter()
            feature_source = self.features(user_id, survivors, posts, fallbacks)
            metrics.FEATURE_FETCH.labels(feature_source).observe(time.perf_counter() - fetch_started)
            self.topic_similarity(interest, survivors)
            span.set_attribute("feature_source", feature_source)

        with timer.stage("stage3_ranking") as span:
            model_version = self.rank(user_id, survivors, now, fallbacks)
            span.set_attributes({"model_version": model_version, "candidates": len(survivors)})

        with timer.stage("stage4_rerank_hydrate"):
            kept = self.rerank(survivors, limit)
            if self.settings.exploration_share > 0:  # off by default: the page is the ranker's
                rng = exploration_rng(self.settings.seed, user_id, [j.post_id for j in kept])
                kept = explore(kept, survivors, self.settings.exploration_share, rng)
            authors = store.get_users([j.author_id for j in kept if j.author_id])
            ttl = self.settings.media_url_ttl_seconds
            items = []
            for journey in kept:
                post = posts[journey.post_id]
                url = self.stack.media.url(post.media_key, ttl) if post.media_key else None
                items.append(
                    FeedItem(post, authors[post.author_id], journey.source, journey.score, url, journey.explored)
                )

        return FeedResult(
            user_id=user_id,
            items=items,
            journeys=journeys,
            candidates_social=len(social),
            candidates_discovery=len(discovery),
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
