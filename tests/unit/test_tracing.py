"""Spans, their in-memory buffer and trace context across the event log (labcore.observability.tracing)."""

from __future__ import annotations

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from labcore.domain import WRITTEN_AT, Record
from labcore.observability import tracing


@pytest.fixture
def recorder() -> tuple[trace.Tracer, tracing.RecentSpans]:
    """A private provider (the global one can be set only once per process) feeding a buffer."""
    recent = tracing.RecentSpans(max_spans=50)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(recent))
    return provider.get_tracer("tests"), recent


def record(headers: dict[str, str]) -> Record:
    return Record("new-posts", 0, "1-0", "author", {"post_id": "p"}, headers)


def test_a_trace_comes_back_whole_in_start_order(recorder) -> None:
    tracer, recent = recorder
    with tracer.start_as_current_span("get_feed") as root:
        with tracer.start_as_current_span("stage1_retrieval"):
            pass
        with tracer.start_as_current_span("stage2_impression_filtering"):
            pass
    trace_id = tracing.trace_id_of(root)
    spans = recent.trace(trace_id)
    assert [s.name for s in spans] == ["get_feed", "stage1_retrieval", "stage2_impression_filtering"]
    assert spans[1].parent_id == spans[0].span_id and spans[0].parent_id is None
    assert all(s.duration_ms >= 0 for s in spans)
    summary = recent.recent(limit=5, root="get_feed")
    assert summary[0]["trace_id"] == trace_id and summary[0]["spans"] == 3
    assert recent.recent(root="something else") == []


def test_the_buffer_evicts_whole_oldest_traces(recorder) -> None:
    tracer, recent = recorder
    ids = []
    for _ in range(30):
        with tracer.start_as_current_span("parent") as span:
            with tracer.start_as_current_span("child"):
                pass
        ids.append(tracing.trace_id_of(span))
    assert recent.trace(ids[0]) == []  # 60 spans into a 50-span buffer: the oldest went first
    assert len(recent.trace(ids[-1])) == 2
    assert sum(len(recent.trace(i)) for i in ids) <= 50


def test_context_crosses_an_event_in_its_headers(recorder) -> None:
    """The producer injects ``traceparent``; the consumer's span joins the producer's trace."""
    tracer, recent = recorder
    with tracer.start_as_current_span("create_post") as producer:
        headers = tracing.inject({WRITTEN_AT: "1.5"})
    assert headers[WRITTEN_AT] == "1.5" and "traceparent" in headers
    token = otel_context.attach(otel_context.Context())  # a worker thread: no current span
    try:
        with tracer.start_as_current_span("fanout.deliver", context=tracing.extract(headers)) as consumer:
            pass
    finally:
        otel_context.detach(token)
    assert tracing.trace_id_of(consumer) == tracing.trace_id_of(producer)
    assert recent.trace(tracing.trace_id_of(producer))[-1].parent_id == f"{producer.get_span_context().span_id:016x}"


def test_a_record_without_headers_starts_a_new_trace(recorder) -> None:
    tracer, recent = recorder
    with tracer.start_as_current_span("orphan", context=tracing.extract({})) as span:
        pass
    assert recent.trace(tracing.trace_id_of(span))[0].parent_id is None


def test_continue_each_gives_every_record_of_a_batch_its_own_trace(recorder) -> None:
    tracer, recent = recorder
    producers, records = [], []
    for name in ("post-a", "post-b"):
        with tracer.start_as_current_span(name) as span:
            records.append(record(tracing.inject()))
        producers.append(span)
    with tracing.continue_each(tracer, "embedding.embed_post", records) as spans:
        assert len(spans) == 2
    for producer in producers:
        spans = recent.trace(tracing.trace_id_of(producer))
        assert [s.name for s in spans] == [producer.name, "embedding.embed_post"]
        assert spans[1].attributes["batch_size"] == 2


def test_continue_each_marks_every_span_failed_when_the_batch_fails(recorder) -> None:
    tracer, recent = recorder
    with tracer.start_as_current_span("post") as producer:
        records = [record(tracing.inject())]
    with pytest.raises(RuntimeError), tracing.continue_each(tracer, "embedding.embed_post", records):
        raise RuntimeError("model crashed")
    failed = recent.trace(tracing.trace_id_of(producer))[-1]
    assert failed.status == "error"


def test_written_at_reads_the_commit_time_header() -> None:
    assert record({WRITTEN_AT: "1700000000.25"}).written_at == 1700000000.25
    assert record({}).written_at is None
    assert record({WRITTEN_AT: "not a time"}).written_at is None


def test_with_an_otlp_endpoint_spans_are_exported_over_otlp_http(tmp_path) -> None:
    """The compose path: spans reach an OTLP/HTTP collector (Jaeger) as protobuf on /v1/traces."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from labcore.settings import Settings

    received: list[tuple[str, str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = Settings(data_dir=tmp_path, otlp_endpoint=f"http://127.0.0.1:{server.server_port}")
        provider = tracing.build_provider(settings, "fanout-worker")
        with provider.get_tracer("labcore.fanout").start_as_current_span("fanout.deliver", attributes={"mailboxes": 3}):
            pass
        assert provider.force_flush(10_000)
        provider.shutdown()
    finally:
        server.shutdown()
    path, content_type, body = received[0]
    assert path == "/v1/traces" and content_type == "application/x-protobuf"
    request = ExportTraceServiceRequest.FromString(body)
    resource_spans = request.resource_spans[0]
    service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
    span = resource_spans.scope_spans[0].spans[0]
    assert (service, resource_spans.scope_spans[0].scope.name, span.name) == ("fanout-worker", "labcore.fanout", "fanout.deliver")
    assert len(provider.recent.recent()) == 1  # and the in-memory buffer got it too
