"""``formula-v1``: the hand-weighted ranking model, and the ``Candidate`` every model scores.

The ranking service (``services/ranking``, port 8001) serves these behind ``POST /rank``; the feed
calls it over HTTP like it would call Triton. ``formula-v1`` is the original design's hand-weighted
formula, made honest:

    pClick = 0.35 · recency + 0.25 · engagement + 0.20 · affinity + 0.15 · topic_similarity + 0.05 · jitter

* ``recency`` = 0.5 ** (age_hours / 24), from the post's real ``created_at`` and the request's ``now``
  (the original had no creation time in its features, so every post looked equally fresh);
* ``engagement`` = log1p(likes) / log1p(100), capped at 1, plus 0.1 for media (capped at 1);
* ``affinity`` = the user→author ``affinity_score``; unknown (the feature store was down) → a proxy
  from the user's ``avg_engagement_rate`` (the original's degradation), squashed into [0, 1) as
  rate / (1 + rate) because the rate is unbounded (likes per post);
* ``topic_similarity`` = cosine(interest vector, post embedding) mapped to [0, 1]; missing → 0.5;
* ``jitter`` is *seeded*: a hash of (seed, user, post), so the same request always ranks the same
  way — reproducible lessons, yet ties between equal posts still break differently per user.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

WEIGHTS = {"recency": 0.35, "engagement": 0.25, "affinity": 0.20, "topic_similarity": 0.15, "jitter": 0.05}
RECENCY_HALF_LIFE_HOURS = 24.0


@dataclass(frozen=True)
class Candidate:
    """What the ranker sees of one candidate post: its id and a flat feature mapping."""

    post_id: str
    features: Mapping[str, float | None]


def jitter(seed: int, user_id: str, post_id: str) -> float:
    digest = hashlib.blake2b(f"{seed}:{user_id}:{post_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def recency(created_at: float | None, now: float) -> float:
    if created_at is None:
        return 0.0
    age_hours = max(0.0, now - created_at) / 3600
    return 0.5 ** (age_hours / RECENCY_HALF_LIFE_HOURS)


def formula_terms(user_id: str, candidate: Candidate, now: float, seed: int) -> dict[str, float]:
    """The formula's terms for one candidate, each in [0, 1] (shown by the explain view)."""
    f = candidate.features
    likes = float(f.get("like_count") or 0)
    engagement = min(1.0, math.log1p(likes) / math.log1p(100) + (0.1 if f.get("has_media") else 0.0))
    affinity = f.get("affinity_score")
    if affinity is None:
        rate = float(f.get("avg_engagement_rate") or 0.0)
        affinity = rate / (1 + rate)
    similarity = f.get("topic_similarity")
    topic = 0.5 if similarity is None else (float(similarity) + 1) / 2
    return {
        "recency": recency(f.get("created_at"), now),
        "engagement": engagement,
        "affinity": min(1.0, max(0.0, float(affinity))),
        "topic_similarity": min(1.0, max(0.0, topic)),
        "jitter": jitter(seed, user_id, candidate.post_id),
    }


def formula_v1(user_id: str, candidates: Sequence[Candidate], now: float, seed: int = 0) -> list[float]:
    return [
        sum(WEIGHTS[name] * value for name, value in formula_terms(user_id, c, now, seed).items())
        for c in candidates
    ]
