"""The read path: ``get_feed(user_id)``.

Stage 1 (social candidates) merges two sources:

* the user's mailbox (``feed:{user_id}``), filled by fan-out on write, rebuilt from the follow graph
  when it is missing or expired;
* the celebrity pull: recent posts of followed authors that were *not* fanned out
  (``delivery="pull"``), read from SQL at request time.

Hydration turns ids into posts with their authors. If Redis is down the mailbox is replaced by the
same query the rebuild uses (straight from SQL) and the response says so in ``fallbacks``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from labcore.bootstrap import Stack
from labcore.domain import Post, User
from labcore.errors import BackendUnavailable


@dataclass(frozen=True)
class FeedItem:
    post: Post
    author: User
    source: str  # "social" (mailbox), "celebrity" (pulled at read time)
    media_url: str | None


@dataclass
class FeedResult:
    user_id: str
    items: list[FeedItem]
    candidates_social: int = 0
    candidates_discovery: int = 0
    candidates_after_filter: int = 0
    fallbacks: list[str] = field(default_factory=list)
    stage_ms: dict[str, float] = field(default_factory=dict)
    latency_ms: float = 0.0


class StageTimer:
    """Collects wall time per named stage, in milliseconds."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = round((time.perf_counter() - start) * 1000, 3)


def social_candidates(stack: Stack, user_id: str, limit: int, fallbacks: list[str]) -> list[tuple[str, float, str]]:
    """``(post_id, score, source)`` newest first: mailbox plus celebrity pull, deduplicated."""
    store, mailboxes = stack.store, stack.mailboxes
    try:
        built, entries = mailboxes.read(user_id, limit)
        if not built:
            entries = store.followed_posts(user_id, "push", stack.settings.mailbox_cap)
            mailboxes.rebuild(user_id, entries)
            entries = entries[:limit]
    except BackendUnavailable:
        fallbacks.append("mailbox:sql")
        entries = store.followed_posts(user_id, "push", limit)
    pulled = store.followed_posts(user_id, "pull", stack.settings.celebrity_pull_limit)

    merged: dict[str, tuple[str, float, str]] = {}
    for post_id, score in entries:
        merged[post_id] = (post_id, score, "social")
    for post_id, score in pulled:
        merged.setdefault(post_id, (post_id, score, "celebrity"))
    return sorted(merged.values(), key=lambda c: c[1], reverse=True)[:limit]


def hydrate(
    stack: Stack, candidates: list[tuple[str, float, str]], media_url: Callable[[Post], str | None]
) -> list[FeedItem]:
    """Ids to posts with authors, in candidate order; ids whose post no longer exists are dropped."""
    posts = stack.store.get_posts([c[0] for c in candidates])
    authors = stack.store.get_users([p.author_id for p in posts.values()])
    items = []
    for post_id, _score, source in candidates:
        post = posts.get(post_id)
        if post is not None and post.author_id in authors:
            items.append(FeedItem(post, authors[post.author_id], source, media_url(post)))
    return items


def get_feed(stack: Stack, user_id: str, limit: int | None = None) -> FeedResult:
    """The social feed for ``user_id``, newest first."""
    started = time.perf_counter()
    limit = limit or stack.settings.feed_limit
    stack.store.get_user(user_id)  # NotFound for an unknown user
    timer = StageTimer()
    fallbacks: list[str] = []
    with timer.stage("stage1_retrieval"):
        candidates = social_candidates(stack, user_id, stack.settings.social_candidates, fallbacks)
    ttl = stack.settings.media_url_ttl_seconds
    with timer.stage("stage4_rerank_hydrate"):
        items = hydrate(
            stack, candidates[:limit], lambda p: stack.media.url(p.media_key, ttl) if p.media_key else None
        )
    return FeedResult(
        user_id=user_id,
        items=items,
        candidates_social=len(candidates),
        candidates_after_filter=len(candidates),
        fallbacks=fallbacks,
        stage_ms=timer.ms,
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
    )
