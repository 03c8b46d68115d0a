"""The feed's ranker when the model lives in this process (``settings.ranking_read = "in-process"``).

The embedded runtime loads the ranking models once and serves them twice: over HTTP on the ranking
service's port (walkthrough, notebook 06, anything outside the process) and here, called directly
by the feed. Same ``Scorer``, same contract as ``RankingClient``: ``({post_id: score}, version)``,
or ``BackendUnavailable("ranking")`` so the feed falls back to ``ranking:recency`` — which is also
what a learner sees after ``feedlab stop ranking`` (the runtime gates this ranker with the service).

Measured on the small world (``bench/profile_feed.py``): 1.3 ms for a request's candidates here,
11.8 ms through the service, the difference being JSON and a loopback round trip on one core.
"""

from __future__ import annotations

from collections.abc import Sequence

from labcore.errors import BackendUnavailable
from labcore.ranking.formula import Candidate
from labcore.ranking.scorer import Scorer


class InProcessRanker:
    def __init__(self, scorer: Scorer, seed: int = 0) -> None:
        self.scorer = scorer  # swapped whole by the runtime when a notebook changes the model
        self.seed = seed

    def rank(self, user_id: str, candidates: Sequence[Candidate], now: float) -> tuple[dict[str, float], str]:
        """``({post_id: score}, model_version)``; ``BackendUnavailable`` when the model cannot score."""
        try:
            scores, version = self.scorer.score(user_id, candidates, now, self.seed)
        except (TypeError, ValueError) as exc:  # what the service answers with a 422
            raise BackendUnavailable("ranking", f"cannot score these features: {exc}", reason="http_422") from exc
        return {c.post_id: s for c, s in zip(candidates, scores, strict=True)}, version

    def health(self) -> None:
        """Nothing to reach: a loaded model is ready."""

    def close(self) -> None:
        """Nothing to release."""
