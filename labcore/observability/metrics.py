"""Prometheus metrics: what the feed's operators watch, with names that say what they measure.

The metric objects live on prometheus-client's default registry (its standard idiom: defining a
metric only allocates it in memory). Every service exposes them at ``/metrics``; a worker process
without an HTTP app serves them with ``serve_metrics``. In the embedded runtime all services share
one process, so the API's and the ranking service's ``/metrics`` show the same, whole-process figures.

Changed from the original design: ``retrieval_recall_ratio`` measured the share of candidates that
survive the impression filter, which is not recall — it is ``impression_filter_survival_ratio``.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)

# Latency buckets from 1 ms to 10 s: the feed lives around 10-100 ms, a cold path can take seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Pipeline lag (written → in mailbox / embedded): tens of milliseconds when healthy, minutes in a backlog.
LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
RATIO_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)

# --- read path ------------------------------------------------------------------------------------
FEED_LATENCY = Histogram(
    "feed_latency_seconds", "Time to build one feed (GET /feed), all four stages.", buckets=LATENCY_BUCKETS
)
FEED_STAGE_LATENCY = Histogram(
    "feed_stage_latency_seconds", "Time spent in one stage of the feed pipeline.", ["stage"], buckets=LATENCY_BUCKETS
)
FEED_CANDIDATES = Counter(
    "feed_candidates_total", "Candidates retrieved in stage 1, by source (social, celebrity, discovery).", ["source"]
)
IMPRESSION_FILTER_SURVIVAL = Histogram(
    "impression_filter_survival_ratio",
    "Share of a request's candidates that survive the seen-in-24h filter (stage 2).",
    buckets=RATIO_BUCKETS,
)
FEED_FALLBACKS = Counter(
    "feed_fallbacks_total",
    "Feed requests served by a named fallback, by component (mailbox, vectors, olap, impressions, features, ranking).",
    ["component", "fallback"],
)
FEATURE_FETCH = Histogram(
    "feature_fetch_seconds",
    "Time to fetch ranking features for one request's candidates, by where they came from.",
    ["source"],
    buckets=LATENCY_BUCKETS,
)
RANKING_LATENCY = Histogram(
    "ranking_latency_seconds", "Time the ranking model takes to score one request (in-process or in the service).",
    ["model"], buckets=LATENCY_BUCKETS,
)
RANKING_ERRORS = Counter(
    "ranking_errors_total", "Feed calls to the ranking model (in-process or the service) that failed, by reason.", ["reason"]
)

# --- write path and workers -------------------------------------------------------------------------
POST_INGESTION = Counter(
    "post_ingestion_total", "Posts committed by the write path, by delivery (push = fan-out, pull = celebrity).", ["delivery"]
)
OUTBOX_PUBLISHED = Counter("outbox_published_total", "Outbox rows the relay published to the event log.", ["topic"])
FANOUT_DELIVERIES = Counter("fanout_deliveries_total", "Mailbox inserts made by the fan-out worker.")
FANOUT_POSTS = Counter("fanout_posts_total", "Posts the fan-out worker handled, by delivery.", ["delivery"])
FANOUT_LAG = Histogram(
    "fanout_lag_seconds", "From a post's commit to its id being in every follower's mailbox.", buckets=LAG_BUCKETS
)
EMBEDDING_LAG = Histogram(
    "embedding_lag_seconds", "From a post's commit to its embedding being searchable in the vector store.", buckets=LAG_BUCKETS
)
EMBEDDINGS = Counter("embeddings_total", "Posts embedded and upserted into the vector store.")
EVENTS_HANDLED = Counter("events_handled_total", "Event-log records handled and acked, by consumer group.", ["group"])
CONSUMER_FAILURES = Counter(
    "consumer_failures_total", "Batches a consumer failed to handle (retried, never acked), by group.", ["group"]
)


# --- series that exist before their first event ----------------------------------------------------
# A labelled series appears only once ``.labels(...)`` is called: before the first feed (or the first
# fallback, the first failure) it is missing, not zero, and a dashboard shows a gap while an alert on
# ``rate(feed_fallbacks_total[5m]) > 0`` cannot tell "none" from "no data". Prometheus's guidance
# ("avoid missing metrics"): create every label value known in advance, at zero. Kept in step with
# the code that emits them by tests/unit/test_metrics_known_labels.py.
STAGES = (
    "stage1_retrieval", "stage2_impression_filtering", "stage3_feature_fetch", "stage3_ranking",
    "stage4_rerank_hydrate",
)  # fmt: skip
SOURCES = ("social", "celebrity", "discovery")
FALLBACKS = (
    "mailbox:sql", "vectors:social-only", "olap:redis-recent", "impressions:none", "features:redis-cache",
    "features:sql", "ranking:recency",
)  # fmt: skip
FEATURE_SOURCES = ("feast", "redis-cache", "sql")
RANKING_ERROR_REASONS = ("timeout", "unreachable")
DELIVERIES = ("push", "pull")
OUTBOX_TOPICS = ("new-posts", "engagements")
CONSUMER_GROUPS = ("fanout", "embedding", "interests", "features", "impressions-loader")

KNOWN_SERIES: tuple[tuple[Counter | Histogram, tuple[tuple[str, ...], ...]], ...] = (
    (FEED_STAGE_LATENCY, tuple((stage,) for stage in STAGES)),
    (FEED_CANDIDATES, tuple((source,) for source in SOURCES)),
    (FEED_FALLBACKS, tuple((fallback.split(":")[0], fallback) for fallback in FALLBACKS)),
    (FEATURE_FETCH, tuple((source,) for source in FEATURE_SOURCES)),
    (RANKING_ERRORS, tuple((reason,) for reason in RANKING_ERROR_REASONS)),
    (POST_INGESTION, tuple((delivery,) for delivery in DELIVERIES)),
    (FANOUT_POSTS, tuple((delivery,) for delivery in DELIVERIES)),
    (OUTBOX_PUBLISHED, tuple((topic,) for topic in OUTBOX_TOPICS)),
    (EVENTS_HANDLED, tuple((group,) for group in CONSUMER_GROUPS)),
    (CONSUMER_FAILURES, tuple((group,) for group in CONSUMER_GROUPS)),
)


def declare_known_series() -> None:
    """Create every known label value's series (at zero); idempotent, so any exposition may call it.
    ``ranking_latency_seconds{model}`` is declared by the ranking service for the models it serves."""
    for metric, label_values in KNOWN_SERIES:
        for values in label_values:
            metric.labels(*values)


def exposition() -> tuple[bytes, str]:
    """The Prometheus text format of every metric in this process, and its content type."""
    declare_known_series()
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def serve_metrics(port: int, host: str) -> None:
    """Serve ``/metrics`` from a background thread (worker processes have no HTTP app of their own)."""
    declare_known_series()
    start_http_server(port, addr=host)


def metric_names() -> set[str]:
    """Every sample name this process can export (``_total``, ``_bucket``, ... included)."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
    return names
