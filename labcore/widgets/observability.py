"""Traces and metrics in the notebooks (notebook 08): waterfalls, quantiles, live charts.

* ``span_tree`` / ``waterfall`` draw one trace from ``lab.trace(...)``: each span a bar placed at its
  start, indented under its parent, coloured by the module that made it.
* ``post_journey`` writes a post and waits until its trace has reached the fan-out and embedding
  workers — the trace context travelled through the outbox and the event log to get there.
* ``parse_metrics`` turns ``/metrics`` text into rows; ``histogram_quantile`` estimates a quantile
  from a histogram's buckets the way PromQL's ``histogram_quantile`` does (linear within a bucket);
  ``watch`` samples the metrics while a load runs and charts latency and fallbacks per interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from labcore.lab.client import LabClient

# Colour per module that makes spans (the scope's last part), so one glance tells read path from workers.
SCOPE_COLORS = {
    "http_telemetry": "#7f7f7f",
    "feed": "#1f77b4",
    "app": "#9467bd",  # the ranking service
    "write_path": "#2ca02c",
    "outbox": "#bcbd22",
    "fanout": "#ff7f0e",
    "embedding_worker": "#d62728",
    "runtime": "#8c564b",  # the runtime's feature-freshness worker
}


# --- one trace ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpanRow:
    name: str
    depth: int
    start_ms: float  # from the trace's first span
    duration_ms: float
    scope: str
    span_id: str
    parent_id: str | None
    attributes: Mapping[str, Any]


def span_tree(spans: Sequence[Mapping[str, Any]]) -> list[SpanRow]:
    """Spans in tree order (each parent before its children, siblings by start), with their depth."""
    if not spans:
        return []
    origin = min(s["start"] for s in spans)
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[Mapping[str, Any]]] = {}
    for span in spans:
        parent = span["parent_id"] if span["parent_id"] in ids else None  # orphans become roots
        children.setdefault(parent, []).append(span)
    rows: list[SpanRow] = []

    def visit(parent: str | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s["start"]):
            rows.append(
                SpanRow(
                    name=span["name"],
                    depth=depth,
                    start_ms=round((span["start"] - origin) * 1000, 3),
                    duration_ms=span["duration_ms"],
                    scope=span.get("scope", "").rsplit(".", 1)[-1],
                    span_id=span["span_id"],
                    parent_id=span["parent_id"],
                    attributes=span.get("attributes", {}),
                )
            )
            visit(span["span_id"], depth + 1)

    visit(None, 0)
    return rows


def trace_frame(spans: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The trace as a table: indented name, start and duration in ms, module, attributes."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "span": "  " * row.depth + row.name,
                "start_ms": row.start_ms,
                "duration_ms": row.duration_ms,
                "module": row.scope,
                "attributes": dict(row.attributes),
            }
            for row in span_tree(spans)
        ]
    )


def waterfall(spans: Sequence[Mapping[str, Any]], title: str = "trace") -> go.Figure:
    """A trace waterfall: one bar per span from its start to its end, children under parents."""
    import plotly.graph_objects as go

    rows = span_tree(spans)
    labels = [f"{'· ' * r.depth}{r.name}  ({i})" for i, r in enumerate(rows)]
    fig = go.Figure(
        go.Bar(
            y=labels,
            x=[max(r.duration_ms, 0.05) for r in rows],  # a 0 ms span still shows as a sliver
            base=[r.start_ms for r in rows],
            orientation="h",
            marker_color=[SCOPE_COLORS.get(r.scope, "#17becf") for r in rows],
            customdata=[[r.scope, r.duration_ms, _short(r.attributes)] for r in rows],
            hovertemplate="%{y}<br>%{customdata[0]} · %{customdata[1]} ms<br>%{customdata[2]}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", tickfont={"family": "monospace", "size": 11})
    fig.update_layout(
        title=title,
        xaxis_title="ms since the trace started",
        height=140 + 22 * len(rows),
        margin={"l": 10, "r": 10, "t": 40, "b": 40},
        showlegend=False,
    )
    return fig


def _short(attributes: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in list(attributes.items())[:6])


def post_journey(
    lab: LabClient,
    user_id: str,
    content: str,
    expect: Sequence[str] = ("fanout.deliver", "embedding.embed_post"),
    timeout: float = 20.0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Write a post and return it with its trace once the spans named in ``expect`` have arrived.

    The trace starts at ``POST /posts/``; the workers' spans join it because the context travelled
    in the outbox row and the event's headers. Raises ``TimeoutError`` naming what never arrived.
    """
    post = lab.post(user_id, content)
    trace_id = lab.last_trace_id
    if trace_id is None:
        raise RuntimeError("the API did not return X-Trace-Id: is tracing set up in the runtime?")
    deadline = time.monotonic() + timeout
    while True:
        spans = lab.trace(trace_id)
        missing = set(expect) - {s["name"] for s in spans}
        if not missing:
            return post, spans
        if time.monotonic() > deadline:
            raise TimeoutError(f"trace {trace_id} never got {sorted(missing)} within {timeout}s")
        time.sleep(0.2)


# --- metrics ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


def parse_metrics(text: str) -> list[Sample]:
    """Every sample of a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    return [
        Sample(sample.name, dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def metric_value(samples: Sequence[Sample], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 when there are none)."""
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def buckets(samples: Sequence[Sample], histogram: str, **labels: str) -> list[tuple[float, float]]:
    """A histogram's cumulative ``(upper bound, count)`` pairs, summed over other label values."""
    totals: dict[float, float] = {}
    for s in samples:
        if s.name == f"{histogram}_bucket" and all(s.labels.get(k) == v for k, v in labels.items()):
            bound = float(s.labels["le"])
            totals[bound] = totals.get(bound, 0.0) + s.value
    return sorted(totals.items())


def histogram_quantile(q: float, cumulative: Sequence[tuple[float, float]]) -> float | None:
    """PromQL's estimate: find the bucket holding rank ``q·count``, interpolate linearly within it.

    None when the histogram is empty. A quantile in the ``+Inf`` bucket returns the highest finite
    bound (the estimate cannot say more), as Prometheus does.
    """
    if not cumulative or cumulative[-1][1] <= 0:
        return None
    total = cumulative[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in cumulative:
        if count >= rank:
            if bound == float("inf"):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def delta(after: Sequence[tuple[float, float]], before: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Bucket counts of an interval: ``after`` minus ``before`` (what ``rate()`` would see)."""
    earlier = dict(before)
    return [(bound, count - earlier.get(bound, 0.0)) for bound, count in after]


def stage_quantiles(samples: Sequence[Sample], quantiles: Sequence[float] = (0.5, 0.95, 0.99)) -> pd.DataFrame:
    """Per-stage latency quantiles in ms, estimated from ``feed_stage_latency_seconds``'s buckets."""
    import pandas as pd

    stages = sorted({s.labels["stage"] for s in samples if s.name == "feed_stage_latency_seconds_count"})
    rows = []
    for stage in [*stages, "total"]:
        cumulative = (
            buckets(samples, "feed_latency_seconds")
            if stage == "total"
            else buckets(samples, "feed_stage_latency_seconds", stage=stage)
        )
        row: dict[str, Any] = {"stage": stage, "requests": cumulative[-1][1] if cumulative else 0}
        for q in quantiles:
            value = histogram_quantile(q, cumulative)
            row[f"p{round(q * 100)}_ms"] = None if value is None else round(value * 1000, 2)
        rows.append(row)
    return pd.DataFrame(rows)


def fallback_counts(samples: Sequence[Sample]) -> dict[str, float]:
    """``feed_fallbacks_total`` by fallback name."""
    return {s.labels["fallback"]: s.value for s in samples if s.name == "feed_fallbacks_total"}


def watch(
    lab: LabClient,
    seconds: float = 10.0,
    every: float = 1.0,
    load: Callable[[], None] | None = None,
    display_live: bool = True,
) -> pd.DataFrame:
    """Sample ``/metrics`` every ``every`` s for ``seconds`` while calling ``load()`` in between.

    Each row is one interval: requests, p50/p99 feed latency (from the interval's bucket deltas,
    like PromQL over a ``rate()``) and fallbacks per second. With ``display_live`` the chart is shown
    in an output widget and redrawn as the rows arrive.
    """
    import pandas as pd

    output = None
    if display_live:
        import ipywidgets
        from IPython.display import display

        from labcore.widgets.output import show

        output = ipywidgets.Output()
        display(output)
    previous = parse_metrics(lab.metrics())
    started = time.monotonic()
    rows: list[dict[str, float | None]] = []
    while time.monotonic() - started < seconds:
        interval_start = time.monotonic()
        while time.monotonic() - interval_start < every:
            if load is not None:
                load()
            else:
                time.sleep(0.05)
        current = parse_metrics(lab.metrics())
        rows.append(interval_row(previous, current, time.monotonic() - started, time.monotonic() - interval_start))
        previous = current
        if output is not None:
            show(output, live_figure(pd.DataFrame(rows)))  # redrawn each interval
    return pd.DataFrame(rows, columns=list(INTERVAL_COLUMNS))


INTERVAL_COLUMNS = ("t", "requests", "p50_ms", "p99_ms", "fallbacks_per_s")


def interval_row(before: Sequence[Sample], after: Sequence[Sample], t: float, seconds: float) -> dict[str, float | None]:
    """One interval's figures from two snapshots of the metrics."""
    window = delta(buckets(after, "feed_latency_seconds"), buckets(before, "feed_latency_seconds"))
    p50, p99 = histogram_quantile(0.5, window), histogram_quantile(0.99, window)
    fallbacks = metric_value(after, "feed_fallbacks_total") - metric_value(before, "feed_fallbacks_total")
    return {
        "t": round(t, 2),
        "requests": window[-1][1] if window else 0.0,
        "p50_ms": None if p50 is None else round(p50 * 1000, 2),
        "p99_ms": None if p99 is None else round(p99 * 1000, 2),
        "fallbacks_per_s": round(fallbacks / seconds, 2) if seconds > 0 else 0.0,
    }


def live_figure(frame: pd.DataFrame) -> go.Figure:
    """Feed latency p50/p99 (left axis) and fallbacks per second (right axis) over time."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(go.Scatter(x=frame["t"], y=frame["p50_ms"], name="p50 ms", mode="lines+markers"))
    fig.add_trace(go.Scatter(x=frame["t"], y=frame["p99_ms"], name="p99 ms", mode="lines+markers"))
    fig.add_trace(
        go.Bar(x=frame["t"], y=frame["fallbacks_per_s"], name="fallbacks/s", yaxis="y2", opacity=0.35, marker_color="#d62728")
    )
    fig.update_layout(
        title="feed latency and fallbacks, per interval (from /metrics)",
        xaxis_title="seconds",
        yaxis={"title": "ms", "rangemode": "tozero"},
        yaxis2={"title": "fallbacks/s", "overlaying": "y", "side": "right", "rangemode": "tozero"},
        height=380,
    )
    return fig


def stage_chart(frame: pd.DataFrame) -> go.Figure:
    """Per-stage p50/p95/p99 from ``stage_quantiles`` as grouped bars."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for column in [c for c in frame.columns if c.startswith("p") and c.endswith("_ms")]:
        fig.add_trace(go.Bar(x=frame["stage"], y=frame[column], name=column.removesuffix("_ms")))
    fig.update_layout(barmode="group", title="feed latency per stage (histogram estimates)", yaxis_title="ms", height=360)
    return fig


class OutageLoad:
    """A feed load for ``watch``: one request per call, with ``service`` stopped during a window.

    Each call reads one reader's feed (round robin); between ``down_at`` and ``up_at`` seconds after
    the first call ``service`` is stopped, so the live chart shows the fallback rate rise and fall.
    ``finish()`` makes sure the service is running again (call it in a ``finally``).
    """

    def __init__(self, lab: LabClient, readers: Sequence[str], service: str, down_at: float, up_at: float) -> None:
        self.lab, self.readers, self.service = lab, list(readers), service
        self.down_at, self.up_at = down_at, up_at
        self.started: float | None = None
        self.state = "up"  # up -> down -> restored
        self.requests = 0
        self.fallbacks: list[list[str]] = []

    def __call__(self) -> None:
        now = time.monotonic()
        self.started = self.started or now
        elapsed = now - self.started
        if self.state == "up" and elapsed >= self.down_at:
            self.lab.stop(self.service)
            self.state = "down"
        elif self.state == "down" and elapsed >= self.up_at:
            self.lab.start(self.service)
            self.state = "restored"
        feed = self.lab.feed(self.readers[self.requests % len(self.readers)])
        self.fallbacks.append(feed["fallbacks"])
        self.requests += 1

    def finish(self) -> None:
        if self.state == "down":
            self.lab.start(self.service)
            self.state = "restored"


def dashboard_panels(path: str | None = None) -> pd.DataFrame:
    """The Grafana dashboard compose provisions: each panel's title and PromQL queries."""
    import json
    from pathlib import Path

    import pandas as pd

    source = Path(path) if path else Path(__file__).resolve().parents[2] / "compose/monitoring/grafana/dashboards/feed.json"
    dashboard = json.loads(source.read_text())
    return pd.DataFrame(
        [
            {"panel": panel["title"], "query": target["expr"]}
            for panel in dashboard["panels"]
            for target in panel.get("targets", [])
        ]
    )
