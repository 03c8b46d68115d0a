"""Notebook 06 (ranking): formula-v1 taken apart — each candidate's terms, and weights you can move.

* ``candidates_from_explain`` — the candidates the feed's ranker actually scored, with their features;
* ``terms_frame`` — each candidate's five terms in [0, 1] (``labcore.ranking.formula_terms``);
* ``explain_candidate`` — one candidate: which features feed which term, weight, contribution;
* ``rerank`` — score = Σ weight · term for *any* weights, ranked: the function behind the sliders;
* ``rank_changes`` — who moved between two rankings;
* ``terms_chart`` — the contributions as stacked bars, one bar per candidate in rank order;
* ``RankingExplorer`` — five sliders that re-rank a real candidate set live.

The scoring itself is never re-implemented here: the terms come from ``labcore.ranking.formula``, the same
code the ranking service runs, and ``rerank`` with ``WEIGHTS`` reproduces ``formula_v1`` exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from labcore.ranking.formula import (
    RECENCY_HALF_LIFE_HOURS,
    WEIGHTS,
    Candidate,
    formula_terms,
)
from labcore.widgets.output import show

if TYPE_CHECKING:
    import plotly.graph_objects as go

TERMS: tuple[str, ...] = tuple(WEIGHTS)
# One colour per term, the same in every chart of the notebook.
COLORS = {
    "recency": "#4C78A8",
    "engagement": "#F58518",
    "affinity": "#54A24B",
    "topic_similarity": "#B279A2",
    "jitter": "#9D9D9D",
}


def candidates_from_explain(explain: Mapping[str, Any]) -> list[Candidate]:
    """The journeys of ``GET /feed/explain`` that reached the ranker (they have a score), as
    ``Candidate``s with the exact features the ranking service was sent."""
    return [
        Candidate(journey["post_id"], dict(journey["features"]))
        for journey in explain["journeys"]
        if journey["score"] is not None and journey["filtered"] is None
    ]


def terms_frame(user_id: str, candidates: Sequence[Candidate], now: float, seed: int) -> pd.DataFrame:
    """One row per candidate (indexed by post id), one column per term of formula-v1, each in [0, 1]."""
    rows = {c.post_id: formula_terms(user_id, c, now, seed) for c in candidates}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(TERMS))
    frame.index.name = "post_id"
    return frame


def explain_candidate(
    user_id: str, candidate: Candidate, now: float, seed: int, weights: Mapping[str, float] = WEIGHTS
) -> pd.DataFrame:
    """One candidate, term by term: the features each term reads, the term, its weight, its share."""
    f = candidate.features
    terms = formula_terms(user_id, candidate, now, seed)
    created_at = f.get("created_at")
    age = "no created_at" if created_at is None else f"{max(0.0, now - float(created_at)) / 3600:.1f} h old"
    affinity = f.get("affinity_score")
    similarity = f.get("topic_similarity")
    inputs = {
        "recency": f"{age}; halves every {RECENCY_HALF_LIFE_HOURS:.0f} h",
        "engagement": f"like_count={f.get('like_count')}, has_media={f.get('has_media')}",
        "affinity": (
            f"affinity_score={affinity:.3f}"
            if affinity is not None
            else f"no affinity row: proxy avg_engagement_rate={f.get('avg_engagement_rate')}"
        ),
        "topic_similarity": (
            f"cosine={similarity:.3f} → (cos+1)/2" if similarity is not None else "no embedding: neutral 0.5"
        ),
        "jitter": f"hash(seed={seed}, user, post)",
    }
    return pd.DataFrame(
        {
            "reads": [inputs[name] for name in TERMS],
            "term": [terms[name] for name in TERMS],
            "weight": [weights.get(name, 0.0) for name in TERMS],
            "contribution": [weights.get(name, 0.0) * terms[name] for name in TERMS],
        },
        index=pd.Index(TERMS, name="term_name"),
    )


def _check_weights(weights: Mapping[str, float]) -> dict[str, float]:
    unknown = set(weights) - set(TERMS)
    if unknown:
        raise ValueError(f"unknown terms {sorted(unknown)}; formula-v1 has {', '.join(TERMS)}")
    clean = {name: float(weights.get(name, 0.0)) for name in TERMS}
    if any(value < 0 or math.isnan(value) for value in clean.values()):
        raise ValueError(f"weights must be non-negative numbers: {clean}")
    return clean


def rerank(candidates: pd.DataFrame, weights: Mapping[str, float]) -> pd.DataFrame:
    """Score every candidate with ``weights`` and rank them: the function behind the sliders.

    ``candidates`` is a ``terms_frame`` (other columns, e.g. a label, are carried along). Returns one
    row per candidate, best first: each term's *contribution* (weight · term), ``score`` (their sum)
    and ``rank`` (1-based; ties broken by post id so the order is deterministic). A term missing from
    ``weights`` weighs 0. With ``labcore.ranking.formula.WEIGHTS`` the scores are formula-v1's.
    """
    clean = _check_weights(weights)
    missing = [name for name in TERMS if name not in candidates.columns]
    if missing:
        raise ValueError(f"candidates lack the term columns {missing}")
    contributions = candidates[list(TERMS)].mul(pd.Series(clean))
    others = candidates.drop(columns=list(TERMS))
    ranked = pd.concat([others, contributions], axis=1)
    ranked["score"] = contributions.sum(axis=1)
    ranked["_id"] = ranked.index.astype(str)
    ranked = ranked.sort_values(["score", "_id"], ascending=[False, True]).drop(columns="_id")
    ranked["rank"] = range(1, len(ranked) + 1)
    return ranked


def rank_changes(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Every candidate's rank in two rankings (``rerank`` outputs) and how far it moved (+ = up)."""
    changes = pd.DataFrame({"rank_before": before["rank"], "rank_after": after["rank"]})
    changes["moved"] = changes["rank_before"] - changes["rank_after"]
    return changes.sort_values("rank_after")


def terms_chart(
    ranked: pd.DataFrame, *, top: int = 15, label: str | None = "label", title: str | None = None
) -> go.Figure:
    """Stacked horizontal bars: each candidate's contributions, best at the top, in rank order."""
    import plotly.graph_objects as go

    shown = ranked.head(top)
    names = [
        f"{rank}. {shown.at[post_id, label] if label and label in shown.columns else str(post_id)[:8]}"
        for post_id, rank in zip(shown.index, shown["rank"], strict=True)
    ]
    fig = go.Figure()
    for term in TERMS:
        fig.add_trace(go.Bar(y=names, x=shown[term], name=term, orientation="h", marker_color=COLORS[term],
                             hovertemplate=f"{term}: %{{x:.3f}}<extra></extra>"))  # fmt: skip
    fig.update_layout(
        barmode="stack",
        title=title or "What each candidate's score is made of (weight × term)",
        xaxis_title="score",
        yaxis={"autorange": "reversed"},
        height=max(320, 26 * len(shown) + 120),
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},  # above the bars, clear of the axis title
        margin={"l": 10},
    )
    return fig


class RankingExplorer:
    """Five sliders, one per weight: moving one re-ranks the candidates and redraws the chart.

    ``ranked`` is always the current ``rerank(candidates, weights)``; ``changes`` compares it with
    the ranking under the starting weights. Setting a slider's ``value`` from code does exactly what
    dragging it does, so the explorer can be driven (and checked) without a browser.
    """

    def __init__(self, candidates: pd.DataFrame, weights: Mapping[str, float] = WEIGHTS, *, top: int = 15) -> None:
        import ipywidgets as widgets

        self.candidates = candidates
        self.top = top
        start = _check_weights(weights)
        self.baseline = rerank(candidates, start)
        self.sliders = {
            name: widgets.FloatSlider(
                value=start[name], min=0.0, max=1.0, step=0.05, description=name, readout_format=".2f",
                continuous_update=False, style={"description_width": "110px"},
            )  # fmt: skip
            for name in TERMS
        }
        self.reset_button = widgets.Button(description="reset to formula-v1")
        self.reset_button.on_click(lambda _: self.set_weights(WEIGHTS))
        self.summary = widgets.HTML()
        self.output = widgets.Output()
        for slider in self.sliders.values():
            slider.observe(lambda _change: self.update(), names="value")
        self.widget = widgets.VBox(
            [widgets.HBox([widgets.VBox(list(self.sliders.values())), self.reset_button]), self.summary, self.output]
        )
        self._updating = False
        self.update()

    @property
    def weights(self) -> dict[str, float]:
        return {name: slider.value for name, slider in self.sliders.items()}

    def set_weights(self, weights: Mapping[str, float]) -> None:
        """Move every slider at once (terms not named go to 0), re-ranking once."""
        clean = _check_weights(weights)
        self._updating = True
        try:
            for name, slider in self.sliders.items():
                slider.value = clean[name]
        finally:
            self._updating = False
        self.update()

    def update(self) -> None:
        if self._updating:
            return
        self.ranked = rerank(self.candidates, self.weights)
        self.changes = rank_changes(self.baseline, self.ranked)
        top = self.changes.head(self.top)
        moved = int((top["moved"] != 0).sum())
        total = sum(self.weights.values())
        self.summary.value = (
            f"weights sum to <b>{total:.2f}</b>; {moved} of the top {len(top)} changed place "
            "compared with formula-v1's weights"
        )
        # Set on the widget, never captured with `with self.output:` (see labcore.widgets.output).
        show(self.output, terms_chart(self.ranked, top=self.top))

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
