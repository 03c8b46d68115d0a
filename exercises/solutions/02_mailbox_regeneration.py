"""Reference solution of exercise 02 (mailbox regeneration)."""

from __future__ import annotations

from labcore.adapters.redis.mailboxes import RedisMailboxes
from labcore.adapters.sql.store import SqlStore


def read_mailbox(
    user_id: str, store: SqlStore, mailboxes: RedisMailboxes, *, limit: int, cap: int
) -> list[tuple[str, float]]:
    # One round trip answers both "is it built?" and "what is in it?".
    built, entries = mailboxes.read(user_id, limit)
    if built:
        return entries
    # Rebuild from the follow graph: only pushed posts belong in a mailbox (celebrities' posts are
    # merged at read time). `rebuild` merges (ZADD) rather than replaces, so whatever the fan-out
    # wrote into the expired mailbox meanwhile stays, and it sets the built marker.
    # Redis errors are not caught here: they are the feed's `mailbox:sql` fallback.
    rebuilt = store.followed_posts(user_id, "push", cap)
    mailboxes.rebuild(user_id, rebuilt)
    return rebuilt[:limit]
