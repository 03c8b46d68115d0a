"""Jaeger's query API read back as the lab's SpanRecords (compose's GET /traces)."""

from __future__ import annotations

import httpx
import pytest

from labcore.adapters.traces.jaeger import JaegerTraces, span_records
from labcore.errors import BackendUnavailable

TRACE = "0af7651916cd43dd8448eb211c80319c"
# The shape of GET /api/traces/{id} from Jaeger's query service (OTLP-ingested spans: scope and
# status arrive as otel.* tags, times in microseconds).
JAEGER_TRACE = {
    "traceID": TRACE,
    "spans": [
        {
            "traceID": TRACE, "spanID": "b7ad6b7169203331", "operationName": "fanout.deliver",
            "references": [{"refType": "CHILD_OF", "traceID": TRACE, "spanID": "00f067aa0ba902b7"}],
            "startTime": 1_700_000_000_004_000, "duration": 1_500, "processID": "p2",
            "tags": [
                {"key": "otel.scope.name", "type": "string", "value": "labcore.fanout"},
                {"key": "mailboxes", "type": "int64", "value": 3},
                {"key": "span.kind", "type": "string", "value": "internal"},
            ],
        },
        {
            "traceID": TRACE, "spanID": "00f067aa0ba902b7", "operationName": "POST /posts/",
            "references": [], "startTime": 1_700_000_000_000_000, "duration": 6_000, "processID": "p1",
            "tags": [{"key": "otel.status_code", "type": "string", "value": "ERROR"}],
        },
    ],
    "processes": {"p1": {"serviceName": "api", "tags": []}, "p2": {"serviceName": "fanout-worker", "tags": []}},
}  # fmt: skip


def test_a_jaeger_trace_becomes_span_records_in_start_order() -> None:
    root, child = span_records(JAEGER_TRACE)
    assert (root.name, root.service, root.parent_id, root.status) == ("POST /posts/", "api", None, "error")
    assert (child.service, child.scope, child.parent_id) == ("fanout-worker", "labcore.fanout", root.span_id)
    assert child.attributes == {"mailboxes": 3}  # Jaeger's bookkeeping tags dropped
    assert child.start - root.start == pytest.approx(0.004, abs=1e-6) and child.duration_ms == pytest.approx(1.5)


def test_the_reader_asks_the_query_api_and_summarises_recent_traces(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        if request.url.path == f"/api/traces/{TRACE}":
            return httpx.Response(200, json={"data": [JAEGER_TRACE]})
        if request.url.path == "/api/traces":
            return httpx.Response(200, json={"data": [JAEGER_TRACE]})
        return httpx.Response(404, json={"data": None})

    reader = JaegerTraces("http://jaeger:16686")
    reader._http = httpx.Client(transport=httpx.MockTransport(handler))
    assert [s.name for s in reader.trace(TRACE)] == ["POST /posts/", "fanout.deliver"]
    assert reader.trace("f" * 32) == []
    [summary] = reader.recent(limit=5, root="POST /posts/")
    assert summary["root"] == "POST /posts/" and summary["services"] == ["api", "fanout-worker"]
    assert "operation=POST" in str(seen[-1]) and "service=api" in str(seen[-1])


def test_an_unreachable_jaeger_is_backend_unavailable() -> None:
    reader = JaegerTraces("http://jaeger:16686")
    reader._http = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(502, text="bad gateway")))
    with pytest.raises(BackendUnavailable, match="traces"):
        reader.trace(TRACE)
