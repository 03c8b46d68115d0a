"""Offline metrics for rankers on held-out impressions, and online engagement per A/B arm.

* **AUC** — how often a liked impression outscores an unliked one (0.5 = random). Needs only the
  order, so it compares a formula and a probability model fairly.
* **log-loss** — how good the scores are *as probabilities*. ``formula-v1`` does not claim to be a
  probability, so its log-loss is measured after Platt scaling fitted on the training split (a
  one-feature logistic regression: the best the formula's order can do as a probability).
* **NDCG@20 per user** — the feed is a ranking per user: sort each user's held-out impressions by
  score, discount each like by its position (1 / log2(rank + 1)), divide by the best possible order;
  averaged over users with at least one like.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd


def ndcg_at_k(users: np.ndarray, scores: np.ndarray, labels: np.ndarray, k: int = 20) -> float:
    """Mean NDCG@k over users that have at least one positive (NaN if none has)."""
    frame = pd.DataFrame({"user": users, "score": scores, "label": labels})
    values = []
    for _, group in frame.groupby("user", sort=False):
        if group["label"].sum() == 0:
            continue  # nothing to rank well: NDCG is undefined
        gains = group.sort_values("score", ascending=False, kind="stable")["label"].to_numpy()[:k]
        ideal = np.sort(group["label"].to_numpy())[::-1][:k]
        discounts = 1 / np.log2(np.arange(2, len(gains) + 2))
        values.append(float(gains @ discounts[: len(gains)]) / float(ideal @ discounts[: len(ideal)]))
    return float(np.mean(values)) if values else math.nan


def metric_row(users: np.ndarray, labels: np.ndarray, scores: np.ndarray, probabilities: np.ndarray) -> dict:
    from sklearn.metrics import log_loss, roc_auc_score

    clipped = np.clip(probabilities, 1e-6, 1 - 1e-6)
    return {
        "auc": float(roc_auc_score(labels, scores)),
        "log_loss": float(log_loss(labels, clipped, labels=[0, 1])),
        "ndcg@20": ndcg_at_k(users, scores, labels, 20),
    }


def metric_table(
    users: np.ndarray,
    labels: np.ndarray,
    scores: Mapping[str, np.ndarray],
    probabilities: Mapping[str, np.ndarray],
) -> pd.DataFrame:
    """One row per model: AUC, log-loss and NDCG@20 on the same held-out impressions."""
    rows = {name: metric_row(users, labels, scores[name], probabilities[name]) for name in scores}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model")


def engagement_by_arm(log: pd.DataFrame) -> pd.DataFrame:
    """Online result of an A/B run: impressions, likes and like rate per impression per arm,
    with a 95 % confidence interval (normal approximation to the binomial)."""
    grouped = log.groupby("model_version").agg(
        users=("user_id", "nunique"), impressions=("post_id", "size"), likes=("liked", "sum")
    )
    rate = grouped["likes"] / grouped["impressions"]
    half = 1.96 * np.sqrt(rate * (1 - rate) / grouped["impressions"])
    return grouped.assign(like_rate=rate, ci95_low=rate - half, ci95_high=rate + half).rename_axis("arm")
