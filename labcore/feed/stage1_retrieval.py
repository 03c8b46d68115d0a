"""Stage 1, retrieval: the candidates, from two sources.

*Social*: the user's mailbox (fan-out on write; rebuilt from the follow graph when missing) merged
with the celebrity pull (recent ``delivery="pull"`` posts of followed authors, read from SQL).
*Discovery*: ANN top-K from the user's interest vector, excluding their own posts — the author
filter runs inside the vector engine.

Fallbacks: ``mailbox:sql`` (Redis down: social straight from SQL), ``vectors:social-only`` (vector
store or interest vectors down: no discovery).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from opentelemetry import trace

from labcore.errors import BackendUnavailable
from labcore.feed.journey import Journey

if TYPE_CHECKING:
    from labcore.adapters.redis.mailboxes import RedisMailboxes
    from labcore.adapters.sql.store import SqlStore
    from labcore.bootstrap import Stack

tracer = trace.get_tracer(__name__)

MailboxReader = Callable[..., list[tuple[str, float]]]


def read_mailbox(
    user_id: str, store: SqlStore, mailboxes: RedisMailboxes, *, limit: int, cap: int
) -> list[tuple[str, float]]:
    """The newest ``limit`` mailbox entries; a missing or expired mailbox is first rebuilt from the
    follow graph (the newest ``cap`` pushed posts of the followed authors). Redis errors propagate
    as ``BackendUnavailable`` — the caller's ``mailbox:sql`` fallback."""
    built, entries = mailboxes.read(user_id, limit)
    if not built:
        entries = store.followed_posts(user_id, "push", cap)
        mailboxes.rebuild(user_id, entries)
        entries = entries[:limit]
    return entries


@dataclass
class Candidates:
    social: list[Journey]
    discovery: list[Journey]
    interest: np.ndarray | None  # the reader's interest vector (stage 3's topic similarity needs it)


def social(stack: Stack, user_id: str, fallbacks: list[str], reader: MailboxReader = read_mailbox) -> list[Journey]:
    """Mailbox + celebrity pull, newest first, at most ``social_candidates``."""
    settings, store = stack.settings, stack.store
    limit = settings.social_candidates
    try:
        entries = reader(user_id, store, stack.mailboxes, limit=limit, cap=settings.mailbox_cap)
    except BackendUnavailable:
        fallbacks.append("mailbox:sql")
        entries = store.followed_posts(user_id, "push", limit)
    pulled = store.followed_posts(user_id, "pull", settings.celebrity_pull_limit)
    journeys: dict[str, Journey] = {}
    for post_id, score in entries:
        journeys[post_id] = Journey(post_id, "social", score)
    for post_id, score in pulled:
        journeys.setdefault(post_id, Journey(post_id, "celebrity", score))
    return sorted(journeys.values(), key=lambda j: j.retrieval_score, reverse=True)[:limit]


def discovery(stack: Stack, user_id: str, interest: np.ndarray | None, already: set[str]) -> list[Journey]:
    """The ``discovery_candidates`` posts nearest the interest vector, not the user's own."""
    if interest is None:
        return []  # no posts exist yet to build a taste from
    hits = stack.vectors.search(interest, stack.settings.discovery_candidates, exclude_author_ids={user_id})
    return [
        Journey(hit.post_id, "discovery", hit.score, author_id=hit.author_id)
        for hit in hits
        if hit.post_id not in already  # in both? it stays a social candidate
    ]


def retrieve(stack: Stack, user_id: str, fallbacks: list[str], reader: MailboxReader = read_mailbox) -> Candidates:
    """Both sources, each in its own span (``social_retrieval``, ``discovery_retrieval``)."""
    with tracer.start_as_current_span("social_retrieval") as span:
        social_journeys = social(stack, user_id, fallbacks, reader)
        span.set_attribute("candidates", len(social_journeys))
    with tracer.start_as_current_span("discovery_retrieval") as span:
        try:
            interest = stack.interests.for_user(user_id, stack.store, stack.vectors)
            found = discovery(stack, user_id, interest, {j.post_id for j in social_journeys})
        except BackendUnavailable:
            fallbacks.append("vectors:social-only")
            interest, found = None, []
        span.set_attribute("candidates", len(found))
    return Candidates(social_journeys, found, interest)
