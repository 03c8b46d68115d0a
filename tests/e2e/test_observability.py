"""Traces and metrics of a running stack, read the way notebook 08 reads them."""

from __future__ import annotations

import httpx

from labcore.lab.client import connect
from labcore.settings import Settings
from labcore.widgets import observability as obs
from tests.conftest import RunningStack


def by_name(spans: list[dict]) -> dict[str, dict]:
    return {s["name"]: s for s in spans}


def test_one_posts_trace_runs_from_the_api_through_the_outbox_into_both_workers(running_stack: RunningStack) -> None:
    with connect(Settings(data_dir=running_stack.data_dir)) as lab:
        author = lab.create_user("traced_author")["user_id"]
        reader = lab.create_user("traced_reader")["user_id"]
        lab.follow(reader, author)
        post, spans = obs.post_journey(lab, author, "A traced post about sourdough and long fermentation.")
        named = by_name(spans)
        assert {s["trace_id"] for s in spans} == {lab.last_trace_id}
        # the chain: request → write path → relay → each worker, every hop a child of the one before
        assert named["create_post"]["parent_id"] == named["POST /posts/"]["span_id"]
        assert named["create_post"]["attributes"]["post_id"] == post["post_id"]
        assert named["outbox.publish"]["parent_id"] == named["create_post"]["span_id"]
        assert named["outbox.publish"]["attributes"]["topic"] == "new-posts"
        assert named["fanout.deliver"]["parent_id"] == named["outbox.publish"]["span_id"]
        assert named["fanout.deliver"]["attributes"]["mailboxes"] == 1
        assert named["embedding.embed_post"]["parent_id"] == named["outbox.publish"]["span_id"]


def test_a_feed_request_has_a_span_per_stage_with_the_original_names(running_stack: RunningStack) -> None:
    with connect(Settings(data_dir=running_stack.data_dir)) as lab:
        reader = lab.create_user("stage_reader")["user_id"]
        feed = lab.feed(reader)
        assert feed["trace_id"] == lab.last_trace_id
        spans = lab.trace(feed["trace_id"])
        named = by_name(spans)
        root = named["get_feed"]
        for stage in ("stage1_retrieval", "stage2_impression_filtering", "stage3_feature_fetch", "stage3_ranking", "stage4_rerank_hydrate"):
            assert named[stage]["parent_id"] == root["span_id"], stage
        for part in ("social_retrieval", "discovery_retrieval"):
            assert named[part]["parent_id"] == named["stage1_retrieval"]["span_id"]
        assert named["stage3_feature_fetch"]["attributes"]["feature_source"] == "feast"
        # the ranking service continued the trace across HTTP
        assert named["score"]["attributes"]["model"] == feed["model_version"]
        assert [row.name for row in obs.span_tree(spans)][:2] == ["GET /feed/", "get_feed"]
        summaries = lab.traces(limit=50, root="GET /feed/")
        assert any(t["trace_id"] == feed["trace_id"] for t in summaries)
        assert lab.api.get("/traces/" + "0" * 32).status_code == 404
        assert lab.api.get("/traces/not-a-trace-id").status_code == 422


def test_metrics_of_every_service_pass_promtool_and_count_what_happened(running_stack: RunningStack, promtool) -> None:
    with connect(Settings(data_dir=running_stack.data_dir)) as lab:
        author = lab.create_user("metrics_author")["user_id"]
        obs.post_journey(lab, author, "Counting posts: a note on Prometheus histograms.")
        lab.feed(author)
        api_text = lab.metrics()
        ranking_text = httpx.get(f"{lab.info.ranking_url}/metrics", timeout=5).text
    for text in (api_text, ranking_text):
        promtool(text)
    samples = obs.parse_metrics(api_text)
    assert obs.metric_value(samples, "feed_latency_seconds_count") >= 1
    assert obs.metric_value(samples, "post_ingestion_total", delivery="push") >= 1
    assert obs.metric_value(samples, "fanout_lag_seconds_count") >= 1
    assert obs.metric_value(samples, "embedding_lag_seconds_count") >= 1
    assert obs.metric_value(samples, "ranking_latency_seconds_count") >= 1
    assert obs.metric_value(samples, "feed_stage_latency_seconds_count", stage="stage3_feature_fetch") >= 1
    assert not any(s.name.startswith("retrieval_recall") for s in samples)  # renamed: it never was recall


def test_a_fallback_shows_in_the_response_the_trace_and_the_metrics(running_stack: RunningStack) -> None:
    with connect(Settings(data_dir=running_stack.data_dir)) as lab:
        reader = lab.create_user("fallback_reader")["user_id"]
        before = obs.parse_metrics(lab.metrics())
        lab.stop("ranking")
        try:
            feed = lab.feed(reader)
        finally:
            lab.start("ranking")
        after = obs.parse_metrics(lab.metrics())
        assert "ranking:recency" in feed["fallbacks"]
        root = by_name(lab.trace(feed["trace_id"]))["get_feed"]
        assert root["attributes"]["fallbacks"] == ["ranking:recency"]
        grew = lambda name, **labels: obs.metric_value(after, name, **labels) - obs.metric_value(before, name, **labels)  # noqa: E731
        assert grew("feed_fallbacks_total", component="ranking", fallback="ranking:recency") == 1
        assert grew("ranking_errors_total") == 1
        assert lab.feed(reader)["fallbacks"] == []  # back on the primary path by itself
