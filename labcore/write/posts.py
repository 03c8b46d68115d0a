"""The write path: users, follows, posts and likes.

Each write validates its input, commits the row together with its outbox event in one transaction,
then nudges the outbox relay (``on_commit``) so the event reaches the log within milliseconds.
Media bytes go to the object store *before* the row is committed: a post row never points at media
that is not there (an orphaned object after a failed commit is harmless and can be swept).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from opentelemetry import trace

from labcore.adapters.sql.store import OutboxEntry
from labcore.bootstrap import Stack
from labcore.domain import (
    WRITTEN_AT,
    Event,
    Post,
    PostCreated,
    PostLiked,
    User,
    UserFollowed,
    to_epoch,
    utcnow,
)
from labcore.errors import InvalidInput, LabError, NotFound
from labcore.observability import metrics, tracing
from labcore.workers.fanout import delivery_for
from labcore.write.media import decode_media

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

USERNAME = re.compile(r"^[A-Za-z0-9_.]{1,64}$")
# Edges per transaction in the batch writes: big enough that per-transaction costs (commit, mailbox
# round trip, relay wake-up) vanish, small enough that a transaction holds the SQLite writer briefly.
BATCH_CHUNK = 1000


@dataclass(frozen=True)
class PostDraft:
    """A text post for ``WritePath.create_posts``: ids and times may be given (a seeded world's are)."""

    author_id: str
    content: str
    post_id: str | None = None
    created_at: datetime | None = None


def new_id() -> str:
    return str(uuid.uuid4())


class WritePath:
    def __init__(self, stack: Stack, on_commit: Callable[[], None] | None = None) -> None:
        self.stack = stack
        self.on_commit = on_commit or (lambda: None)

    # --- users -----------------------------------------------------------------------------------
    def create_user(self, username: str, display_name: str, *, user_id: str | None = None) -> User:
        if not USERNAME.fullmatch(username):
            raise InvalidInput("username must be 1-64 letters, digits, '_' or '.'")
        display_name = display_name.strip()
        if not display_name or len(display_name) > 128:
            raise InvalidInput("display_name must be 1-128 characters")
        return self.stack.store.create_user(user_id or new_id(), username, display_name)

    def follow(self, follower_id: str, followee_id: str) -> bool:
        """Follow; False when already following (idempotent). The follower's mailbox is rebuilt, and
        a ``UserFollowed`` event (same transaction) refreshes both users' counters and the affinity."""
        return bool(self.follow_many([(follower_id, followee_id)]))

    def follow_many(
        self, pairs: Iterable[tuple[str, str]], *, chunk_size: int = BATCH_CHUNK
    ) -> list[tuple[str, str]]:
        """``follow`` for many ``(follower_id, followee_id)`` edges; returns the new ones, in order.

        One transaction, one mailbox round trip and one relay wake-up per chunk of ``chunk_size``
        edges, with exactly what ``follow`` does per edge: existing edges are skipped and not
        counted, each new edge gets its ``UserFollowed`` event. A self-follow anywhere refuses the
        whole call before anything is written; an unknown user refuses its chunk (``NotFound``),
        while earlier chunks stay committed — follows are idempotent, so the call can be repeated.
        """
        pairs = list(dict.fromkeys(pairs))
        if any(follower == followee for follower, followee in pairs):
            raise InvalidInput("a user cannot follow themselves")
        created: list[tuple[str, str]] = []
        for start in range(0, len(pairs), chunk_size):
            new = self.stack.store.follow_many(pairs[start : start + chunk_size], _followed)
            if new:
                self._forget_mailboxes([follower for follower, _ in new])
                self.on_commit()
            created.extend(new)
        return created

    def unfollow(self, follower_id: str, followee_id: str) -> bool:
        event = UserFollowed(follower_id, followee_id, to_epoch(utcnow()), following=False)
        removed = self.stack.store.unfollow(follower_id, followee_id, [_outbox(event, None)])
        if removed:
            self._forget_mailboxes([follower_id])
            self.on_commit()
        return removed

    def _forget_mailboxes(self, user_ids: Sequence[str]) -> None:
        # The next feed read rebuilds them from the follow graph: the new followee's recent posts
        # appear, an unfollowed author's disappear. If Redis is down a stale mailbox is corrected
        # when it expires; the follows themselves are committed either way.
        try:
            self.stack.mailboxes.invalidate_many(user_ids)
        except LabError as exc:
            log.warning("could not invalidate the mailboxes of %d users: %s", len(set(user_ids)), exc)

    # --- posts -----------------------------------------------------------------------------------
    def create_post(
        self,
        user_id: str,
        content: str,
        media_base64: str | None = None,
        media_type: str | None = None,
        *,
        post_id: str | None = None,
        created_at: datetime | None = None,
        headers: dict[str, str] | None = None,
    ) -> Post:
        with tracer.start_as_current_span("create_post", attributes={"user_id": user_id}) as span:
            post = self._create_post(user_id, content, media_base64, media_type, post_id, created_at, headers)
            span.set_attributes({"post_id": post.id, "delivery": post.delivery, "has_media": post.media_key is not None})
        metrics.POST_INGESTION.labels(post.delivery).inc()
        return post

    def _create_post(
        self,
        user_id: str,
        content: str,
        media_base64: str | None,
        media_type: str | None,
        post_id: str | None,
        created_at: datetime | None,
        headers: dict[str, str] | None,
    ) -> Post:
        settings = self.stack.settings
        content = self._checked_content(content)
        if (media_base64 is None) != (media_type is None):
            raise InvalidInput("media_base64 and media_type go together")

        author = self.stack.store.get_user(user_id)  # NotFound for an unknown author
        post_id = post_id or new_id()
        media_key = stored_type = None
        if media_base64 is not None:
            media = decode_media(media_base64, media_type or "", settings.media_max_bytes)
            media_key = f"posts/{post_id}.{media.extension}"
            with tracer.start_as_current_span("media.put", attributes={"bytes": len(media.data)}):
                self.stack.media.put(media_key, media.data, media.content_type)
            stored_type = media.content_type

        post = Post(
            id=post_id,
            author_id=author.id,
            content=content,
            created_at=created_at or utcnow(),
            delivery=delivery_for(author.follower_count, settings.celebrity_threshold),  # type: ignore[arg-type]
            media_key=media_key,
            media_type=stored_type,
        )
        outbox = _outbox(_post_created(post), headers)  # carries create_post's context, so the workers nest under it
        with tracer.start_as_current_span("sql.add_post"):
            self.stack.store.add_post(post, [outbox])
        self.on_commit()
        return post

    def create_posts(self, drafts: Iterable[PostDraft], *, chunk_size: int = BATCH_CHUNK) -> list[Post]:
        """``create_post`` for many text posts; returns them, in order.

        One author lookup, one transaction (rows and ``PostCreated`` events) and one relay wake-up
        per chunk, each post's delivery decided from its author's follower count as ``create_post``
        does. Every content is checked before anything is written (``InvalidInput``); an unknown
        author (``NotFound``) or an existing post id (``Conflict``) refuses its chunk, while earlier
        chunks stay committed.
        """
        drafts = list(drafts)
        contents = [self._checked_content(draft.content) for draft in drafts]
        threshold = self.stack.settings.celebrity_threshold
        created: list[Post] = []
        for start in range(0, len(drafts), chunk_size):
            chunk = list(zip(drafts[start : start + chunk_size], contents[start : start + chunk_size]))
            with tracer.start_as_current_span("create_posts", attributes={"posts": len(chunk)}):
                authors = self.stack.store.get_users([draft.author_id for draft, _ in chunk])
                for draft, _ in chunk:
                    if draft.author_id not in authors:
                        raise NotFound(f"user {draft.author_id} not found")
                posts = [
                    Post(
                        id=draft.post_id or new_id(),
                        author_id=draft.author_id,
                        content=content,
                        created_at=draft.created_at or utcnow(),
                        delivery=delivery_for(authors[draft.author_id].follower_count, threshold),  # type: ignore[arg-type]
                    )
                    for draft, content in chunk
                ]
                with tracer.start_as_current_span("sql.add_posts"):
                    self.stack.store.add_posts(posts, [_outbox(_post_created(post), None) for post in posts])
            self.on_commit()
            for delivery, n in Counter(post.delivery for post in posts).items():
                metrics.POST_INGESTION.labels(delivery).inc(n)
            created.extend(posts)
        return created

    def _checked_content(self, content: str) -> str:
        content = content.strip()
        if not content:
            raise InvalidInput("content must not be empty")
        limit = self.stack.settings.content_max_chars
        if len(content) > limit:
            raise InvalidInput(f"content is longer than {limit} characters")
        return content

    def like(self, user_id: str, post_id: str, *, headers: dict[str, str] | None = None) -> bool:
        """Like; False when already liked (idempotent, no second event)."""
        with tracer.start_as_current_span("like", attributes={"user_id": user_id, "post_id": post_id}):
            return self._like(user_id, post_id, headers)

    def _like(self, user_id: str, post_id: str, headers: dict[str, str] | None) -> bool:
        post = self.stack.store.get_post(post_id)
        event = PostLiked(user_id=user_id, post_id=post.id, author_id=post.author_id, liked_at=to_epoch(utcnow()))
        created = self.stack.store.like(user_id, post_id, [_outbox(event, headers)])
        if created:
            self.on_commit()
        return created

    def like_many(
        self, pairs: Iterable[tuple[str, str]], *, chunk_size: int = BATCH_CHUNK
    ) -> list[tuple[str, str]]:
        """``like`` for many ``(user_id, post_id)`` pairs; returns the new likes, in order.

        One transaction and one relay wake-up per chunk, one ``PostLiked`` event per new like;
        existing likes are skipped and not counted. An unknown user or post refuses its chunk
        (``NotFound``); earlier chunks stay committed (likes are idempotent).
        """
        pairs = list(dict.fromkeys(pairs))
        created: list[tuple[str, str]] = []
        for start in range(0, len(pairs), chunk_size):
            new = self.stack.store.like_many(pairs[start : start + chunk_size], _liked)
            if new:
                self.on_commit()
            created.extend(new)
        return created

    def media_url(self, post: Post) -> str | None:
        if not post.media_key:
            return None
        return self.stack.media.url(post.media_key, self.stack.settings.media_url_ttl_seconds)


def _post_created(post: Post) -> PostCreated:
    return PostCreated(
        post_id=post.id,
        author_id=post.author_id,
        content=post.content,
        created_at=to_epoch(post.created_at),
        delivery=post.delivery,
        has_media=post.media_key is not None,
    )


def _followed(follower_id: str, followee_id: str) -> list[OutboxEntry]:
    return [_outbox(UserFollowed(follower_id, followee_id, to_epoch(utcnow()), following=True), None)]


def _liked(user_id: str, post_id: str, author_id: str) -> list[OutboxEntry]:
    return [_outbox(PostLiked(user_id=user_id, post_id=post_id, author_id=author_id, liked_at=to_epoch(utcnow())), None)]


def _outbox(event: Event, headers: dict[str, str] | None) -> OutboxEntry:
    """The event's outbox row; its headers carry the current trace context and the write time."""
    headers = tracing.inject(headers) | {WRITTEN_AT: f"{time.time():.6f}"}
    return OutboxEntry(topic=event.topic, key=event.key, payload=event.to_dict(), headers=headers)
