"""Notebook 02 (fan-out): what pushing a post into every follower's mailbox costs, and when to pull.

The cost model is pure pandas over two frames read once from SQL — ``author_stats`` (followers and
posts per author) and ``follow_edges`` — so the threshold slider recomputes instantly and the checks
can call the same functions. The push/pull decision itself is the product's ``labcore.workers.fanout.delivery_for``,
not a copy. The functions taking a ``LabClient`` read mailboxes or create accounts on the running stack.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from labcore.widgets.output import figure_output
from labcore.widgets.write_path import delivered_to, unique_name, wait_until
from labcore.workers.fanout import delivery_for

if TYPE_CHECKING:  # importing this module needs neither a stack nor the plotting libraries
    import ipywidgets
    import pandas as pd
    import plotly.graph_objects as go

    from labcore.lab.client import LabClient

__all__ = [
    "author_stats", "curve_thresholds", "delivered_to", "describe_threshold", "fanout_cost", "fanout_scatter",
    "follow_edges", "full_mailbox_bytes", "mailbox_frame", "mailbox_size_histogram", "mailbox_sizes",
    "make_celebrity", "threshold_curve", "threshold_explorer", "threshold_summary", "threshold_view",
    "tradeoff_figure", "trim_demo", "unique_name", "wait_until",
]  # fmt: skip


# --- reading the world from SQL -----------------------------------------------------------------------

_AUTHOR_STATS = """
SELECT u.id AS user_id, u.username, u.follower_count,
       COUNT(p.id) AS posts,
       SUM(CASE WHEN p.delivery = 'pull' THEN 1 ELSE 0 END) AS pull_posts
FROM users u LEFT JOIN posts p ON p.user_id = u.id
GROUP BY u.id, u.username, u.follower_count
"""


def author_stats(lab: LabClient) -> pd.DataFrame:
    """One row per user: ``follower_count`` (the counter kept in the users row), ``posts`` written,
    and ``pull_posts``: how many of them were recorded as celebrity posts when they were written."""
    import pandas as pd
    import sqlalchemy as sa

    stats = pd.read_sql(sa.text(_AUTHOR_STATS), lab.store.engine)
    stats["pull_posts"] = stats["pull_posts"].fillna(0).astype(int)
    return stats.sort_values("follower_count", ascending=False, ignore_index=True)


def follow_edges(lab: LabClient) -> pd.DataFrame:
    """Every ``(follower_id, followee_id)`` edge: who would have to pull whom at read time."""
    import pandas as pd
    import sqlalchemy as sa

    return pd.read_sql(sa.text("SELECT follower_id, followee_id FROM follows"), lab.store.engine)


# --- the cost model (pure) ------------------------------------------------------------------------------


def fanout_cost(stats: pd.DataFrame, threshold: int) -> pd.DataFrame:
    """Per author at celebrity threshold ``threshold``: ``delivery`` (push or pull, decided by the
    product's rule), ``writes_per_post`` (mailboxes one post touches: the follower count, or 0 when
    pulled), ``writes`` for all their posts, and ``writes_if_pushed`` (what pushing everything costs)."""
    costs = stats.copy()
    costs["delivery"] = [delivery_for(int(f), threshold) for f in costs["follower_count"]]
    pushed = costs["delivery"] == "push"
    costs["writes_per_post"] = costs["follower_count"].where(pushed, 0).astype(int)
    costs["writes"] = (costs["writes_per_post"] * costs["posts"]).astype(int)
    costs["writes_if_pushed"] = (costs["follower_count"] * costs["posts"]).astype(int)
    return costs


def threshold_summary(costs: pd.DataFrame, follows: pd.DataFrame) -> dict[str, Any]:
    """The trade-off at one threshold: mailbox writes paid and avoided, the most expensive single post,
    and how many readers follow at least one pulled author (each of their reads runs the pull query)."""
    pulled = costs[costs["delivery"] == "pull"]
    total = int(costs["writes_if_pushed"].sum())
    paid = int(costs["writes"].sum())
    readers = follows.loc[follows["followee_id"].isin(pulled["user_id"]), "follower_id"].nunique()
    return {
        "pull_authors": len(pulled),
        "pull_usernames": pulled.sort_values("follower_count", ascending=False)["username"].tolist(),
        "writes_paid": paid,
        "writes_avoided": total - paid,
        "share_avoided": round((total - paid) / total, 3) if total else 0.0,
        "max_writes_one_post": int(costs["writes_per_post"].max()) if len(costs) else 0,
        "readers_pulling": int(readers),
    }


def threshold_curve(stats: pd.DataFrame, follows: pd.DataFrame, thresholds: Iterable[int]) -> pd.DataFrame:
    """``threshold_summary`` over many thresholds: the write cost falls as the threshold drops, the
    number of readers who merge at read time rises."""
    import pandas as pd

    rows = []
    for threshold in thresholds:
        summary = threshold_summary(fanout_cost(stats, threshold), follows)
        rows.append({"threshold": threshold} | {k: v for k, v in summary.items() if k != "pull_usernames"})
    return pd.DataFrame(rows)


def curve_thresholds(max_followers: int, points: int = 40) -> list[int]:
    """Thresholds from 0 to just above the biggest account, denser at the low end (log spacing)."""
    import numpy as np

    top = max(1, max_followers + 1)
    grid = np.unique(np.round(np.geomspace(1, top, points)).astype(int))
    return [0, *grid.tolist()]


# --- plots and the slider ----------------------------------------------------------------------------------


def fanout_scatter(costs: pd.DataFrame, threshold: int) -> go.Figure:
    """Mailbox writes for each author's posts against their follower count (log-log), coloured by
    push (paid when the post is written) or pull (avoided: followers merge it in at read time)."""
    import plotly.express as px

    shown = costs[costs["writes_if_pushed"] > 0].copy()  # nobody to deliver to (or nothing posted): no cost
    shown["delivery"] = shown["delivery"].map({"push": "push (paid at write time)", "pull": "pull (avoided)"})
    paid, avoided = int(costs["writes"].sum()), int(costs["writes_if_pushed"].sum() - costs["writes"].sum())
    fig = px.scatter(
        shown, x="follower_count", y="writes_if_pushed", color="delivery", log_x=True, log_y=True,
        hover_data=["username", "posts", "writes_per_post"],
        color_discrete_map={"push (paid at write time)": "#1f77b4", "pull (avoided)": "#d62728"},
        labels={"follower_count": "followers", "writes_if_pushed": "mailbox writes for all their posts"},
        title=f"Fan-out at threshold {threshold}: {paid:,} mailbox writes paid, {avoided:,} avoided",
    )  # fmt: skip
    log_axis_vline(fig, max(threshold, 1), f"threshold {threshold}")
    fig.update_layout(height=420, legend_title=None)
    return fig


def log_axis_vline(fig: go.Figure, x: float, text: str) -> None:
    """A dashed vertical line at ``x`` on a log x axis, labelled at its top.

    ``add_vline(annotation_text=...)`` places its label at ``x`` in data units, but plotly reads an
    annotation's x on a log axis as log10 — a threshold of 216 put the label at 10^216 and stretched
    the axis to it. The line takes data units; the label is given its log10 itself.
    """
    import math

    fig.add_vline(x=x, line_dash="dash")
    fig.add_annotation(x=math.log10(x), y=1, yref="paper", text=text, showarrow=False, xanchor="left", yanchor="bottom")


def tradeoff_figure(curve: pd.DataFrame, threshold: int | None = None) -> go.Figure:
    """Write cost (left axis) against readers who pull at read time (right axis), per threshold."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    x = curve["threshold"].clip(lower=1)  # log axis: threshold 0 is drawn at 1
    fig.add_trace(go.Scatter(x=x, y=curve["writes_paid"], name="mailbox writes paid", mode="lines+markers"))
    fig.add_trace(
        go.Scatter(x=x, y=curve["readers_pulling"], name="readers merging at read time", mode="lines+markers"),
        secondary_y=True,
    )
    if threshold is not None:
        log_axis_vline(fig, max(threshold, 1), f"now: {threshold}")
    fig.update_xaxes(type="log", title="celebrity threshold (followers)")
    fig.update_yaxes(title="mailbox writes (whole world)", secondary_y=False)
    fig.update_yaxes(title="readers", secondary_y=True)
    fig.update_layout(title="Push is paid when writing, pull when reading", height=380)
    return fig


def describe_threshold(threshold: int, summary: Mapping[str, Any]) -> str:
    """One sentence for a ``threshold_summary``."""
    pulled = ", ".join(summary["pull_usernames"][:5]) + (" ..." if summary["pull_authors"] > 5 else "")
    return (
        f"threshold {threshold}: {summary['pull_authors']} author(s) pulled ({pulled or 'none'}); "
        f"{summary['writes_paid']:,} mailbox writes paid, {summary['writes_avoided']:,} avoided "
        f"({summary['share_avoided']:.0%}); the costliest single post writes {summary['max_writes_one_post']:,} "
        f"mailboxes; {summary['readers_pulling']:,} readers merge celebrity posts at read time"
    )


def threshold_view(stats: pd.DataFrame, follows: pd.DataFrame, threshold: int) -> tuple[dict[str, Any], pd.DataFrame, go.Figure]:
    """What the slider shows for one threshold: the summary, the costliest authors, the scatter."""
    costs = fanout_cost(stats, threshold)
    top = costs.nlargest(8, "follower_count")[["username", "follower_count", "posts", "delivery", "writes_per_post"]]
    return threshold_summary(costs, follows), top.reset_index(drop=True), fanout_scatter(costs, threshold)


def threshold_explorer(stats: pd.DataFrame, follows: pd.DataFrame, threshold: int) -> ipywidgets.VBox:
    """A slider over the celebrity threshold that redraws ``threshold_view`` (a what-if: the running
    stack keeps its own threshold; posts already written keep the delivery they were given)."""
    import ipywidgets as widgets

    slider = widgets.IntSlider(
        value=threshold, min=0, max=max(int(stats["follower_count"].max()), threshold) + 10, step=1,
        description="threshold", continuous_update=False, layout=widgets.Layout(width="60%"),
    )  # fmt: skip
    out = widgets.Output()

    def render(threshold: int) -> None:
        # Outputs are set on the widget, never captured with `with out:` while a cell runs: that
        # capture intermittently stalls headless execution (nbclient waits forever for the cell's
        # reply, jupyter/nbclient#312), and `feedlab check` runs this notebook headless.
        summary, top, fig = threshold_view(stats, follows, threshold)
        out.outputs = ()
        out.append_stdout(describe_threshold(threshold, summary) + "\n")
        out.append_display_data(top)
        out.outputs += (figure_output(fig),)

    render(threshold)
    slider.observe(lambda change: render(change["new"]), names="value")
    return widgets.VBox([slider, out])


# --- mailboxes --------------------------------------------------------------------------------------------


def mailbox_frame(inspected: Mapping[str, Any]) -> pd.DataFrame:
    """``lab.inspect("mailbox/<user>")`` as a table: post id, score, and the score read as a time."""
    import pandas as pd

    frame = pd.DataFrame(inspected["entries"], columns=["post_id", "score"])
    frame["created_at"] = [datetime.fromtimestamp(score, UTC) for score in frame["score"]]
    return frame


def mailbox_sizes(lab: LabClient, user_ids: Sequence[str]) -> pd.Series:
    """``ZCARD feed:{user}`` for each user, pipelined (one round trip)."""
    import pandas as pd

    pipe = lab.redis.pipeline(transaction=False)
    for user_id in user_ids:
        pipe.zcard(f"feed:{user_id}")
    return pd.Series(pipe.execute(), index=list(user_ids), name="entries")


def mailbox_size_histogram(sizes: pd.Series, cap: int) -> go.Figure:
    """How full the mailboxes are, with the cap they are trimmed to."""
    import plotly.express as px

    fig = px.histogram(
        sizes, nbins=40, labels={"value": "entries in feed:{user}"},
        title=f"Mailbox sizes (cap {cap}: the oldest ids beyond it are trimmed on every delivery)",
    )  # fmt: skip
    fig.add_vline(x=cap, line_dash="dash", line_color="red", annotation_text=f"cap {cap}")
    fig.update_layout(showlegend=False, height=320)
    return fig


def trim_demo(lab: LabClient, cap: int = 5, posts: int = 8) -> pd.DataFrame:
    """Deliver ``posts`` posts (scores 1..posts), then one late post (score 0), into a scratch mailbox
    capped at ``cap`` — with the fan-out worker's own ``RedisMailboxes.deliver``. One row per delivery:
    ZCARD after it and the oldest and newest score kept. The scratch key is deleted afterwards."""
    import pandas as pd

    from labcore.adapters.redis.mailboxes import RedisMailboxes, mailbox_key

    scratch = unique_name("scratch-trim-demo")
    mailboxes = RedisMailboxes(lab.redis, cap=cap, ttl_seconds=600)
    rows = []
    try:
        for post, score in [(f"p{i}", float(i)) for i in range(1, posts + 1)] + [("late p0", 0.0)]:
            mailboxes.deliver(post, score, [scratch])
            kept = mailboxes.entries(scratch)
            rows.append({
                "delivered": post, "score": score, "zcard": len(kept),
                "oldest kept": kept[-1][1], "newest kept": kept[0][1], "kept it": post in dict(kept),
            })  # fmt: skip
    finally:
        lab.redis.delete(mailbox_key(scratch))
    return pd.DataFrame(rows)


def full_mailbox_bytes(lab: LabClient, cap: int) -> int:
    """Redis ``MEMORY USAGE`` of a mailbox filled to ``cap`` post ids (a scratch key, deleted after)."""
    import uuid

    key = f"feed:{unique_name('scratch-full-demo')}"
    try:
        lab.redis.zadd(key, {str(uuid.uuid4()): 1_700_000_000 + i / 1000 for i in range(cap)})
        return int(lab.redis.memory_usage(key) or 0)
    finally:
        lab.redis.delete(key)


# --- making a celebrity --------------------------------------------------------------------------------------


def make_celebrity(lab: LabClient, followers: int, prefix: str = "star") -> tuple[dict[str, Any], list[str]]:
    """Create an author and ``followers`` fresh accounts that follow them, through the public API.

    The tiny world has no account above the default threshold, so the notebook makes one. Returns the
    author (as ``lab.create_user`` returns it, with the final follower count) and the follower ids.
    """
    star = lab.create_user(unique_name(prefix))
    fans = []
    for i in range(followers):
        fan = lab.create_user(unique_name(f"fan{i}"))
        lab.follow(fan["user_id"], star["user_id"])
        fans.append(fan["user_id"])
    star = lab.api.get(f"/users/{star['user_id']}").json()
    return star, fans
