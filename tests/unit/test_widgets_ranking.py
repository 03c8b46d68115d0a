"""Notebook 06's widget functions: terms, re-ranking with any weights, the slider explorer."""

from __future__ import annotations

import pandas as pd
import pytest

from labcore.ranking.formula import WEIGHTS, Candidate, formula_v1
from labcore.widgets.ranking import (
    TERMS,
    RankingExplorer,
    candidates_from_explain,
    explain_candidate,
    rank_changes,
    rerank,
    terms_chart,
    terms_frame,
)

NOW = 1_800_000_000.0
HOUR = 3600.0

CANDIDATES = [
    # fresh, unliked, unknown author
    Candidate("fresh", {"created_at": NOW - 60, "like_count": 0, "topic_similarity": 0.1}),
    # two days old, popular, with a photo
    Candidate("popular", {"created_at": NOW - 48 * HOUR, "like_count": 80, "has_media": 1.0, "topic_similarity": 0.2}),
    # a day old, from an author the reader likes a lot
    Candidate(
        "friend", {"created_at": NOW - 24 * HOUR, "like_count": 2, "affinity_score": 0.95, "topic_similarity": 0.0}
    ),
    # old, but exactly the reader's topic
    Candidate("on_topic", {"created_at": NOW - 72 * HOUR, "like_count": 1, "topic_similarity": 0.98}),
]


@pytest.fixture
def terms() -> pd.DataFrame:
    return terms_frame("reader", CANDIDATES, NOW, seed=7)


def test_terms_frame_has_one_row_per_candidate_and_every_term_in_unit_range(terms: pd.DataFrame) -> None:
    assert list(terms.index) == [c.post_id for c in CANDIDATES]
    assert list(terms.columns) == list(TERMS)
    assert ((terms >= 0) & (terms <= 1)).all().all()
    assert terms.loc["fresh", "recency"] > 0.99 and terms.loc["popular", "recency"] == pytest.approx(0.25)


def test_rerank_with_formula_weights_reproduces_formula_v1(terms: pd.DataFrame) -> None:
    ranked = rerank(terms, WEIGHTS)
    expected = dict(zip((c.post_id for c in CANDIDATES), formula_v1("reader", CANDIDATES, NOW, seed=7), strict=True))
    for post_id, score in ranked["score"].items():
        assert score == pytest.approx(expected[post_id], abs=1e-12)
    assert ranked["rank"].tolist() == [1, 2, 3, 4]
    assert ranked["score"].is_monotonic_decreasing


@pytest.mark.parametrize(
    ("weights", "winner"),
    [
        ({"recency": 1.0}, "fresh"),
        ({"engagement": 1.0}, "popular"),
        ({"affinity": 1.0}, "friend"),
        ({"topic_similarity": 1.0}, "on_topic"),
    ],
)
def test_a_single_weight_ranks_by_its_own_term(terms: pd.DataFrame, weights: dict[str, float], winner: str) -> None:
    ranked = rerank(terms, weights)
    assert ranked.index[0] == winner
    term = next(iter(weights))
    expected = sorted(terms.index, key=lambda post_id: (-terms.at[post_id, term], post_id))  # ties: by post id
    assert ranked.index.tolist() == expected


def test_contributions_are_weight_times_term_and_sum_to_the_score(terms: pd.DataFrame) -> None:
    weights = {"recency": 0.5, "affinity": 0.3, "jitter": 0.2}
    ranked = rerank(terms, weights)
    for name in TERMS:
        assert ranked[name].to_dict() == pytest.approx((terms[name] * weights.get(name, 0.0)).to_dict())
    assert ranked["score"].to_dict() == pytest.approx(ranked[list(TERMS)].sum(axis=1).to_dict())


def test_ties_are_broken_by_post_id_and_extra_columns_are_kept(terms: pd.DataFrame) -> None:
    labelled = terms.assign(label=[f"post {i}" for i in range(len(terms))])
    ranked = rerank(labelled, {})  # all weights 0: every score ties
    assert ranked.index.tolist() == sorted(terms.index)
    assert set(ranked["score"]) == {0.0}
    assert ranked.loc["fresh", "label"] == "post 0"


@pytest.mark.parametrize("weights", [{"recency": -0.1}, {"novelty": 0.2}, {"recency": float("nan")}])
def test_bad_weights_are_refused(terms: pd.DataFrame, weights: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        rerank(terms, weights)


def test_rerank_needs_the_term_columns() -> None:
    with pytest.raises(ValueError, match="term columns"):
        rerank(pd.DataFrame({"recency": [0.5]}, index=["p"]), WEIGHTS)


def test_rank_changes_reports_who_moved_up_and_down(terms: pd.DataFrame) -> None:
    before = rerank(terms, {"recency": 1.0})
    after = rerank(terms, {"topic_similarity": 1.0})
    changes = rank_changes(before, after)
    assert changes.index[0] == "on_topic"
    assert changes.loc["on_topic", "moved"] == changes.loc["on_topic", "rank_before"] - 1 > 0
    assert changes["moved"].sum() == 0  # a permutation: every place gained is a place lost


def test_candidates_from_explain_keeps_only_what_the_ranker_scored() -> None:
    explain = {
        "journeys": [
            {"post_id": "a", "filtered": None, "score": 0.4, "features": {"like_count": 3.0}},
            {"post_id": "b", "filtered": "seen_in_24h", "score": None, "features": {}},
            {"post_id": "c", "filtered": None, "score": 0.2, "features": {"topic_similarity": None}},
        ]
    }
    candidates = candidates_from_explain(explain)
    assert [c.post_id for c in candidates] == ["a", "c"]
    assert candidates[0].features == {"like_count": 3.0}


def test_explain_candidate_names_the_inputs_and_sums_to_the_score() -> None:
    friend = CANDIDATES[2]
    table = explain_candidate("reader", friend, NOW, 7)
    assert table.index.tolist() == list(TERMS)
    assert table["contribution"].sum() == pytest.approx(formula_v1("reader", [friend], NOW, 7)[0])
    assert "affinity_score=0.950" in table.loc["affinity", "reads"]
    proxy = explain_candidate("reader", Candidate("x", {"avg_engagement_rate": 0.4}), NOW, 7)
    assert "proxy" in proxy.loc["affinity", "reads"] and "neutral" in proxy.loc["topic_similarity", "reads"]


def test_terms_chart_stacks_one_trace_per_term_in_rank_order(terms: pd.DataFrame) -> None:
    ranked = rerank(terms.assign(label=list(terms.index)), WEIGHTS)
    fig = terms_chart(ranked, top=3)
    assert [trace.name for trace in fig.data] == list(TERMS)
    top3 = zip(ranked.index[:3], ranked["rank"][:3], strict=True)
    assert list(fig.data[0].y) == [f"{rank}. {post_id}" for post_id, rank in top3]
    assert fig.layout.barmode == "stack"


def test_the_explorer_re_ranks_when_a_slider_moves(terms: pd.DataFrame) -> None:
    explorer = RankingExplorer(terms)
    assert explorer.ranked["score"].to_dict() == pytest.approx(rerank(terms, WEIGHTS)["score"].to_dict())
    explorer.set_weights({"topic_similarity": 1.0})
    assert explorer.ranked.index[0] == "on_topic"
    assert explorer.weights["recency"] == 0.0
    explorer.sliders["topic_similarity"].value = 0.0
    explorer.sliders["engagement"].value = 1.0  # one drag, one re-rank
    assert explorer.ranked.index[0] == "popular"
    assert explorer.changes.loc["popular", "rank_after"] == 1
    (shown,) = explorer.output.outputs  # the chart, set directly: no output capture (see _show)
    assert shown["data"]["application/vnd.plotly.v1+json"]["data"][0]["name"] == "recency"
    assert explorer.output.msg_id == ""
    explorer.reset_button.click()
    assert explorer.weights == pytest.approx(WEIGHTS)
    assert (explorer.changes["moved"] == 0).all()
