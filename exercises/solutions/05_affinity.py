"""Reference solution of exercise 05 (user→author affinity)."""

from __future__ import annotations

import math

FOLLOW_EVIDENCE = 0.5  # following is a weaker signal than a like: half a unit of evidence
SCALE = 3.0  # three units of evidence reach 1 - 1/e ≈ 0.63


def affinity_score(likes_on_author: int, follows_author: bool) -> float:
    evidence = likes_on_author + (FOLLOW_EVIDENCE if follows_author else 0.0)
    # Saturating: the tenth like says much less than the first, and the score never leaves [0, 1).
    return 1.0 - math.exp(-evidence / SCALE)
