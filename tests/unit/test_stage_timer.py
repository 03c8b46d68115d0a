"""The feed's StageTimer: the response's stage figure is the span's own duration, not a second clock."""

from __future__ import annotations

import time

from labcore.feed import pipeline
from labcore.observability import tracing
from labcore.settings import Settings


def test_the_stage_figure_is_the_spans_duration(monkeypatch) -> None:  # noqa: ANN001
    provider = tracing.build_provider(Settings(), "feedlab")
    monkeypatch.setattr(pipeline, "tracer", provider.get_tracer("labcore.feed.pipeline"))
    timer = pipeline.StageTimer()
    with timer.stage("stage1_retrieval") as span:
        span.set_attribute("candidates", 3)
        time.sleep(0.003)
    (finished,) = provider.recent.trace(tracing.trace_id_of(span))
    assert finished.name == "stage1_retrieval" and timer.ms["stage1_retrieval"] >= 3.0
    # Same nanoseconds; only the rounding to µs differs: the record keeps epoch seconds as floats
    # (~0.2 µs of precision at today's epoch), so the two rounded figures may sit one µs apart.
    assert abs(finished.duration_ms - timer.ms["stage1_retrieval"]) <= 0.0011


def test_without_a_tracer_provider_the_stage_is_still_timed() -> None:
    timer = pipeline.StageTimer()
    with timer.stage("stage2_impression_filtering"):
        time.sleep(0.002)
    assert timer.ms["stage2_impression_filtering"] >= 2.0
