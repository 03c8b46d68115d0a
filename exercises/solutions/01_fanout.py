"""Reference solution of exercise 01 (fan-out with the celebrity bypass)."""

from __future__ import annotations

from labcore.adapters.redis.mailboxes import RedisMailboxes
from labcore.adapters.sql.store import SqlStore
from labcore.domain import PostCreated


def deliver(event: PostCreated, store: SqlStore, mailboxes: RedisMailboxes) -> int:
    # The push/pull decision was taken when the post was written and travels on the event; trusting
    # it (not today's follower count) means a threshold change never strands a post.
    if event.delivery == "pull":
        return 0
    followers = store.follower_ids(event.author_id)
    # One post, many mailboxes: the adapter pipelines the ZADDs (and trims, and TTLs) in chunks.
    return mailboxes.deliver(event.post_id, event.created_at, followers)
