"""What every HTTP service of the lab shares for telemetry: a server span per request and ``/metrics``.

The span continues the caller's trace when the request carries a ``traceparent`` (the feed calling
the ranking service does), and the response names its trace in ``X-Trace-Id`` so a client can ask
``GET /traces/{id}`` for the waterfall of the request it just made.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from opentelemetry import trace

from labcore.observability import metrics, tracing

tracer = trace.get_tracer(__name__)

# Scrapes, probes and trace reads would bury the requests worth looking at.
UNTRACED = ("/metrics", "/health", "/traces", "/docs", "/openapi.json")

# FastAPI's own OpenTelemetry spans are off in our apps: ``instrument`` makes the server span (and
# names the trace in the response); FastAPI's would duplicate it, plus three spans per request for
# dependencies, endpoint and serialization. (Feast's server keeps them: they show inside our traces.)
FASTAPI_TELEMETRY = {"tracing": False, "metrics": False, "logs": False}


def instrument(app: FastAPI) -> None:
    """Add the request span middleware and the ``/metrics`` route to ``app``."""

    @app.middleware("http")
    async def server_span(request: Request, call_next):  # noqa: ANN001, ANN202
        if request.url.path.startswith(UNTRACED):
            return await call_next(request)
        with tracer.start_as_current_span(
            f"{request.method} {request.url.path}",
            context=tracing.extract(request.headers),
            kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": request.method, "url.path": request.url.path},
        ) as span:
            response = await call_next(request)
            route = request.scope.get("route")
            if route is not None:  # name the span by its route template, not the ids in the path
                span.update_name(f"{request.method} {route.path}")
                span.set_attribute("http.route", route.path)
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(trace.StatusCode.ERROR)
            trace_id = tracing.trace_id_of(span)
            if trace_id:
                response.headers["X-Trace-Id"] = trace_id
            return response

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)
