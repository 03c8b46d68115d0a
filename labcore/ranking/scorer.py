"""Scoring one request: the user's A/B arm, that version's model, a ``score`` span and the latency metric.

Both ways the feed reaches a model run this code: the ranking service's ``POST /rank``
(``services/ranking``, the compose profile's path and the one notebook 06 calls by hand) and the
embedded runtime's in-process ranker (``labcore.ranking.in_process``), which skips the HTTP + JSON hop
on the feed's hot path. One scorer, so the two cannot disagree on a score or on a user's arm.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from opentelemetry import trace

from labcore.observability import metrics
from labcore.ranking.ab_split import AbSplit
from labcore.ranking.formula import Candidate
from labcore.ranking.models import Model, get_model

if TYPE_CHECKING:
    from labcore.settings import Settings

tracer = trace.get_tracer(__name__)


class Scorer:
    """The models of one A/B split, loaded; ``score`` answers one request."""

    def __init__(self, split: AbSplit, models: Mapping[str, Model]) -> None:
        missing = set(split.versions) - set(models)
        if missing:
            raise ValueError(f"the split serves {sorted(missing)} but no model was loaded for it")
        self.split = split
        self.models = dict(models)
        for version in self.models:  # ranking_latency_seconds{model} at zero before the first score
            metrics.RANKING_LATENCY.labels(version)

    @classmethod
    def load(cls, split: AbSplit, models_dir: Path | None = None) -> Scorer:
        """The split's versions from the built-ins and the registry; ``ValueError`` for an unknown one."""
        return cls(split, {version: get_model(version, models_dir) for version in split.versions})

    @classmethod
    def from_settings(cls, settings: Settings) -> Scorer:
        """The split the settings describe (``ranking_model``, ``ranking_treatment``, ``..._share``), loaded
        from ``models_dir``; ``ValueError`` for an unknown version."""
        split = AbSplit(settings.ranking_model, settings.ranking_treatment, settings.ranking_treatment_share)
        return cls.load(split, settings.models_dir)

    def score(self, user_id: str, candidates: Sequence[Candidate], now: float, seed: int = 0) -> tuple[list[float], str]:
        """``(scores in candidate order, the version that scored them)``. A model that cannot use
        these features raises ``TypeError``/``ValueError`` (the service answers 422)."""
        version = self.split.arm(user_id)
        started = time.perf_counter()
        with tracer.start_as_current_span("score", attributes={"model": version, "candidates": len(candidates)}):
            scores = self.models[version](user_id, candidates, now, seed)
        metrics.RANKING_LATENCY.labels(version).observe(time.perf_counter() - started)
        return [float(s) for s in scores], version
