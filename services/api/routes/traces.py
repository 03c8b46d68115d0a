"""Recent traces: this process's span buffer (embedded), or Jaeger's query API when
``FEEDLAB_TRACE_QUERY_URL`` is set (compose, where each container exports its own spans)."""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from fastapi import APIRouter, HTTPException, Path, Query, Request

from labcore.adapters.traces.jaeger import JaegerTraces
from labcore.observability.tracing import SpanRecord, recent_spans

router = APIRouter(prefix="/traces", tags=["observability"])

TraceId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]


class TraceReader(Protocol):
    def trace(self, trace_id: str) -> list[SpanRecord]: ...
    def recent(self, limit: int = 20, root: str | None = None) -> list[dict[str, Any]]: ...


def _reader(request: Request) -> TraceReader:
    url = request.app.state.stack.settings.trace_query_url
    if url:
        if getattr(request.app.state, "jaeger", None) is None:
            request.app.state.jaeger = JaegerTraces(url)
        return request.app.state.jaeger
    spans = recent_spans()
    if spans is None:
        raise HTTPException(503, "tracing is not set up in this process")
    return spans


@router.get("/")
def traces(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
    root: Annotated[str | None, Query(max_length=200, description="only traces whose root span has this name")] = None,
) -> list[dict[str, Any]]:
    """The newest traces, newest first: root span, duration, span count, services."""
    return _reader(request).recent(limit, root)


@router.get("/{trace_id}")
def trace(request: Request, trace_id: TraceId) -> list[dict[str, Any]]:
    """Every span of one trace in start order (404 when unknown or already evicted)."""
    spans = _reader(request).trace(trace_id)
    if not spans:
        raise HTTPException(404, f"no trace {trace_id} (unknown, or evicted from the buffer)")
    return [span.to_dict() for span in spans]
