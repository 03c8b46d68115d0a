"""Exercise 03: a like moves the liker's interest vector toward the post (EMA), normalised."""

from __future__ import annotations

import numpy as np
import pytest


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


@pytest.mark.points(2)
def test_the_first_like_starts_the_vector_at_the_post(exercise) -> None:
    liked = unit(3.0, 4.0, 0.0)
    result = exercise.ema_step(None, liked, 0.2)
    np.testing.assert_allclose(result, liked, atol=1e-6)


@pytest.mark.points(3)
def test_a_like_moves_the_vector_by_the_rate(exercise) -> None:
    current, liked = unit(1.0, 0.0), unit(0.0, 1.0)
    result = exercise.ema_step(current, liked, 0.2)
    np.testing.assert_allclose(result, unit(0.8, 0.2), atol=1e-6)


@pytest.mark.points(2)
def test_the_result_is_a_float32_unit_vector(exercise) -> None:
    rng = np.random.default_rng(7)
    current = unit(*rng.normal(size=384))
    liked = rng.normal(size=384).astype(np.float32)
    result = exercise.ema_step(current, liked, 0.2)
    assert result.dtype == np.float32, "vectors are stored as float32"
    assert result.shape == (384,)
    assert abs(float(np.linalg.norm(result)) - 1.0) < 1e-5, "interest vectors have unit length"
