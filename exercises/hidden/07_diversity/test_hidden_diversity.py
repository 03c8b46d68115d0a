"""Exercise 07, hidden tests: reasons, unscored candidates, rounding, the share of the page, the whole contract."""

from __future__ import annotations

import random

import pytest

from labcore.feed.journey import Journey
from labcore.feed.stage4_rerank import rerank as labcore_rerank


def journey(post_id: str, author: str, score: float | None, source: str = "social") -> Journey:
    return Journey(post_id, source, 0.0, author_id=author, score=score)


@pytest.mark.points(2)
def test_every_candidate_is_either_ranked_or_has_one_reason(exercise) -> None:
    rng = random.Random(5)
    candidates = [
        journey(f"p{i}", f"a{rng.randrange(6)}", rng.random(), rng.choice(["social", "celebrity", "discovery"]))
        for i in range(40)
    ]
    kept = exercise.rerank(candidates, 12, max_per_author=2, out_of_network_share=0.25)
    assert {j.post_id for j in kept} == {j.post_id for j in candidates if j.rank is not None}
    for j in candidates:
        assert (j.rank is None) != (j.dropped is None)
        assert j.dropped in (None, "below_cutoff"), "only a full page leaves a post out"
        assert j.demoted in (None, "author_cap", "out_of_network_cap")
    assert len(kept) == 12


@pytest.mark.points(1)
def test_unscored_candidates_count_as_zero(exercise) -> None:
    candidates = [journey("none", "a", None), journey("low", "b", 0.1), journey("high", "c", 0.8)]
    kept = exercise.rerank(candidates, 3, max_per_author=2, out_of_network_share=0.3)
    assert [j.post_id for j in kept] == ["high", "low", "none"]


@pytest.mark.points(1)
def test_the_out_of_network_cap_rounds_down(exercise) -> None:
    candidates = [journey(f"d{i}", f"s{i}", 0.9, "discovery") for i in range(3)] + [journey("s", "f", 0.1)]
    kept = exercise.rerank(candidates, 3, max_per_author=2, out_of_network_share=0.3)
    assert [j.post_id for j in kept] == ["s", "d0", "d1"], "floor(0.3 × 3) = 0: the social post comes first"
    assert candidates[2].dropped == "below_cutoff" and candidates[2].demoted == "out_of_network_cap"


@pytest.mark.points(2)
def test_the_share_is_of_what_is_returned_not_of_limit(exercise) -> None:
    # limit 50 but five candidates: the page is 5 long, so floor(0.3 × 5) = 1 discovery post passes.
    discovery = [journey(f"d{i}", f"stranger{i}", 0.9 - i / 100, "discovery") for i in range(3)]
    social = [journey("s0", "friend0", 0.2), journey("s1", "friend1", 0.1)]
    kept = exercise.rerank(discovery + social, 50, max_per_author=2, out_of_network_share=0.3)
    assert [j.post_id for j in kept] == ["d0", "s0", "s1", "d1", "d2"]
    assert [j.demoted for j in kept] == [None, None, None, "out_of_network_cap", "out_of_network_cap"]


@pytest.mark.points(1)
def test_celebrity_posts_are_in_network(exercise) -> None:
    candidates = [journey(f"c{i}", f"star{i}", 0.9, "celebrity") for i in range(4)]
    kept = exercise.rerank(candidates, 4, max_per_author=2, out_of_network_share=0.0)
    assert len(kept) == 4, "posts of followed celebrities are not discovery"
    assert all(j.demoted is None for j in kept), "posts of followed celebrities are not discovery"


@pytest.mark.points(2)
def test_same_feed_as_labcore_on_random_candidates(exercise) -> None:
    rng = random.Random(11)
    for _ in range(20):
        specs = [
            (f"p{i}", f"a{rng.randrange(8)}", rng.random(), rng.choice(["social", "celebrity", "discovery"]))
            for i in range(rng.randrange(1, 60))
        ]
        limit, cap, share = rng.randrange(1, 25), rng.randrange(1, 4), rng.choice([0.0, 0.2, 0.3, 0.5, 1.0])
        mine = [journey(*spec) for spec in specs]
        reference = [journey(*spec) for spec in specs]
        exercise.rerank(mine, limit, max_per_author=cap, out_of_network_share=share)
        labcore_rerank(reference, limit, max_per_author=cap, out_of_network_share=share)
        assert [(j.rank, j.dropped, j.demoted) for j in mine] == [(j.rank, j.dropped, j.demoted) for j in reference]
