"""Notebook 04: served vs seen, the 24 h window, the OLAP query and its Redis fallback.

Pure helpers turn what the API returns (a feed, an explain, the ``impressions`` topic's tail, the
OLAP rows, a Redis sorted set) into small tables, and draw the window. ``seen_in_window`` runs the
real adapter and SQL on a scratch in-memory DuckDB, never the runtime's file (one process owns it).
``report_impressions_at`` is what ``POST /impressions`` does, with a clock the caller chooses: the
only honest way to show an impression older than the window without waiting a day.

``SeenExplorer`` is the widget: the user's served posts, a button per post to report it seen, and
the journey table refreshed after each report. The buttons call ``SeenExplorer.report``, which the
notebook's checks call directly (papermill runs headless: nobody clicks).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from labcore.domain import ImpressionLogged
from labcore.widgets.output import show

if TYPE_CHECKING:  # pandas, plotly, ipywidgets and redis are imported where they are used
    import ipywidgets
    import pandas as pd
    import plotly.graph_objects as go
    import redis

    from labcore.lab.client import LabClient


def short(post_id: str) -> str:
    """The first block of a UUID: enough to tell a handful of posts apart in a table."""
    return post_id.split("-", 1)[0]


# --- Served vs seen ----------------------------------------------------------------------------------


def journeys_by_post(explain: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {j["post_id"]: j for j in explain["journeys"]}


def journey_table(
    explain: Mapping[str, Any], posts: Mapping[str, str], content: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """One row per labelled post (``{label: post_id}``): its source, why it was filtered, its rank.

    A post that is no candidate at all (neither retrieved nor filtered) shows source ``-``.
    """
    import pandas as pd

    journeys = journeys_by_post(explain)
    in_feed = {item["post_id"] for item in explain["items"]}
    rows = []
    for label, post_id in posts.items():
        journey = journeys.get(post_id, {})
        rows.append(
            {
                "post": label,
                "post_id": short(post_id),
                "content": (content or {}).get(post_id, "")[:60],
                "source": journey.get("source", "-"),
                "filtered": journey.get("filtered"),
                "rank": journey.get("rank"),
                "in feed": post_id in in_feed,
            }
        )
    columns = ["post", "post_id", "content", "source", "filtered", "rank", "in feed"]
    return pd.DataFrame(rows, columns=columns).astype({"rank": "Int64"}).set_index("post")


def find_event(events: Iterable[Mapping[str, Any]], user_id: str, post_id: str) -> Mapping[str, Any] | None:
    """The newest ``impressions`` record for ``(user_id, post_id)`` in a tail (oldest first)."""
    found = None
    for record in events:
        value = record.get("value", {})
        if value.get("user_id") == user_id and value.get("post_id") == post_id:
            found = record
    return found


def find_row(rows: Iterable[Mapping[str, Any]], user_id: str, post_id: str) -> Mapping[str, Any] | None:
    """The newest OLAP row for ``(user_id, post_id)`` among ``inspect("impressions")["rows"]``."""
    matches = [r for r in rows if r["user_id"] == user_id and r["post_id"] == post_id]
    return max(matches, key=lambda r: r["seen_at"]) if matches else None


def wait_for_olap_row(
    lab: LabClient,
    user_id: str,
    post_id: str,
    *,
    seen_at: float | None = None,
    timeout: float = 30.0,
    limit: int = 1000,
) -> tuple[Mapping[str, Any], float]:
    """Poll the OLAP store until it holds the impression; returns the row and the seconds it took.

    The store loads the ``impressions`` topic asynchronously (the loader in the embedded profile,
    Pinot's real-time ingestion in compose): this wait *is* the ingestion lag. With ``seen_at``
    only the row of that moment counts (a post can be seen more than once).
    """
    started = time.monotonic()
    while True:
        rows = [
            r for r in lab.inspect("impressions", limit=limit)["rows"]
            if seen_at is None or abs(r["seen_at"] - seen_at) < 1e-3
        ]  # fmt: skip
        row = find_row(rows, user_id, post_id)
        if row is not None:
            return row, time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"the OLAP store did not load the impression of {post_id} within {timeout:.0f} s")
        time.sleep(0.05)


# --- The query and the Redis set ----------------------------------------------------------------------


def render_sql(sql: str, params: Sequence[Any]) -> str:
    """The query with its parameters written in, **for reading only**.

    The stores never see this text: DuckDB binds the ``?`` itself and pinotdb quotes each value.
    Formatting values into SQL is how injection happens, which is why the real path never does it.
    """
    pieces = sql.split("?")
    if len(pieces) - 1 != len(params):
        raise ValueError(f"{len(pieces) - 1} placeholders but {len(params)} parameters")
    out = [pieces[0]]
    for value, piece in zip(params, pieces[1:]):
        out.append(("'" + value.replace("'", "''") + "'" if isinstance(value, str) else repr(value)) + piece)
    return "".join(out)


def params_table(params: Sequence[Any], post_ids: Sequence[str] = ()) -> pd.DataFrame:
    """What each ``?`` of ``seen_query`` is bound to, in order."""
    import pandas as pd

    names = ["user_id", "since (epoch s, floored)"] + [f"post_id {i + 1}" for i in range(len(post_ids))] + ["LIMIT"]
    if len(names) != len(params):
        raise ValueError("pass the post_ids the query was built with")
    placeholders = [f"?{i + 1}" for i in range(len(params))]
    return pd.DataFrame({"placeholder": placeholders, "binds": names, "value": list(params)})


def recent_set(client: redis.Redis, user_id: str, now: float | None = None) -> pd.DataFrame:
    """``ZRANGE seen:{user_id} 0 -1 WITHSCORES``: the user's recent impressions, oldest first."""
    import pandas as pd

    from labcore.adapters.impressions.redis_recent import seen_key

    now = time.time() if now is None else now
    entries = client.zrange(seen_key(user_id), 0, -1, withscores=True)
    return pd.DataFrame(
        [
            {
                "post_id": member.decode() if isinstance(member, bytes) else member,
                "score (seen_at)": f"{score:.3f}",  # as text: pandas would show 1.795594e+09
                "seen at (UTC)": datetime.fromtimestamp(score, UTC).strftime("%Y-%m-%d %H:%M:%S"),
                "hours ago": round((now - score) / 3600, 2),
            }
            for member, score in entries
        ],
        columns=["post_id", "score (seen_at)", "seen at (UTC)", "hours ago"],
    )


# --- The window ----------------------------------------------------------------------------------------


def window_start(now: float, window_hours: float) -> int:
    """The query's lower bound: ``now - window``, floored to a whole second as ``seen_query`` does."""
    import math

    return math.floor(now - window_hours * 3600)


def seen_in_window(impressions: Sequence[ImpressionLogged], now: float, window_hours: float = 24.0) -> set[str]:
    """Which of ``impressions``' posts count as seen at ``now``, by the real adapter and SQL.

    The impressions go into a scratch in-memory DuckDB through ``DuckdbImpressions`` (the runtime's
    own OLAP class) and are asked for with its ``seen_since`` — the very query the feed runs.
    """
    from labcore.adapters.impressions.duckdb import DuckdbImpressions

    if not impressions:
        return set()
    users = {impression.user_id for impression in impressions}
    if len(users) != 1:
        raise ValueError("one user's impressions at a time")
    scratch = DuckdbImpressions(":memory:")
    try:
        scratch.insert(impressions)
        return scratch.seen_since(users.pop(), now - window_hours * 3600)
    finally:
        scratch.close()


def window_figure(
    seen: Mapping[str, float], now: float, window_hours: float = 24.0, title: str | None = None
) -> go.Figure:
    """A timeline of impressions (``{label: seen_at}``) with the window shaded: inside filters."""
    import plotly.graph_objects as go

    start = window_start(now, window_hours)
    hours = {label: (seen_at - now) / 3600 for label, seen_at in seen.items()}
    inside = {label: seen.get(label, 0) >= start for label in seen}
    earliest = min([-window_hours * 1.25, *hours.values()]) - 1
    figure = go.Figure()
    figure.add_vrect(
        x0=(start - now) / 3600, x1=0, fillcolor="seagreen", opacity=0.15, line_width=0,
        annotation_text=f"the last {window_hours:g} h: these filter", annotation_position="top left",
    )  # fmt: skip
    for flag, name, colour in ((True, "inside: filtered", "seagreen"), (False, "outside: served again", "firebrick")):
        labels = [label for label in seen if inside[label] is flag]
        figure.add_trace(
            go.Scatter(
                x=[hours[label] for label in labels], y=[0] * len(labels), mode="markers+text", name=name,
                text=labels, textposition="top center", marker={"size": 14, "color": colour},
            )  # fmt: skip
        )
    figure.add_vline(x=0, line_dash="dot", annotation_text="now")
    figure.update_layout(
        title=title or f"Which impressions still count: seen_at >= now - {window_hours:g} h",
        xaxis_title="hours relative to now", xaxis_range=[earliest, 2], yaxis_visible=False, height=300,
    )  # fmt: skip
    return figure


def report_impressions_at(lab: LabClient, user_id: str, post_ids: Sequence[str], seen_at: float) -> int:
    """Exactly what ``POST /impressions`` runs (``record_impressions``), with the clock at ``seen_at``.

    The API always stamps the current time, so this goes around it: the Redis recent set and the
    ``impressions`` topic of the running stack get the impression as if it had been reported at
    ``seen_at``, and the OLAP store loads it from the topic as usual.
    """
    from labcore.adapters.impressions.redis_recent import RedisRecentImpressions
    from labcore.bootstrap import build_event_log
    from labcore.write.impressions import record_impressions

    settings = lab.settings
    events = build_event_log(settings, lab.redis)
    recent = RedisRecentImpressions(
        lab.redis, cap=settings.recent_impressions_cap, window_seconds=settings.impression_window_hours * 3600
    )
    try:
        return record_impressions(events, recent, user_id, post_ids, now=seen_at)
    finally:
        events.close()  # a log built on a shared client leaves the client open


# --- The widget ----------------------------------------------------------------------------------------


@dataclass
class SeenExplorer:
    """A user's served posts and a record of which were reported seen."""

    lab: LabClient
    user_id: str
    limit: int = 5
    served: dict[str, str] = field(default_factory=dict)  # label -> post_id, as first served
    content: dict[str, str] = field(default_factory=dict)  # post_id -> text
    reported: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        feed = self.lab.feed(self.user_id, limit=self.limit)
        for index, item in enumerate(feed["items"], 1):
            self.served[f"#{index}"] = item["post_id"]
            self.content[item["post_id"]] = item["content"]

    def report(self, post_ids: Sequence[str]) -> dict[str, Any]:
        """Report ``post_ids`` as seen (``POST /impressions``), then explain the feed again."""
        self.lab.impressions(self.user_id, list(post_ids))
        self.reported.extend(post_ids)
        return self.explain()

    def explain(self) -> dict[str, Any]:
        return self.lab.explain(self.user_id, limit=50)

    def table(self, explain: Mapping[str, Any] | None = None) -> pd.DataFrame:
        frame = journey_table(explain or self.explain(), self.served, self.content)
        frame.insert(2, "reported seen", [post_id in self.reported for post_id in self.served.values()])
        return frame


def seen_explorer(explorer: SeenExplorer) -> ipywidgets.VBox:
    """A button per served post: press it and the table shows the post filtered as ``seen_in_24h``."""
    import ipywidgets as widgets

    output = widgets.Output()

    def render(explain: Mapping[str, Any] | None = None) -> None:
        show(output, explorer.table(explain))

    def on_click(post_id: str) -> Callable[[Any], None]:
        def handler(button: Any) -> None:
            button.disabled = True
            render(explorer.report([post_id]))

        return handler

    buttons = []
    for label, post_id in explorer.served.items():
        button = widgets.Button(description=f"I saw {label}", icon="eye", disabled=post_id in explorer.reported)
        button.on_click(on_click(post_id))
        buttons.append(button)
    render()
    return widgets.VBox([widgets.HBox(buttons), output])
