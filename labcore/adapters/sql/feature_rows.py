"""The SQL that computes feature rows from the source of truth: users, follows, posts and likes.

Shared by the batch (``labcore.features.batch``) and the event-driven refresh
(``labcore.workers.features``), so a refreshed row is exactly what the next batch would write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from labcore.adapters.sql.schema import follows, likes, posts, users
from labcore.domain import to_epoch
from labcore.errors import BackendUnavailable
from labcore.features.base import AuthorAffinity, PostStats, UserStats, affinity_score


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
