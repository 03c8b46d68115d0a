"""formula-v1 and the ranking service's contract."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from labcore.errors import BackendUnavailable
from labcore.ranking.ab_split import AbSplit
from labcore.ranking.formula import (
    WEIGHTS,
    Candidate,
    formula_terms,
    formula_v1,
    jitter,
    recency,
)
from labcore.ranking.in_process import InProcessRanker
from labcore.ranking.models import get_model
from labcore.ranking.scorer import Scorer
from labcore.settings import Settings
from services.ranking.app import create_app, create_app_from_settings

NOW = 1_800_000_000.0


def cand(post_id: str, **features: float | None) -> Candidate:
    return Candidate(post_id, {"created_at": NOW, "like_count": 0, **features})


def test_weights_sum_to_one() -> None:
    assert sum(WEIGHTS.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("age_hours", "expected"), [(0, 1.0), (24, 0.5), (48, 0.25), (-1, 1.0)]  # future clamps to now
)
def test_recency_halves_every_day(age_hours: float, expected: float) -> None:
    assert recency(NOW - age_hours * 3600, NOW) == pytest.approx(expected)


def test_a_post_from_two_seconds_ago_beats_an_equal_older_post() -> None:
    fresh = cand("fresh", created_at=NOW - 2)
    old = cand("old", created_at=NOW - 6 * 3600)
    # Jitter can move a score by at most 0.05; six hours of age costs 0.35 * (1 - 0.5**0.25) ≈ 0.056.
    for user in ("u1", "u2", "u3"):
        s_fresh, s_old = formula_v1(user, [fresh, old], NOW)
        assert s_fresh > s_old


def test_jitter_is_seeded_and_reproducible() -> None:
    assert jitter(0, "u", "p") == jitter(0, "u", "p")
    assert jitter(0, "u", "p") != jitter(1, "u", "p")
    assert 0 <= jitter(0, "u", "p") < 1


def test_missing_features_degrade_as_documented() -> None:
    terms = formula_terms("u", cand("p", avg_engagement_rate=0.4), NOW, 0)
    assert terms["affinity"] == pytest.approx(0.4 / 1.4)  # bounded proxy when affinity is unknown
    terms = formula_terms("u", cand("p", avg_engagement_rate=50.0), NOW, 0)
    assert terms["affinity"] < 1.0  # an unbounded rate never beats real, measured affinity's ceiling
    assert terms["topic_similarity"] == pytest.approx(0.5)  # neutral when similarity is missing
    terms = formula_terms("u", cand("p", affinity_score=0.9, topic_similarity=1.0, has_media=1, like_count=100), NOW, 0)
    assert terms["affinity"] == pytest.approx(0.9)
    assert terms["topic_similarity"] == pytest.approx(1.0)
    assert terms["engagement"] == pytest.approx(1.0)


def test_unknown_model_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown ranking model"):
        get_model("dlrm-v9")


def test_service_scores_candidates_and_reports_version() -> None:
    client = TestClient(create_app("formula-v1"))
    body = {
        "user_id": "u1",
        "now": NOW,
        "candidates": [
            {"post_id": "a", "features": {"created_at": NOW, "like_count": 50, "affinity_score": 0.9}},
            {"post_id": "b", "features": {"created_at": NOW - 86400 * 3, "like_count": 0}},
        ],
    }
    response = client.post("/rank", json=body)
    assert response.status_code == 200
    data = response.json()
    assert data["model_version"] == "formula-v1"
    scores = {s["post_id"]: s["score"] for s in data["scores"]}
    assert scores["a"] > scores["b"]
    assert client.post("/rank", json=body).json() == data  # reproducible
    assert client.post("/rank", json={"user_id": "u1"}).status_code == 422
    assert client.get("/health").json()["model_version"] == "formula-v1"


def constant(user_id: str, candidates: list[Candidate], now: float, seed: int) -> list[float]:
    return [0.5] * len(candidates)


def refuses(user_id: str, candidates: list[Candidate], now: float, seed: int) -> list[float]:
    raise ValueError("expected a feature this model needs")


def test_the_in_process_ranker_answers_what_the_service_answers_for_every_user() -> None:
    # The embedded feed calls the scorer directly; notebook 06 and compose call POST /rank. One
    # scorer behind both: same scores, same arm of the A/B split for each user.
    scorer = Scorer(AbSplit("formula-v1", "constant-v1", 0.5), {"formula-v1": formula_v1, "constant-v1": constant})
    client = TestClient(create_app(scorer=scorer))
    ranker = InProcessRanker(scorer, seed=7)
    features = [{"created_at": NOW - i * 3600, "like_count": i, "affinity_score": 0.1 * i} for i in range(5)]
    versions = set()
    for user in (f"u{i}" for i in range(20)):
        body = {"user_id": user, "now": NOW, "seed": 7,
                "candidates": [{"post_id": f"p{i}", "features": f} for i, f in enumerate(features)]}  # fmt: skip
        served = client.post("/rank", json=body).json()
        scores, version = ranker.rank(user, [Candidate(f"p{i}", f) for i, f in enumerate(features)], NOW)
        assert version == served["model_version"] == scorer.split.arm(user)
        assert scores == {s["post_id"]: s["score"] for s in served["scores"]}
        versions.add(version)
    assert versions == {"formula-v1", "constant-v1"}  # both arms were exercised
    assert client.get("/health").json() == {
        "status": "ok", "model_version": "formula-v1", "treatment": "constant-v1", "treatment_share": 0.5,
    }  # fmt: skip


def test_a_model_that_cannot_score_is_a_422_from_the_service_and_unavailable_in_process() -> None:
    scorer = Scorer(AbSplit("refuses-v1"), {"refuses-v1": refuses})
    body = {"user_id": "u1", "now": NOW, "candidates": [{"post_id": "a", "features": {}}]}
    response = TestClient(create_app(scorer=scorer)).post("/rank", json=body)
    assert response.status_code == 422 and "expected a feature" in response.json()["detail"]
    with pytest.raises(BackendUnavailable) as caught:
        InProcessRanker(scorer).rank("u1", [Candidate("a", {})], NOW)
    assert (caught.value.component, caught.value.reason) == ("ranking", "http_422")  # as the service would say


def test_a_scorer_needs_a_model_for_every_version_its_split_serves() -> None:
    with pytest.raises(ValueError, match="constant-v1"):
        Scorer(AbSplit("formula-v1", "constant-v1"), {"formula-v1": formula_v1})


@pytest.mark.parametrize(("profile", "expected"), [("embedded", "in-process"), ("compose", "server")])
def test_the_feed_calls_the_model_in_process_only_where_the_profile_owns_it(profile: str, expected: str) -> None:
    assert Settings(profile=profile).resolved_ranking_read() == expected
    assert Settings(profile=profile, ranking_read="server").resolved_ranking_read() == "server"


def test_the_service_from_settings_serves_their_split_and_refuses_an_unknown_model(tmp_path: Path) -> None:
    client = TestClient(create_app_from_settings(Settings(data_dir=tmp_path)))
    assert client.get("/health").json()["model_version"] == "formula-v1"
    with pytest.raises(SystemExit, match="unknown ranking model 'dlrm-v9'"):
        create_app_from_settings(Settings(data_dir=tmp_path, ranking_model="dlrm-v9"))
