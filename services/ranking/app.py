"""The ranking service (port 8001): ``POST /rank`` scores candidates with a versioned model.

It stands where Triton would stand in production; the contract — user plus per-candidate features in,
scores plus the model version out — is what matters, so a learned model can replace ``formula-v1``
without the feed changing.

The version is ``formula-v1`` or one registered under ``<data_dir>/models`` (``FEEDLAB_RANKING_MODEL``);
an unknown one stops the service at start, loudly, instead of serving a fallback. With
``FEEDLAB_RANKING_TREATMENT`` the service runs an A/B test: a share of users, chosen by a hash of
their id (``labcore.ranking.ab_split``), is scored by the treatment, and every answer names the version that
scored it — which is how the feed, its response and the simulator know each user's arm.
"""

from __future__ import annotations

import time
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field

from labcore.ranking.ab_split import AbSplit
from labcore.ranking.formula import Candidate
from labcore.ranking.scorer import Scorer
from labcore.settings import Settings
from services.http_telemetry import FASTAPI_TELEMETRY, instrument


class CandidateIn(BaseModel):
    post_id: str = Field(min_length=1, max_length=64)
    features: dict[str, float | None] = Field(default_factory=dict)


class RankRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=64)
    candidates: list[CandidateIn] = Field(max_length=2000)
    now: float | None = Field(default=None, description="epoch seconds recency is measured from")
    seed: int = 0


class Score(BaseModel):
    post_id: str
    score: float


class RankResponse(BaseModel):
    model_version: str
    scores: list[Score]


def create_app(
    model_version: str = "formula-v1",
    *,
    treatment: str | None = None,
    treatment_share: float = 0.5,
    models_dir: Path | None = None,
    scorer: Scorer | None = None,
) -> FastAPI:
    """The service for ``model_version`` (and, with ``treatment``, an A/B split between the two).

    ``scorer`` may pass the split already loaded (the embedded runtime shares its scorer with the feed's
    in-process ranker); otherwise the versions are loaded here and an unknown one exits: a service must
    not start with a model it cannot serve.
    """
    if scorer is None:
        split = AbSplit(model_version, treatment, treatment_share)
        try:
            scorer = Scorer.load(split, models_dir)
        except ValueError as exc:
            raise SystemExit(str(exc)) from exc
    split = scorer.split
    # /docs with Swagger UI's files from the installed fastapi-offline package, not a CDN (offline laptops)
    app = FastAPIOffline(title="Social Feed Lab ranking", version="0.1.0", telemetry=FASTAPI_TELEMETRY)

    @app.post("/rank", response_model=RankResponse)
    def rank(body: RankRequest) -> RankResponse:
        candidates = [Candidate(c.post_id, c.features) for c in body.candidates]
        try:
            scores, version = scorer.score(body.user_id, candidates, body.now or time.time(), body.seed)
        except (TypeError, ValueError) as exc:
            raise HTTPException(422, f"cannot score these features: {exc}") from exc
        return RankResponse(
            model_version=version,
            scores=[Score(post_id=c.post_id, score=s) for c, s in zip(candidates, scores, strict=True)],
        )

    @app.get("/health")
    def health() -> dict[str, str | float | None]:
        return {
            "status": "ok",
            "model_version": split.control,
            "treatment": split.treatment,
            "treatment_share": split.share if split.treatment else None,
        }

    instrument(app)
    return app


def create_app_from_settings(settings: Settings) -> FastAPI:
    """The service as the settings describe it (``FEEDLAB_RANKING_MODEL``, ``..._TREATMENT``, ``..._SHARE``)."""
    return create_app(
        settings.ranking_model,
        treatment=settings.ranking_treatment,
        treatment_share=settings.ranking_treatment_share,
        models_dir=settings.models_dir,
    )
