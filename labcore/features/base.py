"""Ranking features: Feast online (primary), the Redis feature cache (fallback), and how both stay fresh.

The feed's stage 3 needs, per candidate post, three groups of features:

* **user-level** (``user_stats``): the reader's follower/following/post counts and how many likes
  their own posts get on average (``avg_engagement_rate`` — the ranker's affinity proxy);
* **post-level** (``post_stats``): author, like count, media, the author's follower count, the post's
  real ``created_at`` (so recency is real) and its real 384-d embedding (so the app can compute
  ``topic_similarity`` = cosine(interest vector, embedding));
* **affinity** (``user_author_affinity``): how much this reader engages with this author.

Reading them (``FeatureSource``):

``FeastServerFeatures``  Feast's feature server over HTTP, in Feast's own protocol — ``POST
                         /get-online-features`` with ``feature_service: ranking_features`` and
                         ``{user_id, post_id}`` (walkthrough step 7), then ``affinity_features``
                         with ``{user_id, author_id}``. Why two services: see the definitions'
                         docstring (``services/feature_store/repo/definitions.py``).
``RedisFeatureCache``    the fallback when Feast is down: hashes ``uf:{user_id}``, ``pf:{post_id}``
                         and ``ua:{user_id}:{author_id}``, all read in one pipelined round trip.

Writing them — both stores always get the same rows, so the fallback is as fresh as Feast:

``materialize``   batch: SQL → pandas → parquet (``<data_dir>/feast/data``) → ``feast apply`` →
                  ``FeatureStore.materialize`` into the online store, plus the Redis cache.
``FeatureWriter`` freshness: rows pushed through Feast's push sources to the online store *and*
                  written to the cache, so a post created a moment ago has features within a second.

Both also keep the offline history (``labcore.features.history``): each batch snapshot and each
pushed row is a part of the view's parquet dataset, so Feast's point-in-time join can answer "what
was the like count at 10:00" for a training row — not just "what is it now".
``FeatureRefresh`` turns events (posts created, a like, a follow) into rows recomputed from SQL —
                  the source of truth, so a redelivered event rewrites the same numbers (idempotent).

Affinity formula (batch and fresh alike)::

    evidence       = likes by the user on the author's posts + 0.5 · (1 if the user follows the author)
    affinity_score = 1 − exp(−evidence / 3)        # in [0, 1): 1 like ≈ 0.28, 3 likes ≈ 0.63,
                                                   # following alone ≈ 0.15, 10 likes ≈ 0.97
    interaction_count = likes by the user on the author's posts

A saturating curve, because the tenth like says much less than the first. Pairs with no evidence
have no row: the ranker sees "no affinity known" and uses its proxy, instead of a made-up zero.

Ordering: every row carries the time it was computed, taken just *before* its SQL read. Feast's
Redis online store and this cache keep the newer row per key. Feast's SQLite online store keeps
whatever was written last, so in one process all Feast writes — a batch, each event's read-and-write
— are serialized by ``labcore.features.repo.write_lock``: the row written last is the one read last.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

EmbeddingsFor = Callable[[Sequence[str]], Mapping[str, np.ndarray]]

RANKING_SERVICE = "ranking_features"
AFFINITY_SERVICE = "affinity_features"

# Affinity: a like is one unit of evidence, following the author half a unit.
AFFINITY_SCALE = 3.0
FOLLOW_EVIDENCE = 0.5


def affinity_score(likes_on_author: int, follows_author: bool) -> float:
    """1 − exp(−(likes + 0.5·follows) / 3): saturating, in [0, 1)."""
    evidence = likes_on_author + (FOLLOW_EVIDENCE if follows_author else 0.0)
    return 1.0 - math.exp(-evidence / AFFINITY_SCALE)


# =================================================================================================
# Rows
# =================================================================================================


@dataclass(frozen=True)
class UserStats:
    """``user_stats``: one reader (or author)."""

    user_id: str
    follower_count: int
    following_count: int
    post_count: int
    avg_engagement_rate: float  # likes received per post


@dataclass(frozen=True, eq=False)
class PostStats:
    """``post_stats``: one post. ``embedding`` is float32, or None before the embedding worker ran."""

    post_id: str
    author_id: str
    like_count: int
    has_media: bool
    author_follower_count: int
    created_at: float  # epoch seconds
    embedding: np.ndarray | None = None

    def __eq__(self, other: object) -> bool:  # numpy arrays do not compare with ==
        if not isinstance(other, PostStats):
            return NotImplemented
        same_vector = (self.embedding is None and other.embedding is None) or (
            self.embedding is not None
            and other.embedding is not None
            and np.array_equal(self.embedding, other.embedding)
        )
        scalars = [f.name for f in fields(self) if f.name != "embedding"]
        return same_vector and all(getattr(self, n) == getattr(other, n) for n in scalars)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class AuthorAffinity:
    """``user_author_affinity``: one (reader, author) pair with some evidence."""

    user_id: str
    author_id: str
    affinity_score: float
    interaction_count: int


@dataclass(frozen=True)
class FeatureRow:
    """Everything known about one candidate for one reader; a part is None when no row exists."""

    post_id: str
    author_id: str
    user: UserStats | None
    post: PostStats | None
    affinity: AuthorAffinity | None

    def as_features(self) -> dict[str, Any]:
        """A flat mapping for the ranker, with only the values that exist (``embedding`` included
        as an ndarray for the app's topic similarity; the feed pops it before ranking)."""
        values: dict[str, Any] = {}
        if self.user is not None:
            values.update(
                follower_count=self.user.follower_count,
                following_count=self.user.following_count,
                post_count=self.user.post_count,
                avg_engagement_rate=self.user.avg_engagement_rate,
            )
        if self.post is not None:
            values.update(
                like_count=self.post.like_count,
                has_media=1.0 if self.post.has_media else 0.0,
                author_follower_count=self.post.author_follower_count,
                created_at=self.post.created_at,
            )
            if self.post.embedding is not None:
                values["embedding"] = self.post.embedding
        if self.affinity is not None:
            values.update(
                affinity_score=self.affinity.affinity_score,
                interaction_count=self.affinity.interaction_count,
            )
        return values


# What ``FeatureSource.ranking_features`` returns: one row per requested candidate, by post id.
RankingFeatures = dict[str, FeatureRow]

USER_FEATURES = ("follower_count", "following_count", "post_count", "avg_engagement_rate")
POST_FEATURES = (
    "author_id", "like_count", "has_media", "author_follower_count", "created_at", "embedding",
)  # fmt: skip
AFFINITY_FEATURES = ("affinity_score", "interaction_count")
POST_SCALARS = tuple(name for name in POST_FEATURES if name != "embedding")  # embedding may be null
# ``ranking_features`` as an explicit feature list, minus the (large) embedding.
RANKING_WITHOUT_EMBEDDING = [f"user_stats:{name}" for name in USER_FEATURES] + [
    f"post_stats:{name}" for name in POST_FEATURES if name != "embedding"
]


def as_vector(value: Any) -> np.ndarray | None:
    if value is None:
        return None
    array = np.asarray(value, dtype=np.float32)
    return array if array.size else None


# =================================================================================================
# Reading: the port (adapters: features.feast, features.cache)
# =================================================================================================


class FeatureSource(ABC):
    """Online ranking features for one reader and a batch of candidate posts."""

    @abstractmethod
    def ranking_features(self, user_id: str, posts: Sequence[tuple[str, str]]) -> RankingFeatures:
        """Rows for ``posts`` = ``[(post_id, author_id), ...]``; every requested post gets a row.

        Raises ``BackendUnavailable("features")`` when the backend cannot answer.
        """

    @abstractmethod
    def health(self) -> None:
        """Raise ``BackendUnavailable`` unless the backend answers."""
