"""Recent traces from this process's in-memory span buffer (``labcore.tracing.RecentSpans``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from labcore.tracing import recent_spans

router = APIRouter(prefix="/traces", tags=["observability"])

TraceId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]


def _buffer():  # noqa: ANN202
    spans = recent_spans()
    if spans is None:
        raise HTTPException(503, "tracing is not set up in this process")
    return spans


@router.get("/")
def traces(
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
    root: Annotated[str | None, Query(max_length=200, description="only traces whose root span has this name")] = None,
) -> list[dict[str, Any]]:
    """The newest traces, newest first: root span, duration, span count, services."""
    return _buffer().recent(limit, root)


@router.get("/{trace_id}")
def trace(trace_id: TraceId) -> list[dict[str, Any]]:
    """Every span of one trace in start order (404 when unknown or already evicted)."""
    spans = _buffer().trace(trace_id)
    if not spans:
        raise HTTPException(404, f"no trace {trace_id} in the buffer (unknown or evicted)")
    return [span.to_dict() for span in spans]
