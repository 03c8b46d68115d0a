"""The feed, end to end (notebook 07): feed cards, the candidate funnel, stage latency, fallback drills.

The HTML and the counts are built by pure functions (``feed_cards_html``, ``stage_counts``,
``journey_links``) that take the API's JSON, so they are unit-tested without a stack; the thin
wrappers turn them into an ipywidget, a plotly figure or a pandas frame for a notebook cell.
plotly, pandas and ipywidgets are imported inside the functions that need them.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ipywidgets
    import pandas as pd
    import plotly.graph_objects as go

    from labcore.lab.client import LabClient

# One colour per candidate source, used by the cards, the funnel and the sankey alike.
SOURCE_COLORS: dict[str, str] = {"social": "#2563eb", "celebrity": "#d97706", "discovery": "#7c3aed"}
UNKNOWN_SOURCE_COLOR = "#6b7280"

# The stages as ``stage_latency_ms`` names them, in request order.
STAGES: tuple[str, ...] = (
    "stage1_retrieval",
    "stage2_impression_filtering",
    "stage3_feature_fetch",
    "stage3_ranking",
    "stage4_rerank_hydrate",
)

# The read path's dependencies a learner can stop one at a time, and the named fallback each one
# triggers (labcore.feed lists them all). Redis is left out: in the embedded profile it also carries
# the event log every worker reads, so stopping it stalls the write path too (``mailbox:sql``).
DRILL_FALLBACKS: dict[str, str] = {
    "feature-server": "features:redis-cache",
    "ranking": "ranking:recency",
    "vectors": "vectors:social-only",
    "impressions": "olap:redis-recent",
}


# --- feed cards -------------------------------------------------------------------------------------
def _parse_time(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def age_label(created: datetime, now: datetime) -> str:
    """``"just now"``, ``"5 min ago"``, ``"3 h ago"``, ``"2 d ago"`` — how old a post looks to a reader."""
    seconds = max(0.0, (now - created).total_seconds())
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} d ago"


def _safe_url(url: str | None) -> str | None:
    """Only http(s) URLs become ``src`` attributes; anything else (``javascript:``...) is dropped."""
    if not url or not url.lower().startswith(("http://", "https://")):
        return None
    return html.escape(url, quote=True)


def _badge(source: str) -> str:
    color = SOURCE_COLORS.get(source, UNKNOWN_SOURCE_COLOR)
    return (
        f'<span class="feedlab-badge" data-source="{html.escape(source, quote=True)}" '
        f'style="background:{color};color:#fff;border-radius:999px;padding:1px 8px;font-size:11px;'
        f'font-weight:600;text-transform:uppercase;letter-spacing:.03em;white-space:nowrap">{html.escape(source)}</span>'
    )


def _media(item: Mapping[str, Any]) -> str:
    url = _safe_url(item.get("media_url"))
    if url is None:
        return ""
    style = "width:100%;height:140px;object-fit:cover;border-radius:6px;margin-top:6px;background:#f3f4f6"
    if str(item.get("media_type") or "").startswith("video"):
        return f'<video class="feedlab-media" src="{url}" style="{style}" muted controls preload="metadata"></video>'
    return f'<img class="feedlab-media" src="{url}" alt="post media" loading="lazy" style="{style}">'


def _card(rank: int, item: Mapping[str, Any], now: datetime) -> str:
    username = str(item.get("username") or item.get("user_id") or "?")
    name = str(item.get("display_name") or username)
    source = str(item.get("source") or "unknown")
    score = item.get("score")
    score_text = f"{score:.3f}" if isinstance(score, int | float) else "—"
    created = _parse_time(item.get("created_at"))
    when = (
        f'<span title="{created.strftime("%Y-%m-%d %H:%M:%S UTC")}">{age_label(created, now)}</span>'
        if created
        else "—"
    )
    color = SOURCE_COLORS.get(source, UNKNOWN_SOURCE_COLOR)
    return (
        f'<div class="feedlab-card" data-post-id="{html.escape(str(item.get("post_id", "")), quote=True)}" '
        f'style="box-sizing:border-box;min-width:0;border:1px solid #e5e7eb;border-left:4px solid {color};'
        f'border-radius:8px;padding:10px;'
        f'background:#fff;color:#111827;font-family:system-ui,sans-serif;font-size:13px;line-height:1.35">'
        f'<div style="display:flex;align-items:baseline;gap:6px;margin-bottom:4px">'
        f'<span class="feedlab-rank" style="color:#9ca3af;font-weight:600">#{rank}</span>'
        f'<span style="flex:1;min-width:0;overflow:hidden;text-overflow:ellipsis;white-space:nowrap">'
        f'<span class="feedlab-author" style="font-weight:600">{html.escape(name)}</span> '
        f'<span style="color:#6b7280">@{html.escape(username)}</span></span>'
        f'<span style="flex-shrink:0">{_badge(source)}</span></div>'
        f'<div class="feedlab-content">{html.escape(str(item.get("content", "")))}</div>'
        f"{_media(item)}"
        f'<div style="display:flex;gap:10px;margin-top:6px;color:#6b7280;font-size:12px">'
        f'<span class="feedlab-score">score <b style="color:#111827">{score_text}</b></span>'
        f'<span>♥ {int(item.get("like_count") or 0)}</span>'
        f'<span class="feedlab-created" style="margin-left:auto">{when}</span></div>'
        f"</div>"
    )


def feed_cards_html(feed: Mapping[str, Any], now: datetime | None = None) -> str:
    """The feed response as cards: author, content, media thumbnail, coloured source badge, score, age.

    Pure: the same feed (and ``now``) gives the same HTML. Every text from the API is escaped and only
    http(s) media URLs are used, since post content is whatever a user typed. Inline styles only, so
    it renders the same in an ipywidget, in JupyterLab's sanitized HTML output and in exported HTML.
    """
    now = now or datetime.now(UTC)
    items = list(feed.get("items", []))
    fallbacks = ", ".join(feed.get("fallbacks") or []) or "none"
    latency = feed.get("latency_ms")
    summary = " · ".join(
        part
        for part in (
            f"{len(items)} posts",
            f"model {html.escape(str(feed['model_version']))}" if feed.get("model_version") else "",
            f"features {html.escape(str(feed['feature_source']))}" if feed.get("feature_source") else "",
            f"fallbacks: {html.escape(fallbacks)}",
            f"{latency:.0f} ms" if isinstance(latency, int | float) else "",
        )
        if part
    )
    legend = " ".join(_badge(source) for source in SOURCE_COLORS)
    cards = "".join(_card(rank, item, now) for rank, item in enumerate(items, start=1))
    if not items:
        cards = '<div class="feedlab-empty" style="color:#6b7280">This feed is empty.</div>'
    return (
        '<div class="feedlab-feed" style="font-family:system-ui,sans-serif">'
        f'<div style="display:flex;gap:8px;align-items:center;margin-bottom:8px;font-size:13px;color:#374151">'
        f'<span class="feedlab-summary">{summary}</span><span style="margin-left:auto">{legend}</span></div>'
        '<div style="display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:10px">'
        f"{cards}</div></div>"
    )


def feed_cards(feed: Mapping[str, Any], now: datetime | None = None) -> ipywidgets.HTML:
    """``feed_cards_html`` in an ``ipywidgets.HTML``: the last line of a cell shows the feed."""
    import ipywidgets

    # "auto", not "100%": the widget has margins, and 100% plus margins overflows the output area
    return ipywidgets.HTML(value=feed_cards_html(feed, now), layout=ipywidgets.Layout(width="auto"))


# --- the explain view -------------------------------------------------------------------------------
def journeys_frame(explain: Mapping[str, Any]) -> pd.DataFrame:
    """One row per candidate: source, why it was filtered or dropped, whether stage 4 demoted it (a
    demoted post is moved below the others, and still on the page when there is room), score, rank,
    and its features."""
    import pandas as pd

    rows = []
    for j in explain.get("journeys", []):
        outcome = j.get("filtered") or j.get("dropped") or ("in feed" if j.get("rank") else "?")
        rows.append(
            {
                "post_id": j["post_id"][:8],
                "source": j["source"],
                "outcome": outcome,
                "demoted": j.get("demoted"),
                "rank": j.get("rank"),
                "score": j.get("score"),
                **{k: v for k, v in (j.get("features") or {}).items()},
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["rank"] = frame["rank"].astype("Int64")  # a nullable integer: most candidates have no rank
    return frame.sort_values(["rank", "score"], ascending=[True, False], na_position="last").reset_index(drop=True)


FUNNEL_STAGES: tuple[str, ...] = ("1 retrieved", "2 not seen in 24 h", "3 scored", "4 in the feed")


def stage_counts(explain: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Candidates left after each stage, per source: ``{stage: {source: count}}``.

    Stage 2 removes what the user saw; stage 3 scores what is left (a post deleted meanwhile is
    ``post_missing``); stage 4 keeps the ranked top ``limit`` under the diversity rules.
    """
    checks: dict[str, Callable[[Mapping[str, Any]], bool]] = {
        FUNNEL_STAGES[0]: lambda j: True,
        FUNNEL_STAGES[1]: lambda j: j.get("filtered") != "seen_in_24h",
        FUNNEL_STAGES[2]: lambda j: j.get("filtered") is None,
        FUNNEL_STAGES[3]: lambda j: j.get("rank") is not None,
    }
    journeys = list(explain.get("journeys", []))
    sources = list(SOURCE_COLORS) + sorted({j["source"] for j in journeys} - set(SOURCE_COLORS))
    return {
        stage: {source: sum(1 for j in journeys if j["source"] == source and keep(j)) for source in sources}
        for stage, keep in checks.items()
    }


def candidate_funnel(explain: Mapping[str, Any]) -> go.Figure:
    """A funnel of candidates per stage, one colour per source."""
    import plotly.graph_objects as go

    counts = stage_counts(explain)
    figure = go.Figure()
    for source in next(iter(counts.values())):
        values = [counts[stage][source] for stage in FUNNEL_STAGES]
        if any(values):
            figure.add_trace(
                go.Funnel(
                    name=source, y=list(FUNNEL_STAGES), x=values, textinfo="value",
                    marker={"color": SOURCE_COLORS.get(source, UNKNOWN_SOURCE_COLOR)},
                )
            )  # fmt: skip
    return figure.update_layout(title="Candidates left after each stage", height=360, margin={"t": 50, "b": 20})


def journey_links(explain: Mapping[str, Any]) -> dict[tuple[str, str], int]:
    """Sankey edges ``(from, to) -> count``: source → stage-2 verdict → (demoted →) final outcome."""
    links: dict[tuple[str, str], int] = {}

    def add(a: str, b: str) -> None:
        links[(a, b)] = links.get((a, b), 0) + 1

    for j in explain.get("journeys", []):
        if j.get("filtered") == "seen_in_24h":
            add(j["source"], "seen in 24 h")
            continue
        add(j["source"], "not seen")
        if j.get("filtered"):
            add("not seen", str(j["filtered"]).replace("_", " "))
            continue
        step = "not seen"
        if j.get("demoted"):  # moved below the others by a diversity cap; on the page if there was room
            step = "demoted: " + str(j["demoted"]).replace("_", " ")
            add("not seen", step)
        if j.get("rank") is not None:
            add(step, "in the feed")
        else:
            add(step, str(j.get("dropped") or "dropped").replace("_", " "))
    return links


def candidate_sankey(explain: Mapping[str, Any]) -> go.Figure:
    """Every candidate's journey as a sankey: where it came from, and where it ended."""
    import plotly.graph_objects as go

    links = journey_links(explain)
    nodes = list(dict.fromkeys(name for pair in links for name in pair))
    index = {name: i for i, name in enumerate(nodes)}
    node_colors = [
        SOURCE_COLORS.get(name, "#16a34a" if name == "in the feed" else "#9ca3af") for name in nodes
    ]  # fmt: skip
    figure = go.Figure(
        go.Sankey(
            node={"label": nodes, "color": node_colors, "pad": 14},
            link={
                "source": [index[a] for a, _ in links],
                "target": [index[b] for _, b in links],
                "value": list(links.values()),
            },
        )
    )
    return figure.update_layout(title="Each candidate's journey", height=380, margin={"t": 50, "b": 20})


def median_stage_latency(feeds: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Median milliseconds per stage over several responses (the first request of a session is cold)."""
    samples: dict[str, list[float]] = {}
    for feed in feeds:
        for stage, ms in (feed.get("stage_latency_ms") or {}).items():
            samples.setdefault(stage, []).append(float(ms))
    ordered = [s for s in STAGES if s in samples] + sorted(set(samples) - set(STAGES))
    return {stage: sorted(samples[stage])[len(samples[stage]) // 2] for stage in ordered}


def stage_latency_bar(feeds: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> go.Figure:
    """A bar per stage: median milliseconds over one or more feed responses."""
    import plotly.graph_objects as go

    feeds = [feeds] if isinstance(feeds, Mapping) else list(feeds)
    medians = median_stage_latency(feeds)
    figure = go.Figure(
        go.Bar(
            x=list(medians.values()), y=list(medians), orientation="h",
            text=[f"{ms:.1f} ms" for ms in medians.values()], textposition="auto", marker={"color": "#0ea5e9"},
        )
    )  # fmt: skip
    title = f"Where the time goes (median of {len(feeds)} request{'s' if len(feeds) != 1 else ''})"
    return figure.update_layout(
        title=title, xaxis_title="milliseconds", yaxis={"autorange": "reversed"}, height=320, margin={"t": 50}
    )


# --- fallbacks ----------------------------------------------------------------------------------------
def fallback_drill(
    lab: LabClient,
    user_id: str,
    services: Mapping[str, str] = DRILL_FALLBACKS,
    recover_timeout: float = 20.0,
) -> pd.DataFrame:
    """Stop each service, read the feed, start it again; one row per service.

    ``start`` runs in a ``finally``, so a failing read never leaves the stack degraded. After the
    restart the feed is read until ``fallbacks`` is empty again (a restarted server can take a
    moment to accept connections) — ``recovered`` says whether the primary path came back.
    """
    import pandas as pd

    rows = []
    for service, expected in services.items():
        lab.stop(service)
        try:
            degraded = lab.feed(user_id)
        finally:
            lab.start(service)
        started = time.monotonic()
        recovered = lab.feed(user_id)
        while recovered["fallbacks"] and time.monotonic() - started < recover_timeout:
            time.sleep(0.2)
            recovered = lab.feed(user_id)
        rows.append(
            {
                "stopped": service,
                "expected fallback": expected,
                "fallbacks while stopped": ", ".join(degraded["fallbacks"]) or "none",
                "items": len(degraded["items"]),
                "feature_source": degraded["feature_source"],
                "model_version": degraded["model_version"],
                "discovery candidates": degraded["candidates_discovery"],
                "fallback seen": expected in degraded["fallbacks"],
                "recovered": not recovered["fallbacks"],
                "recovered in s": round(time.monotonic() - started, 2),
            }
        )
    return pd.DataFrame(rows)
