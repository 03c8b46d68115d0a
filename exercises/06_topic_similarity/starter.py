"""Exercise 06 — topic similarity. The task: README.md next to this file.

Run the tests:   feedlab grade 06          (or: pytest exercises/06_topic_similarity)
Plug it in:      FEEDLAB_TOPIC_SIMILARITY=exercises.06_topic_similarity.starter:topic_similarity
"""

from __future__ import annotations

import numpy as np


def topic_similarity(interest: np.ndarray | None, embedding: np.ndarray | None) -> float | None:
    """The cosine similarity of the reader's interest vector and a post's embedding, in [-1, 1];
    ``None`` when it is unknown (a vector is missing, or has no direction)."""
    raise NotImplementedError(
        "exercise 06: implement topic_similarity(interest, embedding) in "
        "exercises/06_topic_similarity/starter.py — the cosine of the two vectors, None when unknown"
    )
