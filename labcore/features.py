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

Both also keep the offline history (``labcore.feature_history``): each batch snapshot and each
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
— are serialized by ``labcore.feature_repo.write_lock``: the row written last is the one read last.
"""

from __future__ import annotations

import base64
import math
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pyarrow as pa
import redis
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from labcore import extensions, tracing
from labcore.adapters.sql.schema import follows, likes, posts, users
from labcore.domain import to_epoch
from labcore.errors import BackendUnavailable
from labcore.feature_history import FeatureHistory
from labcore.feature_repo import ensure_applied, offline_data_dir, write_lock
from labcore.settings import Settings

if TYPE_CHECKING:
    import feast
    from fastapi import FastAPI

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


def _vector(value: Any) -> np.ndarray | None:
    if value is None:
        return None
    array = np.asarray(value, dtype=np.float32)
    return array if array.size else None


# =================================================================================================
# Reading: the port and its two adapters
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


class FeastServerFeatures(FeatureSource):
    """Feast's feature server over HTTP (``POST /get-online-features``), short timeouts.

    Two calls per batch: ``ranking_features`` keyed by (user_id, post_id) — exactly walkthrough
    step 7 — and ``affinity_features`` keyed by (user_id, author_id) for the distinct authors.
    Any transport error, timeout or non-2xx answer is ``BackendUnavailable("features")``: the feed
    then falls back to the Redis cache.

    The embeddings are most of the payload: for 150 candidates the answer is ~1.2 MB of JSON
    (384 floats each), ~80 ms end to end against ~15 ms without them. ``include_embeddings=False``
    asks for the same views' features *minus* ``embedding`` (a feature list instead of the service
    name — same protocol); rows then carry ``embedding=None`` and the feed completes the vectors from
    the vector store, as it does for any row without one.
    """

    def __init__(
        self,
        url: str,
        timeout: float = 1.0,
        *,
        connect_timeout: float = 0.25,
        include_embeddings: bool = True,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.include_embeddings = include_embeddings
        # One pooled client: keep-alive saves a TCP handshake per feed request.
        self._client = httpx.Client(
            base_url=self.url,
            timeout=httpx.Timeout(timeout, connect=min(connect_timeout, timeout)),
        )

    def close(self) -> None:
        self._client.close()

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            # Feast's server (FastAPI) continues this trace: its spans nest under the feature fetch.
            response = self._client.post("/get-online-features", json=body, headers=tracing.inject())
            response.raise_for_status()
            return response.json()
        except httpx.HTTPStatusError as exc:
            raise BackendUnavailable(
                "features", f"feature server answered {exc.response.status_code}: {exc.response.text[:200]}"
            ) from exc
        except (httpx.HTTPError, ValueError) as exc:  # ValueError: a body that is not JSON
            raise BackendUnavailable("features", f"feature server at {self.url}: {exc!r}") from exc

    @staticmethod
    def _columns(payload: dict[str, Any]) -> dict[str, tuple[list[Any], list[str]]]:
        """Feast answers column-major: one result per feature name, one value per entity row."""
        try:
            names = payload["metadata"]["feature_names"]
            return {
                name: (result["values"], result["statuses"])
                for name, result in zip(names, payload["results"], strict=True)
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise BackendUnavailable("features", f"unexpected feature server answer: {exc!r}") from exc

    def ranking_features(self, user_id: str, posts: Sequence[tuple[str, str]]) -> RankingFeatures:
        if not posts:
            return {}
        post_ids = [post_id for post_id, _ in posts]
        entities = {"user_id": [user_id] * len(post_ids), "post_id": post_ids}
        if self.include_embeddings:
            main = self._columns(self._post({"feature_service": RANKING_SERVICE, "entities": entities}))
        else:
            main = self._columns(self._post({"features": RANKING_WITHOUT_EMBEDDING, "entities": entities}))
            main["embedding"] = ([None] * len(post_ids), ["NOT_FOUND"] * len(post_ids))
        authors = sorted({author_id for _, author_id in posts})
        affinity = self._columns(
            self._post(
                {
                    "feature_service": AFFINITY_SERVICE,
                    "entities": {"user_id": [user_id] * len(authors), "author_id": authors},
                }
            )
        )
        try:
            return self._rows(user_id, posts, authors, main, affinity)
        except (KeyError, IndexError, TypeError, ValueError) as exc:  # not the answer we asked for
            raise BackendUnavailable("features", f"unexpected feature server answer: {exc!r}") from exc

    @staticmethod
    def _rows(
        user_id: str,
        posts: Sequence[tuple[str, str]],
        authors: list[str],
        main: dict[str, tuple[list[Any], list[str]]],
        affinity: dict[str, tuple[list[Any], list[str]]],
    ) -> RankingFeatures:
        def present(columns: dict[str, tuple[list[Any], list[str]]], names: Sequence[str], i: int) -> bool:
            # Status *and* value: Feast 0.67's Redis online store answers a key it does not have
            # with status PRESENT and null values (SQLite says NOT_FOUND). These features are never
            # written as null, so a null anywhere in the group means "no row".
            return all(columns[n][1][i] == "PRESENT" and columns[n][0][i] is not None for n in names)

        user = None
        if present(main, USER_FEATURES, 0):
            user = UserStats(
                user_id,
                follower_count=int(main["follower_count"][0][0]),
                following_count=int(main["following_count"][0][0]),
                post_count=int(main["post_count"][0][0]),
                avg_engagement_rate=float(main["avg_engagement_rate"][0][0]),
            )
        by_author: dict[str, AuthorAffinity] = {}
        for i, author_id in enumerate(authors):
            if present(affinity, AFFINITY_FEATURES, i):
                by_author[author_id] = AuthorAffinity(
                    user_id,
                    author_id,
                    float(affinity["affinity_score"][0][i]),
                    int(affinity["interaction_count"][0][i]),
                )
        rows: RankingFeatures = {}
        for i, (post_id, author_id) in enumerate(posts):
            post = None
            if present(main, POST_SCALARS, i):
                post = PostStats(
                    post_id=post_id,
                    author_id=main["author_id"][0][i] or author_id,
                    like_count=int(main["like_count"][0][i]),
                    has_media=bool(main["has_media"][0][i]),
                    author_follower_count=int(main["author_follower_count"][0][i]),
                    created_at=float(main["created_at"][0][i]),
                    embedding=_vector(main["embedding"][0][i]),
                )
            rows[post_id] = FeatureRow(post_id, author_id, user, post, by_author.get(author_id))
        return rows

    def health(self) -> None:
        try:
            self._client.get("/health").raise_for_status()
        except httpx.HTTPError as exc:
            raise BackendUnavailable("features", f"feature server at {self.url}: {exc!r}") from exc


# --- the Redis feature cache ---------------------------------------------------------------------


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


# =================================================================================================
# Writing: Feast push sources + the cache
# =================================================================================================

USER_STATS_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("follower_count", pa.int64()),
        ("following_count", pa.int64()),
        ("post_count", pa.int64()),
        ("avg_engagement_rate", pa.float64()),
        ("event_timestamp", pa.timestamp("us", tz="UTC")),
    ]
)
POST_STATS_SCHEMA = pa.schema(
    [
        ("post_id", pa.string()),
        ("author_id", pa.string()),
        ("like_count", pa.int64()),
        ("has_media", pa.bool_()),
        ("author_follower_count", pa.int64()),
        ("created_at", pa.float64()),
        ("embedding", pa.list_(pa.float32())),
        ("event_timestamp", pa.timestamp("us", tz="UTC")),
    ]
)
AFFINITY_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("author_id", pa.string()),
        ("affinity_score", pa.float64()),
        ("interaction_count", pa.int64()),
        ("event_timestamp", pa.timestamp("us", tz="UTC")),
    ]
)

# view name -> (its push source, its parquet/Arrow schema)
VIEWS: dict[str, tuple[str, pa.Schema]] = {
    "user_stats": ("user_stats_push", USER_STATS_SCHEMA),
    "post_stats": ("post_stats_push", POST_STATS_SCHEMA),
    "user_author_affinity": ("user_author_affinity_push", AFFINITY_SCHEMA),
}


def _table(rows: Sequence[Any], schema: pa.Schema, computed_at: datetime) -> pa.Table:
    """Rows (dataclasses) → an Arrow table with the view's exact types, event_timestamp included."""
    columns: dict[str, list[Any]] = {name: [] for name in schema.names}
    for row in rows:
        for name in schema.names:
            if name == "event_timestamp":
                columns[name].append(computed_at)
            elif name == "embedding":
                vector = row.embedding
                columns[name].append(None if vector is None else np.asarray(vector, dtype=np.float32))
            else:
                columns[name].append(getattr(row, name))
    return pa.table(columns, schema=schema)


def _feast_error(exc: Exception) -> bool:
    """Online-store failures worth a fallback (Redis down, SQLite locked), not programming errors."""
    return isinstance(exc, (redis.RedisError, sqlite3.OperationalError, OSError))


class FeatureWriter:
    """Write feature rows to the Feast online store (push sources) and to the Redis cache.

    ``store`` may be None — e.g. a process with no access to the online store — and then only the
    cache is written. With ``history`` every write is also appended to the view's offline history
    (what Feast's ``PushMode.ONLINE_AND_OFFLINE`` would do, without its rewrite of the whole file per
    push), so training rows can be joined point-in-time. Every target is attempted; if any failed,
    ``BackendUnavailable`` is raised afterwards so the caller can log it (the next event or batch
    repairs the row).
    """

    def __init__(
        self,
        store: feast.FeatureStore | None,
        cache: RedisFeatureCache,
        *,
        history: FeatureHistory | None = None,
    ) -> None:
        self.store = store
        self.cache = cache
        self.history = history
        self.rows_written = 0

    def write_users(self, rows: Sequence[UserStats], computed_at: datetime | None = None) -> None:
        self._write("user_stats", rows, [RedisFeatureCache.user_hash(r) for r in rows], computed_at)

    def write_posts(self, rows: Sequence[PostStats], computed_at: datetime | None = None) -> None:
        self._write("post_stats", rows, [RedisFeatureCache.post_hash(r) for r in rows], computed_at)

    def write_affinity(self, rows: Sequence[AuthorAffinity], computed_at: datetime | None = None) -> None:
        hashes = [RedisFeatureCache.affinity_hash(r) for r in rows]
        self._write("user_author_affinity", rows, hashes, computed_at)

    def _write(
        self,
        view: str,
        rows: Sequence[Any],
        hashes: list[tuple[str, dict[str, str]]],
        computed_at: datetime | None,
    ) -> None:
        if not rows:
            return
        computed_at = computed_at or datetime.now(UTC)
        errors: list[str] = []
        push_source, schema = VIEWS[view]
        table = _table(rows, schema, computed_at)
        if self.store is not None:
            from feast.data_source import PushMode

            try:
                with write_lock(self.store):
                    self.store.push(push_source, table.to_pandas(), to=PushMode.ONLINE)
            except Exception as exc:
                if not _feast_error(exc):
                    raise
                errors.append(f"feast online store: {exc}")
        if self.history is not None:
            try:
                with write_lock(self.store) if self.store is not None else nullcontext():
                    self.history.append(view, table)  # under the lock: a batch's fold never races it
            except OSError as exc:
                errors.append(f"feature history: {exc}")
        try:
            self.cache.write(hashes, computed_at.timestamp())
        except BackendUnavailable as exc:
            errors.append(str(exc))
        self.rows_written += len(rows)
        if errors:
            raise BackendUnavailable("features", "; ".join(errors))


# =================================================================================================
# SQL → feature rows (shared by the batch and by freshness)
# =================================================================================================


def _epoch(ts: datetime) -> float:
    return to_epoch(ts if ts.tzinfo else ts.replace(tzinfo=UTC))


def _batches(ids: Sequence[str] | None, size: int = 500) -> Iterator[list[str] | None]:
    """``None`` (everything) once, or the ids in IN-clause-sized chunks."""
    if ids is None:
        yield None
        return
    ids = list(dict.fromkeys(ids))
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


@contextmanager
def _sql(engine: Engine) -> Iterator[Connection]:
    """A read connection with SQLAlchemy's connection errors translated at the boundary."""
    try:
        with engine.connect() as conn:
            yield conn
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        raise BackendUnavailable("sql", str(exc.orig or exc)) from exc


def user_stats_rows(engine: Engine, user_ids: Sequence[str] | None = None) -> list[UserStats]:
    """``user_stats`` from SQL (every user, or ``user_ids``): counters from ``users``; posts and
    likes received aggregated from ``posts`` — only the requested authors' posts, so a refresh after
    one like does not scan the whole table."""
    rows: list[UserStats] = []
    with _sql(engine) as conn:
        for batch in _batches(user_ids):
            per_author = sa.select(
                posts.c.user_id.label("author_id"),
                sa.func.count().label("post_count"),
                sa.func.sum(posts.c.like_count).label("likes_received"),
            ).group_by(posts.c.user_id)
            query = sa.select(users.c.id, users.c.follower_count, users.c.following_count)
            if batch is not None:
                per_author = per_author.where(posts.c.user_id.in_(batch))
                query = query.where(users.c.id.in_(batch))
            received = {r.author_id: (int(r.post_count), int(r.likes_received or 0)) for r in conn.execute(per_author)}
            for r in conn.execute(query):
                count, likes_received = received.get(r.id, (0, 0))
                rows.append(
                    UserStats(
                        user_id=r.id,
                        follower_count=int(r.follower_count),
                        following_count=int(r.following_count),
                        post_count=count,
                        avg_engagement_rate=likes_received / count if count else 0.0,
                    )
                )
    return rows


def all_post_ids(engine: Engine) -> list[str]:
    with _sql(engine) as conn:
        return list(conn.scalars(sa.select(posts.c.id)))


def post_stats_rows(
    engine: Engine, post_ids: Sequence[str] | None, embeddings: Mapping[str, np.ndarray]
) -> list[PostStats]:
    """``post_stats`` from SQL (every post, or ``post_ids``), with the embeddings the caller looked
    up — a post missing from ``embeddings`` gets ``None``, never a stand-in vector."""
    query = sa.select(
        posts.c.id,
        posts.c.user_id,
        posts.c.like_count,
        posts.c.media_key,
        posts.c.created_at,
        users.c.follower_count,
    ).select_from(posts.join(users, users.c.id == posts.c.user_id))
    rows: list[PostStats] = []
    with _sql(engine) as conn:
        for batch in _batches(post_ids):
            for r in conn.execute(query if batch is None else query.where(posts.c.id.in_(batch))):
                vector = embeddings.get(r.id)
                rows.append(
                    PostStats(
                        post_id=r.id,
                        author_id=r.user_id,
                        like_count=int(r.like_count),
                        has_media=r.media_key is not None,
                        author_follower_count=int(r.follower_count),
                        created_at=_epoch(r.created_at),
                        embedding=None if vector is None else np.asarray(vector, dtype=np.float32),
                    )
                )
    return rows


def affinity_rows(
    engine: Engine,
    pairs: Sequence[tuple[str, str]] | None = None,
    *,
    score: Callable[[int, bool], float] = affinity_score,
) -> list[AuthorAffinity]:
    """``user_author_affinity`` from likes and follows: every pair with evidence, or just ``pairs``.

    ``score`` turns a pair's evidence into its ``affinity_score`` (the ``affinity`` extension point).

    Likes on one's own posts are not affinity. A requested pair whose evidence has gone (unlike and
    unfollow) comes back with score 0 and count 0, so the stale row is overwritten, not left behind.
    """
    like_counts = (
        sa.select(likes.c.user_id, posts.c.user_id.label("author_id"), sa.func.count().label("n"))
        .select_from(likes.join(posts, posts.c.id == likes.c.post_id))
        .where(likes.c.user_id != posts.c.user_id)
        .group_by(likes.c.user_id, posts.c.user_id)
    )
    follow_pairs = sa.select(follows.c.follower_id, follows.c.followee_id)
    readers = None if pairs is None else sorted({user_id for user_id, _ in pairs})
    evidence: dict[tuple[str, str], tuple[int, bool]] = {}
    with _sql(engine) as conn:
        for batch in _batches(readers):
            lq, fq = like_counts, follow_pairs
            if batch is not None:
                lq = lq.where(likes.c.user_id.in_(batch))
                fq = fq.where(follows.c.follower_id.in_(batch))
            for r in conn.execute(lq):
                evidence[(r.user_id, r.author_id)] = (int(r.n), False)
            for r in conn.execute(fq):
                n, _ = evidence.get((r.follower_id, r.followee_id), (0, False))
                evidence[(r.follower_id, r.followee_id)] = (n, True)
    if pairs is not None:
        evidence = {pair: evidence.get(pair, (0, False)) for pair in dict.fromkeys(pairs) if pair[0] != pair[1]}
    return [
        AuthorAffinity(user_id, author_id, score(n, followed), n)
        for (user_id, author_id), (n, followed) in sorted(evidence.items())
    ]


# =================================================================================================
# Batch: SQL → parquet → feast apply → materialize (+ the cache)
# =================================================================================================


@dataclass(frozen=True)
class MaterializeReport:
    snapshot_at: datetime
    users: int
    posts: int
    posts_with_embedding: int
    affinity_pairs: int
    seconds: dict[str, float]  # per stage: sql, parquet, apply, materialize, cache


def materialize(
    settings: Settings,
    sql_engine: Engine,
    feast_store: feast.FeatureStore | None,
    cache: RedisFeatureCache,
    *,
    embeddings_for: EmbeddingsFor,
) -> MaterializeReport:
    """The batch path: SQL → parquet → ``feast apply`` (if changed) → online store, and the cache.

    ``embeddings_for(post_ids)`` returns the real vectors (the vector store provides them); posts it
    does not know keep ``embedding = None``. The snapshot time is taken before the first SQL read
    and is every row's ``event_timestamp``; Feast materializes exactly that snapshot.

    The whole run holds ``write_lock(feast_store)``: a push that comes meanwhile waits, then lands
    on top with its newer numbers, so the snapshot never overwrites a fresher row — which matters
    for the SQLite online store, which (unlike Feast's Redis store and the cache) does not compare
    timestamps. Pushes wait for the duration of a batch (~0.1 s for the tiny world).
    """
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = round(now - clock, 4)
        clock = now

    with write_lock(feast_store) if feast_store is not None else nullcontext():
        snapshot_at = datetime.now(UTC)
        user_rows = user_stats_rows(sql_engine)
        ids = all_post_ids(sql_engine)
        vectors = dict(embeddings_for(ids)) if ids else {}
        post_rows = post_stats_rows(sql_engine, None, vectors)
        pair_rows = affinity_rows(sql_engine, score=extensions.load(settings, "affinity"))
        lap("sql")

        # The snapshot becomes a part of each view's history; older parts are folded first.
        history = FeatureHistory(offline_data_dir(settings))
        for view, rows in (("user_stats", user_rows), ("post_stats", post_rows), ("user_author_affinity", pair_rows)):
            history.write_batch(view, _table(rows, VIEWS[view][1], snapshot_at))
        lap("parquet")

        if feast_store is not None:
            try:
                ensure_applied(feast_store)  # `feast apply`, when the definitions changed
                lap("apply")
                # Exactly this snapshot: every row's event_timestamp is snapshot_at.
                feast_store.materialize(snapshot_at - timedelta(seconds=1), snapshot_at + timedelta(seconds=1))
            except Exception as exc:
                if not _feast_error(exc):
                    raise
                raise BackendUnavailable("features", f"materialize: {exc}") from exc
            lap("materialize")

        stamp = snapshot_at.timestamp()
        cache.write((RedisFeatureCache.user_hash(r) for r in user_rows), stamp)
        cache.write((RedisFeatureCache.post_hash(r) for r in post_rows), stamp)
        cache.write((RedisFeatureCache.affinity_hash(r) for r in pair_rows), stamp)
        lap("cache")
    return MaterializeReport(
        snapshot_at=snapshot_at,
        users=len(user_rows),
        posts=len(post_rows),
        posts_with_embedding=sum(r.embedding is not None for r in post_rows),
        affinity_pairs=len(pair_rows),
        seconds=seconds,
    )


# =================================================================================================
# Freshness: events → rows recomputed from SQL → FeatureWriter
# =================================================================================================


class FeatureRefresh:
    """Keeps features fresh between batches, one event at a time.

    * ``posts_created({post_id: embedding})`` — the embedding worker calls it right after it embedded
      a micro-batch: each post gets ``post_stats`` (with its real ``created_at`` and vector) and its
      author's ``user_stats`` (post count, engagement rate) are rewritten.
    * ``posts_liked([(user_id, post_id), ...])`` — the engagement consumer, per batch: each post's like
      count, its author's engagement rate and the liker's affinity to the author (``post_liked`` for one).
    * ``followed(follower_id, followee_id)`` — both users' counters and the follower's affinity.
      (``author_follower_count`` of the followee's posts is refreshed by the next batch, or when the
      post itself changes: rewriting every post of a celebrity on each follow is not worth it.)

    Rows are recomputed from SQL rather than incremented, so a redelivered event is harmless. The
    SQL read and the write happen under ``write_lock(store)``, so of two refreshes of one post the
    one that read later also writes later — even on the SQLite online store, which keeps whatever
    was written last. Every write is attempted; the first failure is raised at the end.
    """

    def __init__(
        self,
        sql_engine: Engine,
        writer: FeatureWriter,
        embeddings_for: EmbeddingsFor | None = None,
        affinity: Callable[[int, bool], float] = affinity_score,
    ) -> None:
        self.engine = sql_engine
        self.writer = writer
        self.embeddings_for = embeddings_for
        self.affinity = affinity  # the ``affinity`` extension point

    def posts_created(self, embeddings: Mapping[str, np.ndarray | None]) -> None:
        post_ids = list(embeddings)
        known = {pid: v for pid, v in embeddings.items() if v is not None}
        if len(known) < len(post_ids):
            known.update(self._lookup([pid for pid in post_ids if pid not in known]))
        with self._lock():
            computed_at = datetime.now(UTC)
            rows = post_stats_rows(self.engine, post_ids, known)
            authors = user_stats_rows(self.engine, sorted({r.author_id for r in rows}))
            self._write_all(
                lambda: self.writer.write_posts(rows, computed_at),
                lambda: self.writer.write_users(authors, computed_at),
            )

    def post_liked(self, user_id: str, post_id: str) -> None:
        self.posts_liked([(user_id, post_id)])

    def posts_liked(self, likes: Sequence[tuple[str, str]]) -> None:
        """A consumer batch of likes ``(user_id, post_id)``, refreshed together: each liked post, each
        author and each liker→author pair is recomputed and written once per batch, under one lock.

        One refresh per like cost ~50 ms (SQL, three Feast writes, the lock); catching up on a seeded
        world's thousands of likes took minutes. Per batch, a like storm on one post is one refresh.
        """
        post_ids = list(dict.fromkeys(post_id for _, post_id in likes))
        if not post_ids:
            return
        vectors = self._lookup(post_ids)
        with self._lock():
            computed_at = datetime.now(UTC)
            rows = post_stats_rows(self.engine, post_ids, vectors)
            if not rows:
                return  # the posts are gone; nothing to refresh
            author_of = {row.post_id: row.author_id for row in rows}
            authors = user_stats_rows(self.engine, sorted(set(author_of.values())))
            pairs = list(dict.fromkeys((user_id, author_of[p]) for user_id, p in likes if p in author_of))
            affinity = affinity_rows(self.engine, pairs, score=self.affinity)
            self._write_all(
                lambda: self.writer.write_posts(rows, computed_at),
                lambda: self.writer.write_users(authors, computed_at),
                lambda: self.writer.write_affinity(affinity, computed_at),
            )

    def followed(self, follower_id: str, followee_id: str) -> None:
        with self._lock():
            computed_at = datetime.now(UTC)
            both = user_stats_rows(self.engine, [follower_id, followee_id])
            pair = affinity_rows(self.engine, [(follower_id, followee_id)], score=self.affinity)
            self._write_all(
                lambda: self.writer.write_users(both, computed_at),
                lambda: self.writer.write_affinity(pair, computed_at),
            )

    def _lock(self) -> AbstractContextManager[Any]:
        return write_lock(self.writer.store) if self.writer.store is not None else nullcontext()

    @staticmethod
    def _write_all(*writes: Callable[[], None]) -> None:
        failure: BackendUnavailable | None = None
        for write in writes:
            try:
                write()
            except BackendUnavailable as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def _lookup(self, post_ids: list[str]) -> dict[str, np.ndarray]:
        """Vectors from the vector store, else the cache: a like must not erase a known embedding."""
        found: dict[str, np.ndarray] = {}
        if self.embeddings_for is not None and post_ids:
            try:
                found.update(self.embeddings_for(post_ids))
            except BackendUnavailable:
                pass
        missing = [pid for pid in post_ids if pid not in found]
        if missing:
            try:
                found.update(self.writer.cache.embeddings(missing))
            except BackendUnavailable:
                pass
        return found


# =================================================================================================
# Feast's own feature server, embedded
# =================================================================================================


def feature_server_app(feast_store: feast.FeatureStore, *, registry_ttl_sec: int = 0) -> FastAPI:
    """Feast's FastAPI feature server for ``feast_store`` (``feast.feature_server.get_app``).

    Its routes are Feast's own — ``POST /get-online-features``, ``POST /push``, ``GET /health``, ...
    It needs its lifespan (it initializes the store), so serve it with ``lifespan="on"``.

    Give it a store of its own (``labcore.feature_repo.open_serving_store``), not the one that
    materializes and pushes. ``registry_ttl_sec=0`` (Feast's default is 5) stops its timer from
    re-reading the registry file, which materialize rewrites in place: a re-read mid-write serves
    "feature service does not exist" errors. Restart the server to pick up new definitions.
    """
    from feast.feature_server import get_app

    return get_app(feast_store, registry_ttl_sec=registry_ttl_sec)


class FeatureServerThread:
    """Feast's feature server in a uvicorn thread of this process (the embedded runtime, tests).

    ``feast_store`` should be a serving store (``open_serving_store``); see ``feature_server_app``.
    """

    def __init__(
        self, feast_store: feast.FeatureStore, host: str = "127.0.0.1", port: int = 6566, **app_kwargs: Any
    ) -> None:
        import uvicorn

        self.host = host
        self.port = port
        config = uvicorn.Config(
            feature_server_app(feast_store, **app_kwargs),
            host=host,
            port=port,
            log_level="warning",
            lifespan="on",
        )
        self.server: uvicorn.Server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="feature-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> FeatureServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                self.stop()
                raise BackendUnavailable("features", f"the feature server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout)
