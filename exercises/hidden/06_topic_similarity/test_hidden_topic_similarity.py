"""Exercise 06, hidden tests: scale, zero vectors, types, real dimensions."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.points(2)
def test_length_does_not_matter(exercise) -> None:
    a, b = np.array([1.0, 2.0, 3.0], dtype=np.float32), np.array([3.0, -1.0, 0.5], dtype=np.float32)
    assert exercise.topic_similarity(10 * a, b) == pytest.approx(exercise.topic_similarity(a, 0.1 * b), abs=1e-5)


@pytest.mark.points(2)
def test_a_zero_vector_has_no_direction(exercise) -> None:
    zero, other = np.zeros(3, dtype=np.float32), np.ones(3, dtype=np.float32)
    assert exercise.topic_similarity(zero, other) is None
    assert exercise.topic_similarity(other, zero) is None


@pytest.mark.points(1)
def test_the_answer_is_a_python_float(exercise) -> None:
    result = exercise.topic_similarity(np.ones(4, dtype=np.float32), np.arange(4, dtype=np.float32))
    assert type(result) is float, "numpy float32 does not serialise to JSON"


@pytest.mark.points(1)
def test_real_embedding_sizes(exercise) -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=384).astype(np.float32), rng.normal(size=384).astype(np.float32)
    expected = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    assert exercise.topic_similarity(a, b) == pytest.approx(expected, abs=1e-5)
