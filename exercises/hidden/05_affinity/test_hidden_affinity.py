"""Exercise 05, hidden tests: diminishing returns, the follow's weight, types, large counts."""

from __future__ import annotations

import math

import pytest


@pytest.mark.points(2)
def test_each_like_adds_less_than_the_one_before(exercise) -> None:
    scores = [exercise.affinity_score(n, False) for n in range(0, 15)]
    gains = [b - a for a, b in zip(scores, scores[1:])]
    assert all(later < earlier for earlier, later in zip(gains, gains[1:]))


@pytest.mark.points(2)
def test_following_is_worth_half_a_like(exercise) -> None:
    for likes in (0, 1, 4):
        assert exercise.affinity_score(likes, True) == pytest.approx(1 - math.exp(-(likes + 0.5) / 3), abs=1e-6)


@pytest.mark.points(1)
def test_it_is_a_python_float(exercise) -> None:
    assert type(exercise.affinity_score(2, True)) is float, "feature rows are serialised as JSON and parquet doubles"


@pytest.mark.points(1)
def test_huge_counts_do_not_overflow(exercise) -> None:
    assert 0.99 < exercise.affinity_score(100_000, True) <= 1.0
