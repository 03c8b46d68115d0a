"""Exercise 06: topic similarity = cosine(interest vector, post embedding)."""

from __future__ import annotations

import numpy as np
import pytest


def vec(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


@pytest.mark.points(1)
@pytest.mark.parametrize(
    ("interest", "embedding", "expected"),
    [
        (vec(1, 0), vec(1, 0), 1.0),
        (vec(1, 0), vec(-1, 0), -1.0),
        (vec(1, 0), vec(0, 1), 0.0),
        (vec(1, 1), vec(1, 0), 0.7071),
    ],
    ids=["same", "opposite", "orthogonal", "45-degrees"],
)
def test_cosine_of_the_two_vectors(exercise, interest, embedding, expected: float) -> None:
    assert exercise.topic_similarity(interest, embedding) == pytest.approx(expected, abs=1e-4)


@pytest.mark.points(2)
def test_a_missing_vector_means_unknown(exercise) -> None:
    assert exercise.topic_similarity(None, vec(1, 0)) is None, "a new user without an interest vector"
    assert exercise.topic_similarity(vec(1, 0), None) is None, "a post not embedded yet"
