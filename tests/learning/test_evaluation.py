"""Offline metrics: NDCG@k per user, engagement per arm."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labcore.ranking.learned.evaluation import engagement_by_arm, metric_table, ndcg_at_k


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
