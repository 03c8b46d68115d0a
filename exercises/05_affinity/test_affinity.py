"""Exercise 05: the user→author affinity score."""

from __future__ import annotations

import pytest


@pytest.mark.points(1)
def test_no_evidence_is_no_affinity(exercise) -> None:
    assert exercise.affinity_score(0, False) == 0.0


@pytest.mark.points(1)
@pytest.mark.parametrize(
    ("likes", "follows", "expected"),
    [(1, False, 0.283), (3, False, 0.632), (10, False, 0.964), (0, True, 0.154)],
    ids=["one-like", "three-likes", "ten-likes", "follow-only"],
)
def test_the_documented_anchor_values(exercise, likes: int, follows: bool, expected: float) -> None:
    assert exercise.affinity_score(likes, follows) == pytest.approx(expected, abs=0.002)


@pytest.mark.points(2)
def test_more_evidence_never_lowers_it_and_it_stays_in_range(exercise) -> None:
    scores = [exercise.affinity_score(n, follows) for n in range(0, 40) for follows in (False, True)]
    assert scores == sorted(scores), "each like, and the follow, only ever raise the score"
    assert all(0.0 <= s <= 1.0 for s in scores)
