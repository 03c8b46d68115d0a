"""Reference solution of exercise 07 (author diversity and the in/out-of-network mix)."""

from __future__ import annotations

import math
from collections import Counter

from labcore.feed.journey import Journey


def rerank(
    journeys: list[Journey], limit: int, *, max_per_author: int, out_of_network_share: float
) -> list[Journey]:
    discovery_cap = math.floor(out_of_network_share * limit)
    per_author: Counter[str] = Counter()
    discovery = 0
    kept: list[Journey] = []
    # Greedy over the score order (an unscored candidate counts as 0); sorted() is stable, so equal
    # scores keep the retrieval order.
    for journey in sorted(journeys, key=lambda j: j.score or 0.0, reverse=True):
        author = journey.author_id or ""
        if len(kept) >= limit:
            journey.dropped = "below_cutoff"
        elif per_author[author] >= max_per_author:
            journey.dropped = "author_cap"
        elif not journey.in_network and discovery >= discovery_cap:
            journey.dropped = "out_of_network_cap"
        else:
            # A capped post frees its slot for the next best candidate, so the feed stays full.
            per_author[author] += 1
            discovery += 0 if journey.in_network else 1
            journey.rank = len(kept) + 1
            kept.append(journey)
    return kept
