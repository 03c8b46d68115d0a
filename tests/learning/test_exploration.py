"""Exploration: a share of slots goes to random candidates, marked, reproducibly."""

from __future__ import annotations

from labcore.feed.journey import Journey
from labcore.feed.stage4_rerank import exploration_rng, explore


def journeys(n: int) -> list[Journey]:
    return [Journey(f"p{i}", "social", float(i), author_id=f"a{i}", score=1 - i / n) for i in range(n)]


def page(n_kept: int, pool: list[Journey]) -> list[Journey]:
    kept = pool[:n_kept]
    for rank, journey in enumerate(kept, start=1):
        journey.rank = rank
    return kept


def test_share_zero_is_the_rankers_page() -> None:
    pool = journeys(30)
    kept = page(10, pool)
    assert explore(kept, pool, 0.0, exploration_rng(0, "u", ["p0"])) == kept
    assert not any(j.explored for j in pool)


def test_explored_slots_take_candidates_the_ranker_left_out() -> None:
    pool = journeys(30)
    kept = page(10, pool)
    result = explore(list(kept), pool, 0.5, exploration_rng(0, "u", ["p0"]))
    explored = [j for j in result if j.explored]
    assert explored and len(result) == 10
    assert all(j.post_id not in {k.post_id for k in kept} for j in explored)
    assert [j.rank for j in result] == list(range(1, 11))
    displaced = [j for j in kept if j not in result]
    assert len(displaced) == len(explored) and all(j.dropped == "exploration" and j.rank is None for j in displaced)


def test_exploration_is_reproducible_per_request() -> None:
    def picks(user: str, first: int) -> list[str]:
        pool = journeys(40)[first:]  # seen posts leave the candidates between visits
        kept = page(10, pool)
        rng = exploration_rng(7, user, [j.post_id for j in kept])
        return [j.post_id for j in explore(kept, pool, 0.3, rng)]

    assert picks("u", 0) == picks("u", 0)  # the same request explores the same way
    assert len({tuple(picks("u", first)) for first in range(10)}) > 1  # the next visit differs
    assert picks("u", 0) != picks("v", 0)
