"""Exercise 07: author diversity and the in/out-of-network mix over the score order, by demotion."""

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
    assert all(j.demoted is None for j in candidates), "nobody passed a cap"


@pytest.mark.points(2)
def test_an_authors_extra_posts_move_below_the_others(exercise) -> None:
    candidates = [journey(f"a{i}", "prolific", 0.9 - i / 100) for i in range(4)] + [
        journey("b0", "other", 0.5),
        journey("c0", "third", 0.4),
    ]
    kept = exercise.rerank(candidates, 5, max_per_author=2, out_of_network_share=0.3)
    assert [j.post_id for j in kept] == ["a0", "a1", "b0", "c0", "a2"]
    assert {j.post_id: j.demoted for j in candidates if j.demoted} == {"a2": "author_cap", "a3": "author_cap"}
    assert {j.post_id: j.dropped for j in candidates if j.dropped} == {"a3": "below_cutoff"}


@pytest.mark.points(2)
def test_demoted_posts_fill_a_short_page(exercise) -> None:
    # A reader who follows one author with three new posts, asking for 50: all three.
    candidates = [journey(f"a{i}", "only_friend", 0.9 - i / 10) for i in range(3)]
    kept = exercise.rerank(candidates, 50, max_per_author=2, out_of_network_share=0.3)
    assert [j.post_id for j in kept] == ["a0", "a1", "a2"]
    assert [j.rank for j in kept] == [1, 2, 3]
    assert kept[2].demoted == "author_cap" and kept[2].dropped is None


@pytest.mark.points(2)
def test_out_of_network_share_of_the_page(exercise) -> None:
    discovery = [journey(f"d{i}", f"stranger{i}", 0.9 - i / 100, source="discovery") for i in range(6)]
    social = [journey(f"s{i}", f"friend{i}", 0.5 - i / 100) for i in range(10)]
    kept = exercise.rerank(discovery + social, 10, max_per_author=2, out_of_network_share=0.3)
    assert len(kept) == 10
    assert [j.post_id for j in kept[:3]] == ["d0", "d1", "d2"], "30 % of 10 is 3"
    assert all(j.source == "social" for j in kept[3:])
    assert all(j.demoted == "out_of_network_cap" and j.dropped == "below_cutoff" for j in discovery[3:])
