"""The fallback when the OLAP store is down: each user's recent impressions in Redis.

One sorted set per user, ``seen:{user_id}``: members are post ids, scores the time they were seen
(epoch seconds). Every write trims the set to the window (24 h by default) and to the ``cap`` newest,
and sets the key to expire one window after the newest impression, so memory stays bounded per user
and idle users cost nothing.

The API writes here before it publishes the events, so the filter knows about an impression within
milliseconds, before the OLAP store has loaded it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import redis

from labcore.adapters.impressions.base import ImpressionStore
from labcore.adapters.redis.mailboxes import redis_errors
from labcore.domain import ImpressionLogged


def seen_key(user_id: str) -> str:
    return f"seen:{user_id}"


class RedisRecentImpressions(ImpressionStore):
    def __init__(self, client: redis.Redis, *, cap: int = 1000, window_seconds: float = 24 * 3600) -> None:
        self.client = client
        self.cap = cap
        self.window = window_seconds

    def record(self, impressions: Sequence[ImpressionLogged], now: float | None = None) -> None:
        """Add impressions, trimming each touched set to the window before ``now`` and to ``cap``."""
        newest: dict[str, dict[str, float]] = {}
        for impression in impressions:
            posts = newest.setdefault(impression.user_id, {})
            posts[impression.post_id] = max(posts.get(impression.post_id, 0.0), float(impression.seen_at))
        if not newest:
            return
        cutoff = (time.time() if now is None else now) - self.window
        pipe = self.client.pipeline(transaction=False)
        for user_id, posts in newest.items():
            key = seen_key(user_id)
            # GT: a replayed, older impression never moves a post's time back (Redis >= 6.2).
            pipe.zadd(key, posts, gt=True)
            pipe.zremrangebyscore(key, "-inf", f"({cutoff}")
            pipe.zremrangebyrank(key, 0, -(self.cap + 1))  # keep the newest `cap`
            pipe.expire(key, math.ceil(self.window))
        with redis_errors():
            pipe.execute()

    def seen_since(
        self, user_id: str, since_epoch: float, post_ids: Sequence[str] | None = None
    ) -> set[str]:
        # Floored like the OLAP query (labcore.adapters.impressions.query), so every backend draws the same line.
        since = math.floor(since_epoch)
        key = seen_key(user_id)
        if post_ids is None:
            with redis_errors():
                members = self.client.zrangebyscore(key, since, "+inf")
            return {_text(member) for member in members}
        unique = list(dict.fromkeys(post_ids))
        if not unique:
            return set()
        with redis_errors():
            scores = self.client.zmscore(key, unique)  # one round trip for all candidates
        return {post_id for post_id, score in zip(unique, scores) if score is not None and score >= since}

    def health(self) -> None:
        with redis_errors():
            self.client.ping()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
