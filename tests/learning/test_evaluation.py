"""Offline metrics: NDCG@k per user, engagement per arm."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labcore.ranking.learned.evaluation import (
    auc_margin,
    engagement_by_arm,
    margin_table,
    metric_table,
    ndcg_at_k,
)


def test_ndcg_is_one_for_the_ideal_order_and_less_otherwise() -> None:
    users = np.array(["u"] * 4 + ["v"] * 3)
    labels = np.array([1, 0, 0, 1, 0, 0, 0])  # v has no like: not counted
    assert ndcg_at_k(users, np.array([4, 3, 2, 5, 1, 2, 3]), labels) == pytest.approx(1.0)
    worse = ndcg_at_k(users, np.array([1, 3, 2, 0, 1, 2, 3]), labels)
    assert 0 < worse < 1


def test_metric_table_has_a_row_per_model() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    users = np.array([f"u{i % 10}" for i in range(200)])
    perfect = labels + rng.random(200) * 0.1
    table = metric_table(users, labels, {"perfect": perfect, "noise": rng.random(200)},
                         {"perfect": np.clip(perfect, 0, 1), "noise": np.full(200, 0.5)})  # fmt: skip
    assert table.loc["perfect", "auc"] == 1.0 and table.loc["perfect", "ndcg@20"] == pytest.approx(1.0)
    assert table.loc["noise", "log_loss"] == pytest.approx(np.log(2))


def test_engagement_by_arm() -> None:
    log = pd.DataFrame(
        {"user_id": ["a", "a", "b", "c"], "post_id": ["p", "q", "p", "p"], "liked": [True, False, False, True],
         "model_version": ["formula-v1", "formula-v1", "learned-v1", "learned-v1"]}
    )  # fmt: skip
    table = engagement_by_arm(log)
    assert table.loc["formula-v1", "like_rate"] == 0.5 and table.loc["learned-v1", "users"] == 2


def readers(n_users: int = 40, per_user: int = 25, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    users = np.repeat([f"u{i}" for i in range(n_users)], per_user)
    taste = rng.normal(size=len(users))  # what a good ranker sees
    labels = (rng.random(len(users)) < 1 / (1 + np.exp(-(2 * taste - 1)))).astype(int)
    return users, labels, taste


def test_auc_margin_is_the_difference_of_sklearns_aucs() -> None:
    from sklearn.metrics import roc_auc_score

    users, labels, taste = readers()
    coarse = np.round(taste + np.random.default_rng(1).normal(size=len(taste)), 0)  # many ties
    result = auc_margin(users, labels, taste, coarse, names=("good", "coarse"))
    assert result.margin == pytest.approx(roc_auc_score(labels, taste) - roc_auc_score(labels, coarse))
    assert result.ci_low < result.margin < result.ci_high and result.users == 40
    assert auc_margin(users, labels, taste, coarse, names=("good", "coarse")) == result  # seeded


def test_a_clearly_better_ranker_has_an_interval_above_zero_and_an_equal_one_does_not() -> None:
    users, labels, taste = readers()
    noise = np.random.default_rng(2).random(len(taste))
    assert auc_margin(users, labels, taste, noise).ci_low > 0.1
    same = auc_margin(users, labels, taste, taste.copy())
    assert same.margin == 0 and same.ci_low == same.ci_high == 0
    # two rankers of equal quality (the same signal, independent noise): the interval covers zero
    rng = np.random.default_rng(3)
    equal = auc_margin(users, labels, taste + rng.normal(size=len(taste)), taste + rng.normal(size=len(taste)))
    assert equal.margin != 0 and equal.ci_low < 0 < equal.ci_high


def test_resampling_readers_is_wider_than_resampling_impressions_when_readers_differ() -> None:
    """Impressions of one reader are not independent; the interval must know the unit is the reader."""
    rng = np.random.default_rng(4)
    users = np.repeat([f"u{i}" for i in range(20)], 50)
    reader_effect = np.repeat(rng.normal(scale=2, size=20), 50)  # how much formula misreads each reader
    labels = (rng.random(1000) < 0.3).astype(int)
    good = labels + rng.normal(size=1000)
    bad = labels * (reader_effect > 0) + rng.normal(size=1000)
    by_reader = auc_margin(users, labels, good, bad)
    by_impression = auc_margin(np.arange(1000).astype(str), labels, good, bad)
    assert by_reader.margin == pytest.approx(by_impression.margin)
    assert by_reader.ci_high - by_reader.ci_low > 1.3 * (by_impression.ci_high - by_impression.ci_low)


def test_margin_table_has_a_row_per_model_and_baseline() -> None:
    users, labels, taste = readers()
    scores = {"m": taste, "formula-v1": -taste, "random": np.random.default_rng(5).random(len(taste))}
    table = margin_table(users, labels, scores, ("m",), ("formula-v1", "random"))
    assert list(table.index) == [("m", "formula-v1"), ("m", "random")]
    assert list(table.columns) == ["auc_margin", "ci95_low", "ci95_high"] and (table["ci95_low"] > 0).all()
