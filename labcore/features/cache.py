"""The Redis feature cache: the fallback when Feast is down, written alongside Feast.

Hashes ``uf:{user_id}``, ``pf:{post_id}`` and ``ua:{user_id}:{author_id}``, all read in one pipelined
round trip. Every write carries the time its row was computed and only replaces an older row, so the
cache keeps the newest value per key whatever order writes arrive in.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import redis

from labcore.errors import BackendUnavailable
from labcore.features.base import (
    AFFINITY_FEATURES,
    POST_FEATURES,
    USER_FEATURES,
    AuthorAffinity,
    FeatureRow,
    FeatureSource,
    PostStats,
    RankingFeatures,
    UserStats,
)


def user_key(user_id: str) -> str:
    return f"uf:{user_id}"


def post_key(post_id: str) -> str:
    return f"pf:{post_id}"


def affinity_key(user_id: str, author_id: str) -> str:
    return f"ua:{user_id}:{author_id}"


TS_FIELD = "_ts"

# HSET only if the row is at least as new as what is stored (see "Ordering" in the module docstring).
_NEWER_WINS = """
local current = redis.call('HGET', KEYS[1], '_ts')
if current and tonumber(current) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], '_ts', ARGV[1], unpack(ARGV, 2))
return 1
"""


def _encode_vector(vector: np.ndarray) -> str:
    # base64 text, not raw bytes: works whether or not the client decodes responses.
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def _decode_vector(text: str | bytes | None) -> np.ndarray | None:
    if not text:
        return None
    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float32)


def _complete(reply: Sequence[str | bytes | None]) -> list[str] | None:
    """HMGET's values as text, or None when any is missing (no row, or not one we wrote)."""
    if any(value is None for value in reply):
        return None
    return [value.decode() if isinstance(value, bytes) else str(value) for value in reply]


class RedisFeatureCache(FeatureSource):
    """The Redis feature cache: the fallback ``FeatureSource`` and the second target of every write.

    ``uf:{user_id}``               follower_count, following_count, post_count, avg_engagement_rate
    ``pf:{post_id}``               author_id, like_count, has_media (0/1), author_follower_count,
                                   created_at (epoch s), embedding (base64 of little-endian float32)
    ``ua:{user_id}:{author_id}``   affinity_score, interaction_count

    Every hash also keeps ``_ts``, the time its row was computed; writes go through a small Lua
    script that refuses an older row. No TTL: the cache mirrors the online store, which has none.
    """

    def __init__(self, client: redis.Redis, *, chunk_size: int = 1000) -> None:
        self.client = client
        self.chunk_size = chunk_size
        self._newer_wins = client.register_script(_NEWER_WINS)

    # --- reading ---------------------------------------------------------------------------------
    def ranking_features(self, user_id: str, posts: Sequence[tuple[str, str]]) -> RankingFeatures:
        if not posts:
            return {}
        authors = sorted({author_id for _, author_id in posts})
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.hmget(user_key(user_id), list(USER_FEATURES))
            for post_id, _ in posts:
                pipe.hmget(post_key(post_id), list(POST_FEATURES))
            for author_id in authors:
                pipe.hmget(affinity_key(user_id, author_id), list(AFFINITY_FEATURES))
            replies = pipe.execute()
        except redis.RedisError as exc:
            raise BackendUnavailable("features", f"redis feature cache: {exc}") from exc
        user_reply, post_replies, affinity_replies = replies[0], replies[1 : 1 + len(posts)], replies[1 + len(posts) :]
        user = self._user(user_id, user_reply)
        by_author = {
            author_id: row
            for author_id, reply in zip(authors, affinity_replies, strict=True)
            if (row := self._affinity(user_id, author_id, reply)) is not None
        }
        return {
            post_id: FeatureRow(post_id, author_id, user, self._post(post_id, reply), by_author.get(author_id))
            for (post_id, author_id), reply in zip(posts, post_replies, strict=True)
        }

    def embeddings(self, post_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached embeddings of ``post_ids`` (those that have one)."""
        if not post_ids:
            return {}
        try:
            pipe = self.client.pipeline(transaction=False)
            for post_id in post_ids:
                pipe.hget(post_key(post_id), "embedding")
            replies = pipe.execute()
        except redis.RedisError as exc:
            raise BackendUnavailable("features", f"redis feature cache: {exc}") from exc
        found = {pid: _decode_vector(reply) for pid, reply in zip(post_ids, replies, strict=True)}
        return {pid: vector for pid, vector in found.items() if vector is not None}

    def health(self) -> None:
        try:
            self.client.ping()
        except redis.RedisError as exc:
            raise BackendUnavailable("features", f"redis feature cache: {exc}") from exc

    @staticmethod
    def _user(user_id: str, reply: list[Any]) -> UserStats | None:
        if (values := _complete(reply)) is None:
            return None
        follower, following, count, rate = values
        return UserStats(user_id, int(follower), int(following), int(count), float(rate))

    @staticmethod
    def _post(post_id: str, reply: list[Any]) -> PostStats | None:
        if (values := _complete(reply[:-1])) is None:  # the embedding may be absent
            return None
        author, like_count, has_media, author_followers, created_at = values
        return PostStats(
            post_id=post_id,
            author_id=author,
            like_count=int(like_count),
            has_media=has_media == "1",
            author_follower_count=int(author_followers),
            created_at=float(created_at),
            embedding=_decode_vector(reply[-1]),
        )

    @staticmethod
    def _affinity(user_id: str, author_id: str, reply: list[Any]) -> AuthorAffinity | None:
        if (values := _complete(reply)) is None:
            return None
        return AuthorAffinity(user_id, author_id, float(values[0]), int(values[1]))

    # --- writing ---------------------------------------------------------------------------------
    def write(self, items: Iterable[tuple[str, dict[str, str]]], computed_at: float) -> int:
        """Write ``(key, fields)`` hashes newer-wins, pipelined ``chunk_size`` at a time.

        Returns how many hashes were written (older ones are skipped).
        """
        written = 0
        stamp = repr(float(computed_at))
        try:
            pipe = self.client.pipeline(transaction=False)
            pending = 0
            for key, mapping in items:
                args = [stamp]
                for name, value in mapping.items():
                    args += [name, value]
                self._newer_wins(keys=[key], args=args, client=pipe)
                pending += 1
                if pending >= self.chunk_size:
                    written += sum(pipe.execute())
                    pending = 0
            if pending:
                written += sum(pipe.execute())
        except redis.RedisError as exc:
            raise BackendUnavailable("features", f"redis feature cache: {exc}") from exc
        return written

    @staticmethod
    def user_hash(row: UserStats) -> tuple[str, dict[str, str]]:
        return user_key(row.user_id), {
            "follower_count": str(row.follower_count),
            "following_count": str(row.following_count),
            "post_count": str(row.post_count),
            "avg_engagement_rate": repr(float(row.avg_engagement_rate)),
        }

    @staticmethod
    def post_hash(row: PostStats) -> tuple[str, dict[str, str]]:
        mapping = {
            "author_id": row.author_id,
            "like_count": str(row.like_count),
            "has_media": "1" if row.has_media else "0",
            "author_follower_count": str(row.author_follower_count),
            "created_at": repr(float(row.created_at)),
        }
        if row.embedding is not None:  # never erase a stored vector with "unknown"
            mapping["embedding"] = _encode_vector(row.embedding)
        return post_key(row.post_id), mapping

    @staticmethod
    def affinity_hash(row: AuthorAffinity) -> tuple[str, dict[str, str]]:
        return affinity_key(row.user_id, row.author_id), {
            "affinity_score": repr(float(row.affinity_score)),
            "interaction_count": str(row.interaction_count),
        }
