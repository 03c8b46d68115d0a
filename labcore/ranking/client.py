"""The feed's client for the ranking service: features in, scores and model version out."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from labcore.errors import BackendUnavailable
from labcore.observability import tracing
from labcore.ranking.formula import Candidate


class RankingClient:
    def __init__(self, url: str, timeout: float = 0.5, seed: int = 0) -> None:
        self.url = url.rstrip("/")
        self.seed = seed
        self._http = httpx.Client(timeout=timeout)

    def rank(self, user_id: str, candidates: Sequence[Candidate], now: float) -> tuple[dict[str, float], str]:
        """``({post_id: score}, model_version)``; ``BackendUnavailable`` (with the reason) when the service
        cannot answer."""
        body = {
            "user_id": user_id,
            "now": now,
            "seed": self.seed,
            "candidates": [{"post_id": c.post_id, "features": dict(c.features)} for c in candidates],
        }
        try:
            # The service continues this trace: its spans nest under stage3_ranking.
            response = self._http.post(f"{self.url}/rank", json=body, headers=tracing.inject())
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise BackendUnavailable("ranking", f"{self.url}: {exc}", reason=_reason(exc)) from exc
        data = response.json()
        return {s["post_id"]: s["score"] for s in data["scores"]}, data["model_version"]

    def health(self) -> None:
        try:
            self._http.get(f"{self.url}/health").raise_for_status()
        except httpx.HTTPError as exc:
            raise BackendUnavailable("ranking", f"{self.url}: {exc}") from exc

    def close(self) -> None:
        self._http.close()


def _reason(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"http_{exc.response.status_code}"
    return "unreachable"
