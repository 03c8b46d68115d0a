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
from collections.abc import Mapping
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi_offline import FastAPIOffline
from opentelemetry import trace
from pydantic import BaseModel, ConfigDict, Field

from labcore.observability import metrics
from labcore.ranking.ab_split import AbSplit
from labcore.ranking.formula import Candidate
from labcore.ranking.models import Model, get_model
from labcore.settings import Settings
from services.http_telemetry import FASTAPI_TELEMETRY, instrument

tracer = trace.get_tracer(__name__)


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


def load_models(split: AbSplit, models_dir: Path | None = None) -> dict[str, Model]:
    """Every version the split serves, loaded; ``ValueError`` for an unknown one."""
    return {version: get_model(version, models_dir) for version in split.versions}


def create_app(
    model_version: str = "formula-v1",
    *,
    treatment: str | None = None,
    treatment_share: float = 0.5,
    models_dir: Path | None = None,
    models: Mapping[str, Model] | None = None,
) -> FastAPI:
    """The service for ``model_version`` (and, with ``treatment``, an A/B split between the two).

    ``models`` may pass the versions already loaded (``load_models``); otherwise they are loaded
    here and an unknown version exits: a service must not start with a model it cannot serve.
    """
    split = AbSplit(model_version, treatment, treatment_share)
    if models is None:
        try:
            models = load_models(split, models_dir)
        except ValueError as exc:
            raise SystemExit(str(exc)) from exc
    for version in models:  # ranking_latency_seconds{model} at zero before the first /rank
        metrics.RANKING_LATENCY.labels(version)
    # /docs with Swagger UI's files from the installed fastapi-offline package, not a CDN (offline laptops)
    app = FastAPIOffline(title="Social Feed Lab ranking", version="0.1.0", telemetry=FASTAPI_TELEMETRY)

    @app.post("/rank", response_model=RankResponse)
    def rank(body: RankRequest) -> RankResponse:
        candidates = [Candidate(c.post_id, c.features) for c in body.candidates]
        version = split.arm(body.user_id)
        started = time.perf_counter()
        with tracer.start_as_current_span("score", attributes={"model": version, "candidates": len(candidates)}):
            try:
                scores = models[version](body.user_id, candidates, body.now or time.time(), body.seed)
            except (TypeError, ValueError) as exc:
                raise HTTPException(422, f"cannot score these features: {exc}") from exc
        metrics.RANKING_LATENCY.labels(version).observe(time.perf_counter() - started)
        return RankResponse(
            model_version=version,
            scores=[Score(post_id=c.post_id, score=float(s)) for c, s in zip(candidates, scores, strict=True)],
        )

    @app.get("/health")
    def health() -> dict[str, str | float | None]:
        return {
            "status": "ok",
            "model_version": model_version,
            "treatment": treatment,
            "treatment_share": treatment_share if treatment else None,
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
