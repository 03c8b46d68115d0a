"""The Jaeger trace reader against a real Jaeger (the session's ``labcore.engines`` Jaeger v2).

Spans are made by our own tracer providers (``labcore.observability.tracing.build_provider``) in two "services",
the context carried across like an event header carries it, and exported over OTLP/HTTP. Reading the
trace back through ``JaegerTraces`` must give what the in-memory buffer holds for the same spans —
the two readers ``GET /traces`` switches between.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.trace import Status, StatusCode

from labcore.adapters.traces.jaeger import JaegerTraces
from labcore.errors import BackendUnavailable
from labcore.observability.tracing import (
    LabTracerProvider,
    build_provider,
    extract,
    inject,
)
from labcore.settings import Settings
from tests.helpers import wait_for


@pytest.fixture(scope="module")
def jaeger(engines):  # -> labcore.engines.jaeger.Jaeger
    return engines.get("jaeger")


@pytest.fixture
def reader(jaeger) -> Iterator[JaegerTraces]:
    traces = JaegerTraces(jaeger.query_url, timeout=5)
    yield traces
    traces.close()


def provider(jaeger, service: str) -> LabTracerProvider:
    return build_provider(Settings(otlp_endpoint=jaeger.otlp_http_url), service)


def wait_for_trace(reader: JaegerTraces, trace_id: str, spans: int) -> list:
    def complete() -> list | None:
        found = reader.trace(trace_id)
        return found if len(found) >= spans else None

    return wait_for(complete, f"Jaeger returns {spans} spans of trace {trace_id}", timeout=20)


def comparable(record) -> tuple:
    return (record.trace_id, record.span_id, record.parent_id, record.name, record.service,
            record.scope, record.attributes, record.status)  # fmt: skip


def test_a_trace_across_two_services_reads_back_as_the_buffer_holds_it(jaeger, reader) -> None:
    api, worker = provider(jaeger, "api"), provider(jaeger, "fanout-worker")
    try:
        with api.get_tracer("test").start_as_current_span("POST /posts") as root:
            root.set_attribute("http.status_code", 201)
            with api.get_tracer("test").start_as_current_span("outbox.publish") as publish:
                publish.set_attribute("topic", "new-posts")
                headers = inject({})
        with worker.get_tracer("test").start_as_current_span("fanout.deliver", context=extract(headers)) as deliver:
            deliver.set_attribute("followers", 3)
            deliver.set_status(Status(StatusCode.ERROR, "redis down"))
        trace_id = format(root.get_span_context().trace_id, "032x")
        api.force_flush()
        worker.force_flush()
        expected = sorted(api.recent.trace(trace_id) + worker.recent.trace(trace_id), key=lambda s: s.start)
        found = wait_for_trace(reader, trace_id, 3)
    finally:
        api.shutdown()
        worker.shutdown()
    assert [comparable(s) for s in found] == [comparable(s) for s in expected]
    # Jaeger keeps microseconds; the buffer nanoseconds.
    assert all(abs(a.start - b.start) < 2e-6 and abs(a.end - b.end) < 2e-6 for a, b in zip(found, expected))
    assert {s.name: s.service for s in found} == {
        "POST /posts": "api", "outbox.publish": "api", "fanout.deliver": "fanout-worker"
    }  # fmt: skip
    assert [s.status for s in found if s.name == "fanout.deliver"] == ["error"]


def test_recent_lists_the_service_traces_by_root(jaeger, reader) -> None:
    api = provider(jaeger, "api")
    try:
        tracer = api.get_tracer("test")
        ids = []
        for n in range(3):
            with tracer.start_as_current_span("GET /feed") as span:
                span.set_attribute("n", n)
            ids.append(format(span.get_span_context().trace_id, "032x"))
        with tracer.start_as_current_span("GET /health"):
            pass
        api.force_flush()
    finally:
        api.shutdown()

    def listed() -> list | None:
        recent = reader.recent(limit=50, root="GET /feed", service="api")
        return recent if set(ids) <= {t["trace_id"] for t in recent} else None

    recent = wait_for(listed, "Jaeger lists the three GET /feed traces", timeout=20)
    assert {t["root"] for t in recent} == {"GET /feed"}
    assert all(t["services"] == ["api"] and t["spans"] == 1 for t in recent)


def test_unknown_trace_is_empty(reader) -> None:
    assert reader.trace("0" * 31 + "1") == []


def test_unreachable_jaeger_is_backend_unavailable() -> None:
    from labcore.engines.process import free_port

    with pytest.raises(BackendUnavailable):
        JaegerTraces(f"http://127.0.0.1:{free_port()}", timeout=1).trace("0" * 32)
