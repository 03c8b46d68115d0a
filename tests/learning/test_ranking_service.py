"""The ranking service loads a registered model and scores with it behind the same ``POST /rank``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from labcore.ranking.ab_split import AbSplit
from labcore.ranking.learned.ranker import INPUTS, LearnedRanker
from labcore.ranking.learned.registry import ModelRegistry
from labcore.ranking.learned.training import estimators
from labcore.ranking.models import get_model
from services.ranking.app import create_app

NOW = 1_760_000_000.0


def fitted(seed: int = 0) -> Any:
    """The training pipeline (imputation + logistic regression), fitted on synthetic inputs where
    likes and affinity mean engagement."""
    rng = np.random.default_rng(seed)
    x = rng.random((400, len(INPUTS)))
    y = (x[:, INPUTS.index("affinity_score")] + x[:, INPUTS.index("log_like_count")] > 1).astype(int)
    x[rng.random(x.shape) < 0.1] = np.nan  # some values unknown, as online
    return estimators(seed)["logistic-regression"].fit(x, y)


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    registry = ModelRegistry(tmp_path / "models")
    registry.register(LearnedRanker("learned-v1", fitted()), {"estimator": "logistic-regression"})
    return registry.root


BODY = {
    "user_id": "u1",
    "now": NOW,
    "candidates": [
        {"post_id": "loved", "features": {"created_at": NOW - 600, "like_count": 80, "affinity_score": 0.9,
                                          "topic_similarity": 0.8, "has_media": 1}},
        {"post_id": "meh", "features": {"created_at": NOW - 86400, "like_count": 0, "affinity_score": 0.0}},
        {"post_id": "bare", "features": {}},  # nothing known: still scored (missing values are NaN)
    ],
}  # fmt: skip


def test_service_scores_with_a_registered_model(models_dir: Path) -> None:
    client = TestClient(create_app("learned-v1", models_dir=models_dir))
    data = client.post("/rank", json=BODY).json()
    assert data["model_version"] == "learned-v1"
    scores = {s["post_id"]: s["score"] for s in data["scores"]}
    assert all(0 <= s <= 1 for s in scores.values())
    assert scores["loved"] > scores["meh"]
    assert client.get("/health").json()["model_version"] == "learned-v1"


def test_unknown_version_stops_the_service_at_start(models_dir: Path) -> None:
    with pytest.raises(SystemExit, match="unknown ranking model 'learned-v9'.*learned-v1"):
        create_app("learned-v9", models_dir=models_dir)


def test_ab_split_in_the_service_names_each_users_arm(models_dir: Path) -> None:
    client = TestClient(create_app("formula-v1", treatment="learned-v1", treatment_share=0.5, models_dir=models_dir))
    split = AbSplit("formula-v1", "learned-v1", 0.5)
    arms = {}
    for i in range(40):
        user = f"user-{i}"
        arms[user] = client.post("/rank", json=BODY | {"user_id": user}).json()["model_version"]
        assert arms[user] == split.arm(user)
        assert client.post("/rank", json=BODY | {"user_id": user}).json()["model_version"] == arms[user]
    assert set(arms.values()) == {"formula-v1", "learned-v1"}


def test_registry_versions_are_immutable_and_checked(models_dir: Path) -> None:
    registry = ModelRegistry(models_dir)
    assert registry.versions() == ["learned-v1"] and registry.next_version() == "learned-v2"
    assert registry.meta("learned-v1")["estimator"] == "logistic-regression"
    with pytest.raises(ValueError, match="immutable"):
        registry.register(LearnedRanker("learned-v1", fitted(1)), {})
    with pytest.raises(ValueError, match="not a usable"):
        registry.register(LearnedRanker("formula-v1", fitted(1)), {})
    stale = LearnedRanker("learned-v2", fitted(), inputs=("recency", "like_count"))
    registry.register(stale, {})
    with pytest.raises(ValueError, match="retrain"):
        get_model("learned-v2", models_dir)
