"""Exercise 07 — the author-diversity re-rank. The task: README.md next to this file.

Run the tests:   feedlab grade 07          (or: pytest exercises/07_diversity)
Plug it in:      FEEDLAB_RERANKER=exercises.07_diversity.starter:rerank
"""

from __future__ import annotations

from labcore.feed.journey import Journey


def rerank(
    journeys: list[Journey], limit: int, *, max_per_author: int, out_of_network_share: float
) -> list[Journey]:
    """Pick the feed from the scored candidates: best score first, at most ``max_per_author`` posts
    per author, at most ``floor(out_of_network_share * limit)`` discovery posts, ``limit`` in all.

    Set ``journey.rank`` (1, 2, ...) on each kept journey and ``journey.dropped`` on every other one
    (``"below_cutoff"``, ``"author_cap"`` or ``"out_of_network_cap"``); return the kept ones in
    rank order.
    """
    raise NotImplementedError(
        "exercise 07: implement rerank(journeys, limit, max_per_author=, out_of_network_share=) in "
        "exercises/07_diversity/starter.py — score order, an author cap, an out-of-network cap"
    )
