"""The ranking service (port 8001): ``POST /rank`` scores candidates with a versioned model.

It stands where Triton would stand in production; the contract — user plus per-candidate features in,
scores plus the model version out — is what matters, so a learned model can replace ``formula-v1``
without the feed changing.
"""

from __future__ import annotations

import time

from fastapi import FastAPI, HTTPException
from opentelemetry import trace
from pydantic import BaseModel, ConfigDict, Field

from labcore import metrics
from labcore.ranking import Candidate, get_model
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


def create_app(model_version: str = "formula-v1") -> FastAPI:
    try:
        model = get_model(model_version)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    app = FastAPI(title="Social Feed Lab ranking", version="0.1.0", telemetry=FASTAPI_TELEMETRY)

    @app.post("/rank", response_model=RankResponse)
    def rank(body: RankRequest) -> RankResponse:
        candidates = [Candidate(c.post_id, c.features) for c in body.candidates]
        started = time.perf_counter()
        with tracer.start_as_current_span("score", attributes={"model": model_version, "candidates": len(candidates)}):
            try:
                scores = model(body.user_id, candidates, body.now or time.time(), body.seed)
            except (TypeError, ValueError) as exc:
                raise HTTPException(422, f"cannot score these features: {exc}") from exc
        metrics.RANKING_LATENCY.labels(model_version).observe(time.perf_counter() - started)
        return RankResponse(
            model_version=model_version,
            scores=[Score(post_id=c.post_id, score=s) for c, s in zip(candidates, scores, strict=True)],
        )

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "model_version": model_version}

    instrument(app)
    return app
