"""Reference solution of exercise 07 (author diversity and the in/out-of-network mix, by demotion)."""

from __future__ import annotations

import math
from collections import Counter

from labcore.feed.journey import Journey


def rerank(
    journeys: list[Journey], limit: int, *, max_per_author: int, out_of_network_share: float
) -> list[Journey]:
    page_length = min(limit, len(journeys))  # every candidate fits when the page would be short
    discovery_cap = math.floor(out_of_network_share * page_length)  # a share of what is returned
    per_author: Counter[str] = Counter()
    discovery = 0
    passed: list[Journey] = []
    demoted: list[Journey] = []
    # Greedy over the score order (an unscored candidate counts as 0); sorted() is stable, so equal
    # scores keep the retrieval order.
    for journey in sorted(journeys, key=lambda j: j.score or 0.0, reverse=True):
        author = journey.author_id or ""
        if per_author[author] >= max_per_author:
            journey.demoted = "author_cap"
            demoted.append(journey)
        elif not journey.in_network and discovery >= discovery_cap:
            journey.demoted = "out_of_network_cap"
            demoted.append(journey)
        else:
            per_author[author] += 1
            discovery += 0 if journey.in_network else 1
            passed.append(journey)
    # Demoted posts go below the others, and still fill a page that would otherwise be short.
    ordered = passed + demoted
    for rank, journey in enumerate(ordered[:page_length], start=1):
        journey.rank = rank
    for journey in ordered[page_length:]:
        journey.dropped = "below_cutoff"
    return ordered[:page_length]
