"""Stage 4, re-rank and hydrate: the page a reader gets.

``rerank`` applies author diversity and the in/out-of-network mix over the score order — by
*demoting* (a capped post moves below the others and still fills a short page), never by dropping,
the way large feeds demote repeated authors; ``hydrate`` turns the kept journeys into ``FeedItem`` s
(post, author, a presigned media URL).

**Exploration** (``explore``): a small share of feed slots goes to a random candidate instead of the
ranker's pick (off by default: ``exploration_share`` 0).

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
import math
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from labcore.domain import Post
from labcore.feed.journey import FeedItem, Journey

if TYPE_CHECKING:
    from labcore.bootstrap import Stack


def rerank(
    journeys: list[Journey], limit: int, *, max_per_author: int, out_of_network_share: float
) -> list[Journey]:
    """Author diversity and the in/out-of-network mix over the score order: demote, never starve.

    The page is ``min(limit, len(journeys))`` long — a post is left out only when the page is full.
    Walking the score order, a post whose author already has ``max_per_author`` posts above it, or a
    discovery post once ``floor(out_of_network_share × page length)`` are above it, is *demoted*: it
    moves below every post that passed, in score order, and so still fills a page that would
    otherwise be short (a reader who follows one author with three new posts sees all three).

    Sets ``rank`` (1, 2, ...) on each kept journey, ``demoted`` (``author_cap`` or
    ``out_of_network_cap``) on each demoted one, kept or not, and ``dropped = "below_cutoff"`` on
    those past the page; returns the kept ones in rank order.
    """
    size = min(limit, len(journeys))
    out_of_network_cap = math.floor(out_of_network_share * size)
    per_author: dict[str, int] = {}
    out_of_network = 0
    passed: list[Journey] = []
    demoted: list[Journey] = []
    for journey in sorted(journeys, key=lambda j: j.score or 0.0, reverse=True):
        author = journey.author_id or ""
        if per_author.get(author, 0) >= max_per_author:
            journey.demoted = "author_cap"
            demoted.append(journey)
        elif not journey.in_network and out_of_network >= out_of_network_cap:
            journey.demoted = "out_of_network_cap"
            demoted.append(journey)
        else:
            per_author[author] = per_author.get(author, 0) + 1
            out_of_network += 0 if journey.in_network else 1
            passed.append(journey)
    order = passed + demoted
    for rank, journey in enumerate(order[:size], start=1):
        journey.rank = rank
    for journey in order[size:]:
        journey.dropped = "below_cutoff"
    return order[:size]


def hydrate(stack: Stack, kept: list[Journey], posts: dict[str, Post]) -> list[FeedItem]:
    """The kept journeys as feed items: post, author (one SQL read) and a presigned media URL."""
    authors = stack.store.get_users([j.author_id for j in kept if j.author_id])
    ttl = stack.settings.media_url_ttl_seconds
    items = []
    for journey in kept:
        post = posts[journey.post_id]
        url = stack.media.url(post.media_key, ttl) if post.media_key else None
        items.append(FeedItem(post, authors[post.author_id], journey.source, journey.score, url, journey.explored))
    return items


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
