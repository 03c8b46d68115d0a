"""Interest vectors: what a user likes, as one unit vector in the posts' embedding space.

Discovery searches the vector store with it. It lives in Redis under ``iv:{user_id}`` and moves with
every like by an exponential moving average,

    v ← normalize((1 - rate) · v + rate · e)        e = the liked post's embedding,

so recent likes weigh most and an old interest fades by ``(1 - rate)`` per like. A user without a
vector gets a cold-start one: the mean of recent posts by the authors they follow, else of the most
liked posts overall — never random noise. No posts (or none embedded yet) means no vector: ``None``.

Storage: the 384 float32s (little-endian) are base64-encoded into a 2 KiB string. The stack's Redis
client decodes replies as UTF-8 text, which raw float bytes are not; base64 works with that shared
client in either decoding mode, instead of a second connection pool just for these keys.

Updates are read-modify-write. That is safe because ``engagements`` is keyed by user: one user's
likes are handled in order by a single consumer. Replaying a batch after a crash can apply a like
twice, which moves the vector one extra step toward a post the user did like — a tolerable error for
a soft signal.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import numpy as np
import redis

from labcore.adapters.redis.mailboxes import redis_errors
from labcore.adapters.sql.store import SqlStore
from labcore.adapters.vectors.base import VectorStore
from labcore.embeddings import normalize

# Cold start averages this many posts: enough to smooth out one odd post, recent enough to matter.
COLD_START_POSTS = 50
_DTYPE = np.dtype("<f4")


def interest_key(user_id: str) -> str:
    return f"iv:{user_id}"


def encode_vector(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype=_DTYPE).tobytes()).decode("ascii")


def decode_vector(value: str | bytes) -> np.ndarray:
    return np.frombuffer(base64.b64decode(value), dtype=_DTYPE).astype(np.float32)


def ema_step(current: np.ndarray | None, liked: np.ndarray, rate: float) -> np.ndarray:
    """One like's move: ``normalize((1 - rate)·current + rate·liked)``; starts at ``liked``."""
    liked = normalize(liked)
    if current is None:
        return liked
    try:
        return normalize((1.0 - rate) * np.asarray(current, dtype=np.float32) + rate * liked)
    except ValueError:  # exactly opposite vectors at rate 0.5 cancel out: follow the new like
        return liked


def popular_post_ids(store: SqlStore, limit: int) -> list[str]:
    """The most liked posts overall (newest first among equals): the cold start of last resort."""
    return store.most_liked_post_ids(limit)


def followed_post_ids(store: SqlStore, user_id: str, limit: int) -> list[str]:
    """Newest posts by the authors ``user_id`` follows, fanned-out and celebrity ones alike."""
    entries = store.followed_posts(user_id, "push", limit) + store.followed_posts(user_id, "pull", limit)
    entries.sort(key=lambda entry: entry[1], reverse=True)
    return [post_id for post_id, _ in entries[:limit]]


class InterestVectors:
    """Per-user interest vectors in Redis (``iv:{user_id}``); see the module docstring."""

    def __init__(
        self,
        client: redis.Redis,
        rate: float = 0.2,
        step: Callable[[np.ndarray | None, np.ndarray, float], np.ndarray] = ema_step,
    ) -> None:
        """``step`` moves a vector for one like (the ``interest_update`` extension point)."""
        if not 0.0 < rate <= 1.0:
            raise ValueError(f"interest rate must be in (0, 1], got {rate}")
        self.client = client
        self.rate = rate
        self.step = step

    def get(self, user_id: str) -> np.ndarray | None:
        with redis_errors():
            value = self.client.get(interest_key(user_id))
        return None if value is None else decode_vector(value)

    def set(self, user_id: str, vector: np.ndarray) -> None:
        with redis_errors():
            self.client.set(interest_key(user_id), encode_vector(vector))

    def delete(self, user_id: str) -> None:
        with redis_errors():
            self.client.delete(interest_key(user_id))

    def update_from_like(self, user_id: str, post_vector: np.ndarray) -> np.ndarray:
        """Move the user's vector toward a liked post's; returns (and stores) the new vector."""
        vector = self.step(self.get(user_id), post_vector, self.rate)
        self.set(user_id, vector)
        return vector

    def cold_start(
        self, user_id: str, store: SqlStore, vectors: VectorStore, *, limit: int = COLD_START_POSTS
    ) -> np.ndarray | None:
        """A first vector from followed authors' recent posts, else the most liked posts; stored.

        ``None`` (and nothing stored) when none of those posts has been embedded yet, e.g. an empty
        world: the next request tries again instead of freezing an empty guess.
        """
        sources = (lambda: followed_post_ids(store, user_id, limit), lambda: popular_post_ids(store, limit))
        for post_ids_of in sources:  # the popular query runs only when the follows give nothing
            post_ids = post_ids_of()
            found = vectors.vectors(post_ids) if post_ids else {}
            if not found:
                continue
            try:
                vector = normalize(np.mean(np.stack(list(found.values())), axis=0))
            except ValueError:  # the posts cancel out exactly: no direction to start from
                continue
            self.set(user_id, vector)
            return vector
        return None

    def for_user(self, user_id: str, store: SqlStore, vectors: VectorStore) -> np.ndarray | None:
        """The user's vector, cold-starting it on first use."""
        current = self.get(user_id)
        return current if current is not None else self.cold_start(user_id, store, vectors)
