"""Train rankers on labelled impressions and compare them with ``formula-v1`` on a held-out time split.

The split is by *time*, not at random: the model is trained on the earlier impressions and judged on
the later ones, as it will be used — a random split would let it learn from the future of the very
sessions it is tested on. Half and half by default: ten inputs are learned from a few hundred rows,
while the verdict — AUC(learned) − AUC(formula-v1) with a paired bootstrap interval over users
(``labcore.ranking.learned.evaluation.auc_margin``) — narrows with every held-out impression.

Two scikit-learn models, both small enough for a laptop and both producing probabilities:

* ``logistic-regression`` — median imputation (plus missing-value indicators), standardization, an
  L2-regularized linear model: a learned version of the formula's weighted sum;
* ``gradient-boosting`` — ``HistGradientBoostingClassifier``: trees capture interactions the formula
  cannot (a like count matters more for a post on a topic the reader likes), and handle missing
  values natively.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from labcore.ranking.formula import Candidate, formula_v1
from labcore.ranking.learned.dataset import FEATURE_COLUMNS
from labcore.ranking.learned.evaluation import margin_table, metric_table
from labcore.ranking.learned.ranker import INPUTS, LearnedRanker, input_matrix

FORMULA = "formula-v1"
RANDOM = "random"
LEARNED = ("logistic-regression", "gradient-boosting")


@dataclass(frozen=True)
class TimeSplit:
    train: pd.DataFrame
    test: pd.DataFrame
    split_at: pd.Timestamp


TEST_SHARE = 0.5


def time_split(rows: pd.DataFrame, test_share: float = TEST_SHARE) -> TimeSplit:
    """The earliest ``1 - test_share`` of impressions to train on, the rest to test on."""
    ordered = rows.sort_values("event_timestamp", kind="stable").reset_index(drop=True)
    cut = int(len(ordered) * (1 - test_share))
    if cut == 0 or cut == len(ordered):
        raise ValueError(f"{len(ordered)} impressions are too few to split")
    split_at = ordered["event_timestamp"].iloc[cut]
    train, test = ordered[ordered["event_timestamp"] < split_at], ordered[ordered["event_timestamp"] >= split_at]
    for name, part in (("training", train), ("test", test)):
        if part["label"].nunique() < 2:
            raise ValueError(f"the {name} split has only one class ({len(part)} rows): simulate more sessions")
    return TimeSplit(train, test, split_at)


def _features(row: dict[str, Any]) -> dict[str, float | None]:
    """A training row as the flat feature mapping the feed sends to ``/rank`` (NaN → None)."""
    values = {name: row[name] for name in (*FEATURE_COLUMNS, "topic_similarity")}
    return {k: None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v) for k, v in values.items()}


def _epochs(rows: pd.DataFrame) -> np.ndarray:
    return rows["event_timestamp"].map(lambda t: t.timestamp()).to_numpy(dtype=float)


def inputs_of(rows: pd.DataFrame) -> np.ndarray:
    """The model inputs of training rows — the same ``input_matrix`` the ranking service uses."""
    return input_matrix([_features(r) for r in rows.to_dict("records")], list(_epochs(rows)))


def formula_scores(rows: pd.DataFrame, seed: int = 0) -> np.ndarray:
    """``formula-v1``'s score for each row, at the row's impression time."""
    records, times = rows.to_dict("records"), _epochs(rows)
    return np.array(
        [
            formula_v1(r["user_id"], [Candidate(r["post_id"], _features(r))], float(t), seed)[0]
            for r, t in zip(records, times, strict=True)
        ]
    )


def estimators(seed: int) -> dict[str, Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "logistic-regression": make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            StandardScaler(),
            LogisticRegression(C=1.0, max_iter=1000),
        ),
        "gradient-boosting": HistGradientBoostingClassifier(
            max_iter=150, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=20,
            l2_regularization=1.0, random_state=seed,
        ),  # fmt: skip
    }


@dataclass
class TrainingResult:
    split: TimeSplit
    models: dict[str, Any]  # fitted estimators by name
    table: pd.DataFrame  # metrics on the test split, one row per model (formula-v1 and random included)
    test_probabilities: dict[str, np.ndarray]
    seed: int
    # AUC(learned) − AUC(formula-v1 / random) with paired bootstrap 95 % intervals, by (model, vs)
    margins: pd.DataFrame
    best: str = field(init=False)

    def __post_init__(self) -> None:
        self.best = max(LEARNED, key=lambda name: self.table.loc[name, "auc"])

    def ranker(self, version: str, name: str | None = None) -> LearnedRanker:
        return LearnedRanker(version, self.models[name or self.best])

    def importance(self, name: str | None = None, repeats: int = 5) -> pd.Series:
        """Permutation importance on the test split: how much AUC drops when one input is shuffled."""
        from sklearn.inspection import permutation_importance

        result = permutation_importance(
            self.models[name or self.best], inputs_of(self.split.test), self.split.test["label"].to_numpy(),
            scoring="roc_auc", n_repeats=repeats, random_state=self.seed,
        )  # fmt: skip
        return pd.Series(result.importances_mean, index=list(INPUTS), name="auc_drop").sort_values()

    def meta(self, name: str | None = None) -> dict[str, Any]:
        """What the registry records next to the model."""
        name = name or self.best
        train, test = self.split.train, self.split.test
        return {
            "estimator": name,
            "inputs": list(INPUTS),
            "feature_services": ["ranking_features", "affinity_features"],
            "request_features": ["topic_similarity"],
            "training_window": {
                "start": train["event_timestamp"].min().isoformat(),
                "end": train["event_timestamp"].max().isoformat(),
            },
            "test_window": {
                "start": test["event_timestamp"].min().isoformat(),
                "end": test["event_timestamp"].max().isoformat(),
            },
            "rows": {"train": len(train), "test": len(test)},
            "positive_rate": {"train": float(train["label"].mean()), "test": float(test["label"].mean())},
            "metrics": {  # NaN (e.g. NDCG with no like in the test split) is not JSON: null
                model: {k: None if pd.isna(v) else float(v) for k, v in values.items()}
                for model, values in self.table.round(4).to_dict(orient="index").items()
            },
            "auc_margins": [  # AUC(model) − AUC(vs) with its paired bootstrap 95 % interval over users
                {"model": model, "vs": vs, **{k: round(float(v), 4) for k, v in values.items()}}
                for (model, vs), values in self.margins.to_dict(orient="index").items()
            ],
            "seed": self.seed,
            "sklearn_version": _sklearn_version(),
            "created_at": datetime.now(UTC).isoformat(),
        }


def train(rows: pd.DataFrame, *, seed: int = 42, test_share: float = TEST_SHARE) -> TrainingResult:
    """Fit both models on the earlier impressions; score them, ``formula-v1`` and a random ranker
    on the later ones."""
    from sklearn.linear_model import LogisticRegression

    split = time_split(rows, test_share)
    x_train, y_train = inputs_of(split.train), split.train["label"].to_numpy()
    x_test, y_test = inputs_of(split.test), split.test["label"].to_numpy()
    models = {name: model.fit(x_train, y_train) for name, model in estimators(seed).items()}

    scores = {name: model.predict_proba(x_test)[:, 1] for name, model in models.items()}
    probabilities = dict(scores)
    # formula-v1: its own order; as probabilities after Platt scaling fitted on the training split
    platt = LogisticRegression().fit(formula_scores(split.train, seed).reshape(-1, 1), y_train)
    scores[FORMULA] = formula_scores(split.test, seed)
    probabilities[FORMULA] = platt.predict_proba(scores[FORMULA].reshape(-1, 1))[:, 1]
    # random: a seeded shuffle, and the training base rate as its probability
    rng = random.Random(seed)
    scores[RANDOM] = np.array([rng.random() for _ in range(len(y_test))])
    probabilities[RANDOM] = np.full(len(y_test), y_train.mean())

    users = split.test["user_id"].to_numpy()
    table = metric_table(users, y_test, scores, probabilities)
    margins = margin_table(users, y_test, scores, LEARNED, (FORMULA, RANDOM), seed=seed)
    return TrainingResult(split, models, table, probabilities, seed, margins)


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__
