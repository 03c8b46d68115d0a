"""Reference solution of exercise 06 (topic similarity = cosine)."""

from __future__ import annotations

import numpy as np


def topic_similarity(interest: np.ndarray | None, embedding: np.ndarray | None) -> float | None:
    if interest is None or embedding is None:
        return None  # unknown, and the ranker treats it as neutral — never a made-up number
    norms = float(np.linalg.norm(interest) * np.linalg.norm(embedding))
    if not norms:
        return None  # a zero vector has no direction to compare
    return float(np.dot(interest, embedding) / norms)  # a Python float: it goes into JSON
