"""Waterfalls and metric quantiles for notebook 08 (labcore.widgets.observability)."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from labcore.widgets import observability as obs


def span(name: str, span_id: str, parent: str | None, start: float, ms: float, scope: str = "labcore.feed") -> dict:
    return {
        "name": name, "span_id": span_id, "parent_id": parent, "start": start, "end": start + ms / 1000,
        "duration_ms": ms, "scope": scope, "attributes": {"k": 1},
    }  # fmt: skip


def test_span_tree_puts_children_under_parents_in_start_order() -> None:
    spans = [
        span("stage2", "c", "a", 100.020, 3),
        span("get_feed", "a", None, 100.000, 40),
        span("stage1", "b", "a", 100.001, 10),
        span("social", "d", "b", 100.002, 2),
        span("from another process", "e", "gone", 100.030, 1),  # its parent was evicted: a root
    ]
    rows = obs.span_tree(spans)
    assert [(r.name, r.depth) for r in rows] == [
        ("get_feed", 0), ("stage1", 1), ("social", 2), ("stage2", 1), ("from another process", 0),
    ]  # fmt: skip
    assert rows[3].start_ms == pytest.approx(20.0)
    assert rows[0].scope == "feed"


def test_waterfall_draws_one_bar_per_span_at_its_offset() -> None:
    spans = [span("get_feed", "a", None, 5.0, 40), span("stage1", "b", "a", 5.010, 0.0)]
    fig = obs.waterfall(spans, title="one request")
    bar = fig.data[0]
    assert list(bar.base) == [0.0, pytest.approx(10.0)]
    assert bar.x[1] > 0  # a 0 ms span is still visible
    assert fig.layout.title.text == "one request"


def exposition(observations: list[float]) -> list[obs.Sample]:
    registry = CollectorRegistry()
    latency = Histogram("feed_latency_seconds", "x", buckets=(0.01, 0.05, 0.1, 0.5), registry=registry)
    stage = Histogram("feed_stage_latency_seconds", "x", ["stage"], buckets=(0.01, 0.05, 0.1, 0.5), registry=registry)
    fallbacks = Counter("feed_fallbacks_total", "x", ["component", "fallback"], registry=registry)
    for value in observations:
        latency.observe(value)
        stage.labels("stage1_retrieval").observe(value / 2)
    fallbacks.labels("ranking", "ranking:recency").inc(3)
    return obs.parse_metrics(generate_latest(registry).decode())


def test_histogram_quantile_interpolates_within_the_bucket_like_promql() -> None:
    # 10 observations in (0.01, 0.05]: the median is half-way through that bucket.
    cumulative = [(0.01, 0.0), (0.05, 10.0), (0.1, 10.0), (float("inf"), 10.0)]
    assert obs.histogram_quantile(0.5, cumulative) == pytest.approx(0.03)
    assert obs.histogram_quantile(0.5, []) is None
    assert obs.histogram_quantile(0.99, [(0.1, 0.0), (float("inf"), 4.0)]) == 0.1  # +Inf: the last bound


def test_quantile_estimates_bracket_the_true_quantile() -> None:
    rng = random.Random(3)
    values = [rng.uniform(0.0, 0.5) for _ in range(2000)]
    samples = exposition(values)
    estimate = obs.histogram_quantile(0.5, obs.buckets(samples, "feed_latency_seconds"))
    true_median = sorted(values)[1000]
    assert 0.1 <= estimate <= 0.5 and 0.1 <= true_median <= 0.5  # same bucket, interpolated
    assert abs(estimate - true_median) < 0.05


def test_stage_quantiles_and_fallback_counts_from_an_exposition() -> None:
    samples = exposition([0.02] * 10)
    frame = obs.stage_quantiles(samples)
    assert list(frame["stage"]) == ["stage1_retrieval", "total"]
    assert frame.set_index("stage").loc["total", "requests"] == 10
    assert 10 <= frame.set_index("stage").loc["total", "p50_ms"] <= 50
    assert obs.fallback_counts(samples) == {"ranking:recency": 3.0}
    assert obs.metric_value(samples, "feed_fallbacks_total", component="ranking") == 3.0


def test_an_interval_row_counts_only_what_happened_in_the_interval() -> None:
    before, after = exposition([0.02] * 10), exposition([0.02] * 10 + [0.2] * 5)
    row = obs.interval_row(before, after, t=2.0, seconds=1.0)
    assert row["requests"] == 5  # the five new requests, all slow
    assert 100 <= row["p50_ms"] <= 500
    assert row["fallbacks_per_s"] == 0.0
    assert set(obs.live_figure(__import__("pandas").DataFrame([row])).data[0].x) == {2.0}
