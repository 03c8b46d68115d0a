"""Reading traces back from Jaeger's query API (compose), as the same ``SpanRecord``s the in-memory
buffer gives in the embedded profile.

In compose each container exports its spans to Jaeger; only Jaeger holds a post's whole journey
(API, relay, fan-out worker, embedding worker). With ``FEEDLAB_TRACE_QUERY_URL`` set, ``GET /traces``
reads from here, so notebook 08 runs unchanged on either profile.

The format is Jaeger's HTTP query API (``/api/traces/{id}``): spans with microsecond times, parent
references, tags, and a ``processes`` table naming each span's service.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from labcore.errors import BackendUnavailable
from labcore.observability.tracing import SpanRecord, summarize


def span_records(trace: Mapping[str, Any]) -> list[SpanRecord]:
    """One Jaeger trace (an element of the API's ``data``) as ``SpanRecord``s in start order."""
    processes = trace.get("processes", {})
    records = []
    for span in trace.get("spans", []):
        tags = {tag["key"]: tag.get("value") for tag in span.get("tags", [])}
        parent = next((ref["spanID"] for ref in span.get("references", []) if ref.get("refType") == "CHILD_OF"), None)
        links = [ref["traceID"] for ref in span.get("references", []) if ref.get("refType") == "FOLLOWS_FROM"]
        start = span["startTime"] / 1e6
        status = str(tags.pop("otel.status_code", "unset")).lower()
        if tags.pop("error", False) is True:
            status = "error"
        scope = str(tags.pop("otel.scope.name", tags.pop("otel.library.name", "")))
        # Jaeger's renderings of OTLP span fields, not attributes our spans set (a real Jaeger adds
        # otel.status_description to every span whose status has a description).
        for internal in (
            "span.kind", "otel.scope.version", "otel.library.version", "internal.span.format",
            "otel.status_description",
        ):  # fmt: skip
            tags.pop(internal, None)
        records.append(
            SpanRecord(
                trace_id=span["traceID"].rjust(32, "0"),
                span_id=span["spanID"].rjust(16, "0"),
                parent_id=parent.rjust(16, "0") if parent else None,
                name=span["operationName"],
                service=processes.get(span.get("processID"), {}).get("serviceName", ""),
                scope=scope,
                start=start,
                end=start + span.get("duration", 0) / 1e6,
                attributes=tags,
                status=status,
                links=links,
            )
        )
    return sorted(records, key=lambda r: r.start)


class JaegerTraces:
    """The few reads the lab needs from Jaeger: one trace by id, and recent traces of a service."""

    def __init__(self, url: str, timeout: float = 3.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(timeout=timeout)

    def _get(self, path: str, **params: Any) -> list[dict[str, Any]]:
        try:
            response = self._http.get(f"{self.url}{path}", params=params)
            if response.status_code == 404:
                return []
            response.raise_for_status()
            return response.json().get("data") or []
        except (httpx.HTTPError, ValueError) as exc:
            raise BackendUnavailable("traces", f"{self.url}: {exc}") from exc

    def trace(self, trace_id: str) -> list[SpanRecord]:
        data = self._get(f"/api/traces/{trace_id}")
        return span_records(data[0]) if data else []

    def recent(self, limit: int = 20, root: str | None = None, service: str = "api") -> list[dict[str, Any]]:
        params: dict[str, Any] = {"service": service, "limit": limit} | ({"operation": root} if root else {})
        traces = [spans for trace in self._get("/api/traces", **params) if (spans := span_records(trace))]
        summaries = [summarize(spans[0].trace_id, spans) for spans in traces]
        return sorted(summaries, key=lambda t: t["start"], reverse=True)[:limit]

    def close(self) -> None:
        self._http.close()
