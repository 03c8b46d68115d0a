"""Notebook 10 (learned ranking): plots of the loop — from simulated readers to an A/B result.

* ``taste_chart`` — one simulated reader's hidden topic preferences (what the stack never sees);
* ``position_chart`` — impressions and like rate per feed position (the position bias of the log);
* ``leak_frame`` — for liked impressions: the like count in the training row vs the count today;
* ``metric_chart`` — AUC and NDCG@20 of each model next to ``formula-v1`` and random;
* ``margin_chart`` — each learned model's AUC margin over ``formula-v1`` and random, with its 95 % CI;
* ``calibration_chart`` — predicted probability vs observed like rate, per model;
* ``importance_chart`` — permutation importance: how much AUC each input carries;
* ``ab_chart`` — like rate per impression in each A/B arm, with 95 % intervals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from labcore.lab.simulator import HiddenTaste
    from labcore.ranking.learned.training import TrainingResult

COLORS = {
    "formula-v1": "#9D9D9D",
    "random": "#D3D3D3",
    "logistic-regression": "#4C78A8",
    "gradient-boosting": "#F58518",
}


def taste_chart(taste: HiddenTaste) -> go.Figure:
    import plotly.graph_objects as go

    topics = sorted(taste.topics, key=lambda t: taste.topics[t], reverse=True)
    fig = go.Figure(go.Bar(x=topics, y=[taste.topics[t] for t in topics], marker_color="#54A24B"))
    fig.update_layout(
        title=f"Hidden topic preferences of reader {taste.user_id[:8]} (and {len(taste.authors)} favourite authors)",
        yaxis={"title": "preference", "range": [0, 1]},
        height=320,
    )
    return fig


def position_chart(log: pd.DataFrame) -> go.Figure:
    """Bars: impressions per position (fewer further down: position bias); line: like rate."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    per = log.groupby("position").agg(impressions=("post_id", "size"), like_rate=("liked", "mean"))
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Bar(x=per.index + 1, y=per["impressions"], name="impressions", marker_color="#4C78A8"))
    fig.add_trace(
        go.Scatter(x=per.index + 1, y=per["like_rate"], name="like rate", mode="lines+markers", marker_color="#F58518"),
        secondary_y=True,
    )
    fig.update_layout(title="What the simulated readers saw, by feed position", xaxis_title="position", height=340)
    fig.update_yaxes(title_text="impressions", secondary_y=False)
    fig.update_yaxes(title_text="like rate", secondary_y=True, rangemode="tozero")
    return fig


def leak_frame(rows: pd.DataFrame, current_like_counts: dict[str, int], n: int = 8) -> pd.DataFrame:
    """Liked impressions: the like count the training row holds (as at the impression) next to the
    post's like count now — which includes the like the label is about."""
    liked = rows[rows["label"] == 1].head(n)
    return pd.DataFrame(
        {
            "post": liked["post_id"].str[:8],
            "impression at": liked["event_timestamp"].dt.strftime("%H:%M:%S.%f").str[:-3],
            "like_count in the row": liked["like_count"].astype("Int64"),
            "like_count now": liked["post_id"].map(current_like_counts).astype("Int64"),
        }
    ).reset_index(drop=True)


def metric_chart(table: pd.DataFrame) -> go.Figure:
    import plotly.graph_objects as go

    fig = go.Figure()
    for metric in ("auc", "ndcg@20"):
        fig.add_trace(go.Bar(x=table.index, y=table[metric], name=metric, text=table[metric].round(3)))
    fig.update_layout(
        title="Held-out (later) impressions: AUC and NDCG@20 per model", barmode="group", yaxis={"range": [0, 1]},
        height=340,
    )
    return fig


def margin_chart(margins: pd.DataFrame) -> go.Figure:
    """AUC(model) − AUC(baseline) per (model, baseline) with the bootstrap interval as error bars:
    a bar whose whole interval is right of zero is a win beyond the test split's noise."""
    import plotly.graph_objects as go

    frame = margins.reset_index()
    fig = go.Figure()
    for model, rows in frame.groupby("model", sort=False):
        fig.add_trace(
            go.Bar(
                y=[f"vs {vs}" for vs in rows["vs"]], x=rows["auc_margin"], name=model, orientation="h",
                marker_color=COLORS.get(str(model)), text=rows["auc_margin"].round(3),
                error_x={"type": "data", "symmetric": False, "array": rows["ci95_high"] - rows["auc_margin"],
                         "arrayminus": rows["auc_margin"] - rows["ci95_low"]},
            )
        )  # fmt: skip
    fig.add_vline(x=0, line_color="#444444")
    fig.update_layout(
        title="AUC margin on the held-out impressions (95 % paired bootstrap interval over readers)",
        xaxis_title="AUC(model) − AUC(baseline)", barmode="group", height=320,
    )  # fmt: skip
    return fig


def calibration_chart(result: TrainingResult, bins: int = 8) -> go.Figure:
    """Reliability diagram on the test split: a calibrated model lies on the diagonal."""
    import plotly.graph_objects as go
    from sklearn.calibration import calibration_curve

    labels = result.split.test["label"].to_numpy()
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                               line={"dash": "dash", "color": "#BBBBBB"}))  # fmt: skip
    for name, probabilities in result.test_probabilities.items():
        if name == "random":
            continue
        observed, predicted = calibration_curve(labels, probabilities, n_bins=bins, strategy="quantile")
        label = f"{name} (Platt-scaled)" if name == "formula-v1" else name
        fig.add_trace(go.Scatter(x=predicted, y=observed, mode="lines+markers", name=label,
                                 marker_color=COLORS.get(name)))  # fmt: skip
    fig.update_layout(
        title="Calibration: predicted pLike vs observed like rate",
        xaxis_title="predicted", yaxis_title="observed", height=380,
    )  # fmt: skip
    return fig


def importance_chart(importance: pd.Series, model: str) -> go.Figure:
    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(x=importance.to_numpy(), y=importance.index, orientation="h", marker_color=COLORS.get(model)))
    fig.update_layout(
        title=f"Permutation importance ({model}): AUC lost when one input is shuffled",
        xaxis_title="AUC drop", height=max(300, 28 * len(importance) + 100), margin={"l": 10},
    )  # fmt: skip
    return fig


def ab_chart(table: pd.DataFrame) -> go.Figure:
    import plotly.graph_objects as go

    errors = np.vstack([table["like_rate"] - table["ci95_low"], table["ci95_high"] - table["like_rate"]])
    fig = go.Figure(
        go.Bar(
            x=table.index, y=table["like_rate"], marker_color=[COLORS.get(a, "#F58518") for a in table.index],
            error_y={"type": "data", "symmetric": False, "array": errors[1], "arrayminus": errors[0]},
            text=[f"{r:.1%} of {n} impressions" for r, n in zip(table["like_rate"], table["impressions"], strict=True)],
        )
    )  # fmt: skip
    fig.update_layout(title="A/B: like rate per impression by arm (95 % interval)", yaxis_title="like rate", height=340)
    return fig
