"""Notebook 02's cost model and plots: pure pandas over a hand-made world, no stack needed."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from labcore.widgets.fanout import (
    curve_thresholds,
    describe_threshold,
    fanout_cost,
    mailbox_frame,
    mailbox_size_histogram,
    threshold_curve,
    threshold_explorer,
    threshold_summary,
    threshold_view,
    tradeoff_figure,
)

# A star with 300 followers, a mid account with 50, a small one with 3, a silent one with 0 posts.
STATS = pd.DataFrame({
    "user_id": ["star", "mid", "small", "quiet"],
    "username": ["Star", "Mid", "Small", "Quiet"],
    "follower_count": [300, 50, 3, 7],
    "posts": [10, 4, 2, 0],
    "pull_posts": [10, 0, 0, 0],
})  # fmt: skip
FOLLOWS = pd.DataFrame({
    "follower_id": ["a", "b", "c", "a", "d"],
    "followee_id": ["star", "star", "star", "mid", "small"],
})  # fmt: skip


@pytest.mark.parametrize(
    ("threshold", "pulled", "paid"),
    [
        (1000, [], 300 * 10 + 50 * 4 + 3 * 2),
        (300, [], 300 * 10 + 50 * 4 + 3 * 2),  # "more than the threshold" is pulled: 300 is pushed
        (299, ["star"], 50 * 4 + 3 * 2),
        (50, ["star"], 50 * 4 + 3 * 2),
        (49, ["star", "mid"], 3 * 2),
        (0, ["star", "mid", "small", "quiet"], 0),
    ],
)
def test_fanout_cost_follows_the_products_rule(threshold: int, pulled: list[str], paid: int) -> None:
    costs = fanout_cost(STATS, threshold)
    assert sorted(costs.loc[costs["delivery"] == "pull", "user_id"]) == sorted(pulled)
    assert costs["writes"].sum() == paid
    pushed = costs[costs["delivery"] == "push"]
    assert (pushed["writes_per_post"] == pushed["follower_count"]).all()
    assert (costs.loc[costs["delivery"] == "pull", "writes_per_post"] == 0).all()


def test_fanout_cost_does_not_modify_its_input() -> None:
    before = STATS.copy()
    fanout_cost(STATS, 10)
    pd.testing.assert_frame_equal(STATS, before)


def test_threshold_summary() -> None:
    summary = threshold_summary(fanout_cost(STATS, 100), FOLLOWS)
    assert summary == {
        "pull_authors": 1,
        "pull_usernames": ["Star"],
        "writes_paid": 206,
        "writes_avoided": 3000,
        "share_avoided": round(3000 / 3206, 3),
        "max_writes_one_post": 50,
        "readers_pulling": 3,  # a, b, c follow the star
    }


def test_threshold_summary_of_an_empty_world() -> None:
    empty = STATS.iloc[0:0]
    summary = threshold_summary(fanout_cost(empty, 200), FOLLOWS.iloc[0:0])
    assert summary["writes_paid"] == summary["writes_avoided"] == summary["max_writes_one_post"] == 0
    assert summary["share_avoided"] == 0.0


def test_readers_pulling_counts_each_reader_once() -> None:
    # "a" follows both pulled authors at threshold 10: one reader, one merge query per read.
    summary = threshold_summary(fanout_cost(STATS, 10), FOLLOWS)
    assert summary["readers_pulling"] == 3


def test_threshold_curve_trades_writes_for_pulling_readers() -> None:
    curve = threshold_curve(STATS, FOLLOWS, [0, 5, 60, 400])
    assert curve["threshold"].tolist() == [0, 5, 60, 400]
    assert curve["writes_paid"].is_monotonic_increasing
    assert curve["readers_pulling"].is_monotonic_decreasing
    assert curve["writes_paid"].iloc[-1] == 3206 and curve["readers_pulling"].iloc[-1] == 0


def test_curve_thresholds_span_zero_to_above_the_biggest_account() -> None:
    thresholds = curve_thresholds(300, points=20)
    assert thresholds[0] == 0 and thresholds[-1] == 301
    assert thresholds == sorted(set(thresholds))
    assert curve_thresholds(0) == [0, 1]


def test_describe_threshold_names_the_pulled_authors() -> None:
    text = describe_threshold(100, threshold_summary(fanout_cost(STATS, 100), FOLLOWS))
    assert "1 author(s) pulled (Star)" in text and "3,000 avoided" in text


def test_threshold_view_and_figures() -> None:
    summary, top, fig = threshold_view(STATS, FOLLOWS, 100)
    assert summary["pull_authors"] == 1
    assert top["username"].tolist()[0] == "Star" and "writes_per_post" in top
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    plotted = {name for trace in fig.data for name in trace.customdata[:, 0]}
    assert plotted == {"Star", "Mid", "Small"}, "no cost, no point (log axes cannot show zero)"
    assert "206 mailbox writes paid, 3,000 avoided" in fig.layout.title.text
    curve_fig = tradeoff_figure(threshold_curve(STATS, FOLLOWS, [0, 10, 100]), 100)
    assert len(curve_fig.data) == 2 and curve_fig.layout.xaxis.type == "log"
    for figure in (fig, curve_fig):
        # the threshold line in data units, its label in log10 units (plotly's rule for annotations
        # on a log axis): the label sits on the line, not at 10^100 stretching the axis
        assert [(shape.x0, shape.x1) for shape in figure.layout.shapes] == [(100, 100)]
        assert [annotation.x for annotation in figure.layout.annotations] == [2.0]


def _shown_text(explorer: object) -> str:
    out = explorer.children[1]  # type: ignore[attr-defined]
    return "".join(o.get("text", "") for o in out.outputs if o["output_type"] == "stream")


def test_threshold_explorer_is_a_slider_over_the_same_view() -> None:
    explorer = threshold_explorer(STATS, FOLLOWS, 100)
    slider, out = explorer.children
    assert slider.value == 100 and slider.max >= 300
    assert [o["output_type"] for o in out.outputs] == ["stream", "display_data", "display_data"]
    assert "threshold 100: 1 author(s) pulled (Star)" in _shown_text(explorer)
    slider.value = 10  # recomputes without a stack or a kernel
    assert "threshold 10: 2 author(s) pulled (Star, Mid)" in _shown_text(explorer)
    assert len(out.outputs) == 3, "the old view is replaced, not appended to"
    figure = out.outputs[2]["data"]["application/vnd.plotly.v1+json"]
    assert figure["layout"]["title"]["text"].startswith("Fan-out at threshold 10:")
    json.dumps(out.outputs)  # widget state travels as JSON


def test_threshold_explorer_starts_at_a_threshold_above_every_account() -> None:
    slider = threshold_explorer(STATS, FOLLOWS, 1000).children[0]
    assert slider.value == 1000 and slider.max > 1000


def test_mailbox_frame_reads_scores_as_times() -> None:
    frame = mailbox_frame({"entries": [{"post_id": "p2", "score": 1704067200.5}, {"post_id": "p1", "score": 1704067100.0}]})
    assert frame["post_id"].tolist() == ["p2", "p1"]
    assert frame.loc[0, "created_at"] == pd.Timestamp("2024-01-01T00:00:00.5", tz="UTC")
    assert mailbox_frame({"entries": []}).empty


def test_mailbox_size_histogram_marks_the_cap() -> None:
    fig = mailbox_size_histogram(pd.Series([1, 5, 9], name="entries"), cap=800)
    assert fig.layout.shapes[0].x0 == 800
