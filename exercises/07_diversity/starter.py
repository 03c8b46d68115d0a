"""Exercise 07 — the author-diversity re-rank. The task: README.md next to this file.

Run the tests:   feedlab grade 07          (or: pytest exercises/07_diversity)
Plug it in:      FEEDLAB_RERANKER=exercises.07_diversity.starter:rerank
"""

from __future__ import annotations

from labcore.feed.journey import Journey


def rerank(
    journeys: list[Journey], limit: int, *, max_per_author: int, out_of_network_share: float
) -> list[Journey]:
    """Pick the page from the scored candidates, ``min(limit, len(journeys))`` long: best score first,
    but a post whose author already has ``max_per_author`` posts passed, or a discovery post once
    ``floor(out_of_network_share * page length)`` have passed, is demoted below the others.

    Set ``journey.demoted`` (``"author_cap"`` or ``"out_of_network_cap"``) on each demoted journey,
    ``journey.rank`` (1, 2, ...) on each journey of the page and ``journey.dropped = "below_cutoff"``
    on the others; return the page in rank order.
    """
    raise NotImplementedError(
        "exercise 07: implement rerank(journeys, limit, max_per_author=, out_of_network_share=) in "
        "exercises/07_diversity/starter.py — score order, demote past an author cap and a discovery share"
    )
