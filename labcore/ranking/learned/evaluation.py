"""Offline metrics for rankers on held-out impressions, and online engagement per A/B arm.

* **AUC** — how often a liked impression outscores an unliked one (0.5 = random). Needs only the
  order, so it compares a formula and a probability model fairly.
* **log-loss** — how good the scores are *as probabilities*. ``formula-v1`` does not claim to be a
  probability, so its log-loss is measured after Platt scaling fitted on the training split (a
  one-feature logistic regression: the best the formula's order can do as a probability).
* **NDCG@20 per user** — the feed is a ranking per user: sort each user's held-out impressions by
  score, discount each like by its position (1 / log2(rank + 1)), divide by the best possible order;
  averaged over users with at least one like.
* **AUC margin with a confidence interval** — ``auc_margin``: AUC(a) − AUC(b) on the same held-out
  impressions, with a 95 % *paired* bootstrap interval whose resampling unit is the **user** (all of
  a reader's impressions are drawn together, since they share that reader's taste and are not
  independent). "a beats b" is then a statement about the interval's lower bound, not a fixed bar
  that a noisy test split crosses only most of the time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

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


def _weighted_auc(order: np.ndarray, groups: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC for each row of ``weights`` (resamples × impressions), ties counting one half.

    ``order`` sorts the impressions by score and ``groups`` numbers the tie groups in that order; an
    impression drawn k times weighs k, so one sort serves every bootstrap resample.
    """
    y = labels[order].astype(bool)
    w = weights[:, order]
    pos, neg = np.where(y, w, 0.0), np.where(y, 0.0, w)
    n_groups = int(groups[-1]) + 1
    pos_g = np.zeros((len(w), n_groups))
    neg_g = np.zeros((len(w), n_groups))
    np.add.at(pos_g.T, groups, pos.T)
    np.add.at(neg_g.T, groups, neg.T)
    neg_below = np.cumsum(neg_g, axis=1) - neg_g
    wins = (pos_g * (neg_below + 0.5 * neg_g)).sum(axis=1)
    pairs = pos_g.sum(axis=1) * neg_g.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, wins / pairs, np.nan)


def _auc_fn(scores: np.ndarray, labels: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """AUC as a function of resample weights, sorting ``scores`` once."""
    order = np.argsort(scores, kind="stable")
    ranked = scores[order]
    groups = np.concatenate([[0], np.cumsum(ranked[1:] != ranked[:-1])])
    return lambda weights: _weighted_auc(order, groups, labels, weights)


@dataclass(frozen=True)
class AucMargin:
    """AUC(a) − AUC(b) on the same impressions, with a paired bootstrap 95 % interval."""

    a: str
    b: str
    margin: float
    ci_low: float
    ci_high: float
    resamples: int
    users: int

    def as_dict(self) -> dict[str, float | int | str]:
        return {"vs": self.b, "auc_margin": self.margin, "ci95_low": self.ci_low, "ci95_high": self.ci_high}


def auc_margin(
    users: np.ndarray,
    labels: np.ndarray,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    *,
    names: tuple[str, str] = ("a", "b"),
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> AucMargin:
    """AUC(``scores_a``) − AUC(``scores_b``) with a percentile interval from a paired bootstrap over users.

    Each resample draws as many users as there are, with replacement, and takes all impressions of
    each drawn user (as often as drawn) for *both* rankers — paired, so the noise the two share (an
    easy or hard test split) cancels out of the difference. Seeded: the same inputs give the same
    interval.
    """
    users, labels = np.asarray(users), np.asarray(labels).astype(int)
    scores_a, scores_b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    unique, index = np.unique(users, return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(len(unique), np.full(len(unique), 1 / len(unique)), size=resamples)
    weights = draws[:, index].astype(float)  # each impression weighs as often as its user was drawn
    auc_a, auc_b = _auc_fn(scores_a, labels), _auc_fn(scores_b, labels)
    full = np.ones((1, len(labels)))
    margin = float(auc_a(full)[0] - auc_b(full)[0])
    diffs = np.concatenate(
        [auc_a(weights[i : i + 250]) - auc_b(weights[i : i + 250]) for i in range(0, resamples, 250)]
    )
    diffs = diffs[~np.isnan(diffs)]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return AucMargin(names[0], names[1], margin, float(low), float(high), len(diffs), len(unique))


def margin_table(
    users: np.ndarray,
    labels: np.ndarray,
    scores: Mapping[str, np.ndarray],
    models: tuple[str, ...],
    baselines: tuple[str, ...],
    *,
    resamples: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """``auc_margin`` of each of ``models`` over each of ``baselines``: one row per pair, indexed by
    (model, vs), columns ``auc_margin, ci95_low, ci95_high``. Every pair uses the same resamples."""
    rows = {
        (model, baseline): auc_margin(
            users, labels, scores[model], scores[baseline], names=(model, baseline), resamples=resamples, seed=seed
        ).as_dict()
        for model in models
        for baseline in baselines
    }
    frame = pd.DataFrame.from_dict(rows, orient="index").drop(columns="vs")
    frame.index = pd.MultiIndex.from_tuples(frame.index, names=["model", "vs"])
    return frame
