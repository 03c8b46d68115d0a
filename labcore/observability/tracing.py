"""Traces: OpenTelemetry spans across the read path, the write path and the workers.

Every module takes its tracer with ``trace.get_tracer(__name__)``; until ``setup_tracing`` runs
(once per process, by the runtime or a service's ``__main__``) those tracers are no-ops, so importing
labcore never configures anything.

Trace context crosses the event log in the record headers (W3C ``traceparent``): the write path puts
the request's context into the outbox row, the relay continues it when it publishes, and each worker
continues it when it handles the record — so one post's trace runs from ``POST /posts`` through the
fan-out and the embedding worker. (The original design lost it at the broker.)

Finished spans always go to ``RecentSpans``, an in-memory ring buffer that ``GET /traces`` and
``labcore.connect().trace(...)`` read; with ``otlp_endpoint`` set (compose: Jaeger) they are also
exported over OTLP/HTTP.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

from labcore.settings import Settings


class Carrier(Protocol):
    """What carries a trace context between processes: an event's ``headers``."""

    @property
    def headers(self) -> Mapping[str, str]: ...


# Record headers that carry the trace context (W3C Trace Context).
TRACE_HEADERS = ("traceparent", "tracestate")


@dataclass(frozen=True)
class SpanRecord:
    """A finished span as plain data (what the API returns and the waterfall draws)."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    service: str  # the process (compose: one per container; embedded: "feedlab")
    scope: str  # the module that made the span: labcore.feed.pipeline, labcore.workers.fanout, ...
    start: float  # epoch seconds
    end: float
    attributes: dict[str, Any]
    status: str  # ok | error | unset
    links: list[str]  # trace ids this span is linked to (a batch span links its records' traces)

    @property
    def duration_ms(self) -> float:
        return round((self.end - self.start) * 1000, 3)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"duration_ms": self.duration_ms}

    @classmethod
    def from_span(cls, span: ReadableSpan) -> SpanRecord:
        ctx = span.context
        return cls(
            trace_id=f"{ctx.trace_id:032x}",
            span_id=f"{ctx.span_id:016x}",
            parent_id=f"{span.parent.span_id:016x}" if span.parent else None,
            name=span.name,
            service=str(span.resource.attributes.get("service.name", "")),
            scope=span.instrumentation_scope.name if span.instrumentation_scope else "",
            start=(span.start_time or 0) / 1e9,
            end=(span.end_time or 0) / 1e9,
            attributes={k: _plain(v) for k, v in (span.attributes or {}).items()},
            status=span.status.status_code.name.lower(),
            links=[f"{link.context.trace_id:032x}" for link in span.links],
        )


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def summarize(trace_id: str, spans: Sequence[SpanRecord]) -> dict[str, Any]:
    """One trace in a line: its root span (the earliest span whose parent is not in the trace),
    start, duration, span count and the services it crossed."""
    ids = {s.span_id for s in spans}
    root = min([s for s in spans if s.parent_id not in ids] or spans, key=lambda s: s.start)
    start = min(s.start for s in spans)
    return {
        "trace_id": trace_id,
        "root": root.name,
        "start": start,
        "duration_ms": round((max(s.end for s in spans) - start) * 1000, 3),
        "spans": len(spans),
        "services": sorted({s.service for s in spans}),
    }


class RecentSpans(SpanExporter):
    """The last ``max_spans`` finished spans, grouped by trace (oldest traces evicted first)."""

    def __init__(self, max_spans: int = 20000) -> None:
        self.max_spans = max_spans
        self._traces: OrderedDict[str, list[SpanRecord]] = OrderedDict()
        self._count = 0
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            for span in spans:
                record = SpanRecord.from_span(span)
                self._traces.setdefault(record.trace_id, []).append(record)
                self._count += 1
            while self._count > self.max_spans and self._traces:
                _, evicted = self._traces.popitem(last=False)
                self._count -= len(evicted)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def trace(self, trace_id: str) -> list[SpanRecord]:
        """Every span of one trace, in start order (empty when unknown or evicted)."""
        with self._lock:
            spans = list(self._traces.get(trace_id, ()))
        return sorted(spans, key=lambda s: s.start)

    def recent(self, limit: int = 20, root: str | None = None) -> list[dict[str, Any]]:
        """Summaries of the newest traces, optionally only those whose root span is named ``root``."""
        with self._lock:
            snapshot = [(tid, list(spans)) for tid, spans in reversed(self._traces.items())]
        out = []
        for trace_id, spans in snapshot:
            summary = summarize(trace_id, spans)
            if root is None or summary["root"] == root:
                out.append(summary)
            if len(out) >= limit:
                break
        return out

    def clear(self) -> None:
        with self._lock:
            self._traces.clear()
            self._count = 0


class LabTracerProvider(TracerProvider):
    """The SDK provider plus the ring buffer it feeds (so a second ``setup_tracing`` finds it)."""

    def __init__(self, service: str, recent: RecentSpans) -> None:
        super().__init__(resource=Resource.create({"service.name": service}))
        self.recent = recent


def build_provider(settings: Settings, service: str) -> LabTracerProvider:
    """A provider feeding the in-memory buffer, and Jaeger (OTLP/HTTP) when ``otlp_endpoint`` is set."""
    provider = LabTracerProvider(service, RecentSpans(settings.trace_buffer_spans))
    # Synchronous: appending to a deque is cheaper than a hand-off to a batch thread.
    provider.add_span_processor(SimpleSpanProcessor(provider.recent))
    if settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter,
        )

        endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def setup_tracing(settings: Settings, service: str) -> RecentSpans:
    """Install the process's tracer provider once; returns the in-memory span buffer.

    In the embedded runtime every service shares one process and so one provider (``service`` is
    ``feedlab``); in compose each container calls this with its own name and exports to Jaeger.
    """
    current = trace.get_tracer_provider()
    if isinstance(current, LabTracerProvider):
        return current.recent
    provider = build_provider(settings, service)
    trace.set_tracer_provider(provider)
    return provider.recent


def recent_spans() -> RecentSpans | None:
    """This process's span buffer, or None when tracing was never set up."""
    provider = trace.get_tracer_provider()
    return provider.recent if isinstance(provider, LabTracerProvider) else None


# --- context across process boundaries ------------------------------------------------------------
def inject(headers: Mapping[str, str] | None = None, span: trace.Span | None = None) -> dict[str, str]:
    """``headers`` plus the context (``traceparent``) of ``span`` (default: the current span), for
    an event or HTTP call."""
    carrier = dict(headers or {})
    propagate.inject(carrier, context=trace.set_span_in_context(span) if span is not None else None)
    return carrier


def extract(headers: Mapping[str, str] | None) -> otel_context.Context:
    """The context a producer put in ``headers`` (an empty context when there is none)."""
    return propagate.extract(dict(headers or {}))


def trace_id_of(span: trace.Span | None = None) -> str | None:
    """The hex trace id of ``span`` (default: the current one), None when not recording."""
    ctx = (span or trace.get_current_span()).get_span_context()
    return f"{ctx.trace_id:032x}" if ctx.is_valid else None


@contextmanager
def continue_each(
    tracer: trace.Tracer, name: str, records: Sequence[Carrier], **attributes: Any
) -> Iterator[list[trace.Span]]:
    """One span per record (anything with ``headers``: a consumed ``Record``, an outbox row), each
    continuing that record's trace, all open while a batch is handled.

    For work done on a whole batch at once (one model call for 128 posts): every post's trace shows
    the batch's duration, with ``batch_size`` saying it was shared.
    """
    spans = [
        tracer.start_span(name, context=extract(r.headers), attributes=attributes | {"batch_size": len(records)})
        for r in records
    ]
    try:
        yield spans
    except BaseException as exc:
        for span in spans:
            span.record_exception(exc)
            span.set_status(trace.StatusCode.ERROR, str(exc))
        raise
    finally:
        for span in spans:
            span.end()
