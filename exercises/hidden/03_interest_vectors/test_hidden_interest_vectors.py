"""Exercise 03, hidden tests: normalising the post, rates, the degenerate case, no side effects."""

from __future__ import annotations

import numpy as np
import pytest


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


@pytest.mark.points(2)
def test_the_posts_length_does_not_change_the_step(exercise) -> None:
    current = unit(1.0, 0.0)
    short = exercise.ema_step(current, np.array([0.0, 1.0], dtype=np.float32), 0.2)
    long = exercise.ema_step(current, np.array([0.0, 50.0], dtype=np.float32), 0.2)
    np.testing.assert_allclose(long, short, atol=1e-6)
    np.testing.assert_allclose(short, unit(0.8, 0.2), atol=1e-6)


@pytest.mark.points(1)
def test_rate_one_jumps_to_the_post(exercise) -> None:
    np.testing.assert_allclose(exercise.ema_step(unit(1.0, 0.0), unit(1.0, 1.0), 1.0), unit(1.0, 1.0), atol=1e-6)


@pytest.mark.points(1)
def test_opposite_vectors_at_half_rate_follow_the_new_like(exercise) -> None:
    result = exercise.ema_step(unit(1.0, 0.0), unit(-1.0, 0.0), 0.5)
    np.testing.assert_allclose(result, unit(-1.0, 0.0), atol=1e-6)


@pytest.mark.points(1)
def test_the_inputs_are_left_alone(exercise) -> None:
    current, liked = unit(1.0, 0.0), np.array([0.0, 2.0], dtype=np.float32)
    exercise.ema_step(current, liked, 0.2)
    np.testing.assert_array_equal(current, unit(1.0, 0.0))
    np.testing.assert_array_equal(liked, np.array([0.0, 2.0], dtype=np.float32))


@pytest.mark.points(1)
def test_repeated_likes_converge_on_the_post(exercise) -> None:
    vector, liked = unit(1.0, 0.0, 0.0), unit(0.0, 0.0, 1.0)
    for _ in range(30):
        vector = exercise.ema_step(vector, liked, 0.2)
    assert float(np.dot(vector, liked)) > 0.99
