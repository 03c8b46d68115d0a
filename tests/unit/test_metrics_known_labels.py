"""Labelled series exist, at zero, before their first event (Prometheus: avoid missing metrics)."""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap

from labcore.domain import TOPIC_ENGAGEMENTS, TOPIC_NEW_POSTS
from labcore.feed import pipeline, stage1_retrieval, stage2_filter, stage3_rank
from labcore.observability import metrics
from labcore.settings import Settings
from labcore.workers.backlog import consumer_groups

FRESH_APP = textwrap.dedent(
    """
    from fastapi.testclient import TestClient
    from services.ranking.app import create_app

    print(TestClient(create_app("formula-v1")).get("/metrics").text)
    """
)


def test_a_fresh_service_exposes_every_known_series_at_zero() -> None:
    # A new process: the registry is per process, and this one may have seen feeds already.
    run = subprocess.run([sys.executable, "-c", FRESH_APP], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    text = run.stdout
    for line in (
        'feed_candidates_total{source="discovery"} 0.0',
        'feed_fallbacks_total{component="ranking",fallback="ranking:recency"} 0.0',
        'feed_fallbacks_total{component="impressions",fallback="impressions:none"} 0.0',
        'feed_stage_latency_seconds_count{stage="stage3_ranking"} 0.0',
        'feature_fetch_seconds_count{source="sql"} 0.0',
        'events_handled_total{group="embedding"} 0.0',
        'consumer_failures_total{group="fanout"} 0.0',
        'outbox_published_total{topic="new-posts"} 0.0',
        'post_ingestion_total{delivery="pull"} 0.0',
        'ranking_errors_total{reason="timeout"} 0.0',
        'ranking_latency_seconds_count{model="formula-v1"} 0.0',
    ):
        assert line in text.splitlines(), f"missing before the first event: {line}"


def test_the_known_label_values_are_the_ones_the_code_emits() -> None:
    assert set(metrics.CONSUMER_GROUPS) == set(consumer_groups(Settings(olap="duckdb")))
    assert set(metrics.OUTBOX_TOPICS) == {TOPIC_NEW_POSTS, TOPIC_ENGAGEMENTS}
    stages = inspect.getsource(pipeline.FeedPipeline._run)
    assert all(f'timer.stage("{stage}")' in stages for stage in metrics.STAGES)
    assert stages.count("timer.stage(") == len(metrics.STAGES)
    emitting = "".join(inspect.getsource(m) for m in (stage1_retrieval, stage2_filter, stage3_rank))
    for fallback in metrics.FALLBACKS:
        component, name = fallback.split(":")
        assert fallback in emitting or (component == "features" and 'f"features:{source}"' in emitting), fallback
    assert all(f"``{fallback}``" in pipeline.__doc__ for fallback in metrics.FALLBACKS), "the documented table"
