"""Reference solution of exercise 03 (interest-vector update: EMA, then normalise)."""

from __future__ import annotations

import numpy as np


def _unit(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError("cannot normalise a zero or non-finite vector")
    return vector / norm


def ema_step(current: np.ndarray | None, liked: np.ndarray, rate: float) -> np.ndarray:
    # Normalise the post first: the step's size must not depend on an embedding's length.
    liked = _unit(liked)
    if current is None:
        return liked  # the first like is the whole taste so far
    mixed = (1.0 - rate) * np.asarray(current, dtype=np.float32) + rate * liked
    try:
        return _unit(mixed)
    except ValueError:
        # Exactly opposite vectors at rate 0.5 cancel out: there is no direction left but the new like.
        return liked
