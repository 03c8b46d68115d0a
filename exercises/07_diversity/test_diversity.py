"""Exercise 07: author diversity and the in/out-of-network mix over the score order."""

from __future__ import annotations

import pytest

from labcore.feed.journey import Journey


def journey(post_id: str, author: str, score: float, source: str = "social") -> Journey:
    return Journey(post_id, source, 0.0, author_id=author, score=score)


@pytest.mark.points(2)
def test_best_scores_first_and_limit(exercise) -> None:
    candidates = [journey(f"p{i}", f"author{i}", score) for i, score in enumerate([0.2, 0.9, 0.5, 0.7, 0.1])]
    kept = exercise.rerank(candidates, 3, max_per_author=2, out_of_network_share=0.3)
    assert [j.post_id for j in kept] == ["p1", "p3", "p2"]
    assert [j.rank for j in kept] == [1, 2, 3]
    assert {j.post_id: j.dropped for j in candidates if j.rank is None} == {"p0": "below_cutoff", "p4": "below_cutoff"}


@pytest.mark.points(3)
def test_at_most_n_posts_per_author(exercise) -> None:
    candidates = [journey(f"a{i}", "prolific", 0.9 - i / 100) for i in range(4)] + [
        journey("b0", "other", 0.5),
        journey("c0", "third", 0.4),
    ]
    kept = exercise.rerank(candidates, 4, max_per_author=2, out_of_network_share=0.3)
    assert [j.post_id for j in kept] == ["a0", "a1", "b0", "c0"]
    assert {j.post_id: j.dropped for j in candidates if j.rank is None} == {"a2": "author_cap", "a3": "author_cap"}


@pytest.mark.points(3)
def test_out_of_network_share(exercise) -> None:
    discovery = [journey(f"d{i}", f"stranger{i}", 0.9 - i / 100, source="discovery") for i in range(6)]
    social = [journey(f"s{i}", f"friend{i}", 0.5 - i / 100) for i in range(10)]
    kept = exercise.rerank(discovery + social, 10, max_per_author=2, out_of_network_share=0.3)
    assert len(kept) == 10
    assert [j.post_id for j in kept if j.source == "discovery"] == ["d0", "d1", "d2"], "30 % of 10 is 3"
    assert all(j.dropped == "out_of_network_cap" for j in discovery[3:])
