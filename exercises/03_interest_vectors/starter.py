"""Exercise 03 — the interest-vector update from a like. The task: README.md next to this file.

Run the tests:   feedlab grade 03          (or: pytest exercises/03_interest_vectors)
Plug it in:      FEEDLAB_INTEREST_UPDATE=exercises.03_interest_vectors.starter:ema_step
"""

from __future__ import annotations

import numpy as np


def ema_step(current: np.ndarray | None, liked: np.ndarray, rate: float) -> np.ndarray:
    """The user's new interest vector after liking a post whose embedding is ``liked``.

    An exponential moving average toward the liked post, normalised to unit length (float32);
    a user without a vector yet (``current is None``) starts at the liked post.
    """
    raise NotImplementedError(
        "exercise 03: implement ema_step(current, liked, rate) in exercises/03_interest_vectors/starter.py — "
        "move the vector toward the liked post by `rate` (EMA) and normalise it"
    )
