"""What a learned model sees of a candidate, and the callable the ranking service runs.

``model_inputs`` turns one candidate's features — the flat mapping the feed sends to ``POST /rank``,
or a training row joined from Feast in the same names — into the model's input vector. Training and
serving call this one function, so they cannot drift apart (the classic train/serve skew). A value
that is missing stays ``NaN``: gradient boosting handles it natively and the logistic regression's
pipeline imputes it, rather than this code inventing a number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from labcore.ranking.formula import Candidate, recency

# The inputs, in order. Counts are log1p'd: the tenth like says less than the first.
INPUTS: tuple[str, ...] = (
    "recency",  # 0.5 ** (age_hours / 24), as formula-v1
    "log_age_hours",
    "log_like_count",
    "has_media",
    "log_author_followers",
    "affinity_score",  # reader → author, from likes and follows
    "log_interaction_count",
    "topic_similarity",  # cosine(interest vector, post embedding), a request-time feature
    "reader_engagement_rate",  # likes the reader's own posts get, per post
    "log_reader_following",
)


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _log1p(value: Any) -> float:
    number = _number(value)
    return math.log1p(max(0.0, number)) if not math.isnan(number) else math.nan


def model_inputs(features: Mapping[str, Any], now: float) -> list[float]:
    """The input vector (``INPUTS`` order) for one candidate scored at ``now`` (epoch seconds)."""
    created_at = features.get("created_at")
    age_hours = math.nan if created_at is None else max(0.0, now - float(created_at)) / 3600
    return [
        math.nan if created_at is None else recency(float(created_at), now),
        math.log1p(age_hours) if not math.isnan(age_hours) else math.nan,
        _log1p(features.get("like_count")),
        _number(features.get("has_media")),
        _log1p(features.get("author_follower_count")),
        _number(features.get("affinity_score")),
        _log1p(features.get("interaction_count") or 0),
        _number(features.get("topic_similarity")),
        _number(features.get("avg_engagement_rate")),
        _log1p(features.get("following_count")),
    ]


def input_matrix(rows: Sequence[Mapping[str, Any]], now: Sequence[float]) -> np.ndarray:
    """``model_inputs`` for many candidates at once: a (rows × inputs) float matrix."""
    return np.array([model_inputs(r, t) for r, t in zip(rows, now, strict=True)], dtype=float).reshape(
        len(rows), len(INPUTS)
    )


class LearnedRanker:
    """A fitted scikit-learn classifier behind the ranking model interface.

    ``ranker(user_id, candidates, now, seed)`` → one pClick per candidate, like ``formula_v1``. The
    registry pickles this object; ``inputs`` records the input names it was trained on, so a model
    trained before ``INPUTS`` changed is refused at load instead of silently mis-scored.
    """

    def __init__(self, version: str, estimator: Any, inputs: Sequence[str] = INPUTS) -> None:
        self.version = version
        self.estimator = estimator
        self.inputs = tuple(inputs)

    def __call__(self, user_id: str, candidates: Sequence[Candidate], now: float, seed: int = 0) -> list[float]:
        if not candidates:
            return []
        matrix = input_matrix([c.features for c in candidates], [now] * len(candidates))
        return [float(p) for p in self.estimator.predict_proba(matrix)[:, 1]]

    def __repr__(self) -> str:
        return f"LearnedRanker({self.version!r}, {type(self.estimator).__name__})"
