"""Exploration: a small share of feed slots goes to a random candidate instead of the ranker's pick.

Logged impressions are the training data of the next ranker. If every impression is something the
current ranker put on top, the log only says how good its favourites are: posts it ranks low are never
shown, so never liked, so the next model learns they are bad — a feedback loop. Spending a few slots
on uniformly chosen candidates (epsilon-greedy) keeps some unbiased evidence in the log, at a small
cost in engagement.

Each slot of the page is explored with probability ``share``; an explored slot takes a candidate the
re-rank left out, placed at that slot (not at the bottom, where fewer users look), marked
``explored``. The ranker's pick it displaces is dropped as ``exploration``. The draw is a seeded hash of (seed, user, the
page the ranker chose) — like formula-v1's jitter, the same request explores the same way, so runs
are reproducible, while the page changes from visit to visit (seen posts leave it) and so do the draws.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from labcore.feed import Journey


def exploration_rng(seed: int, user_id: str, page: Sequence[str]) -> random.Random:
    """The generator for one request: seeded by (seed, user, the ranker's page of post ids)."""
    digest = hashlib.blake2b(f"{seed}:{user_id}:{','.join(page)}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def explore(kept: list[Journey], pool: Sequence[Journey], share: float, rng: random.Random) -> list[Journey]:
    """``kept`` with some slots swapped for random candidates of ``pool`` that were not kept.

    Sets ``explored`` on the newcomers, ``dropped = "exploration"`` on the displaced, and renumbers
    ``rank``. ``share`` 0 returns ``kept`` unchanged.
    """
    if share <= 0 or not kept:
        return kept
    slots = [i for i in range(len(kept)) if rng.random() < share]
    kept_ids = {j.post_id for j in kept}
    others = [j for j in pool if j.post_id not in kept_ids and j.filtered is None]
    picks = rng.sample(others, min(len(slots), len(others)))
    page = list(kept)
    for slot, pick in zip(slots, picks, strict=False):
        page[slot].rank, page[slot].dropped = None, "exploration"
        pick.dropped, pick.explored = None, True
        page[slot] = pick
    for rank, journey in enumerate(page, start=1):
        journey.rank = rank
    return page
