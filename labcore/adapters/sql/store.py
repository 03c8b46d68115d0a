"""SqlStore: users, follows, posts, likes and the outbox on any SQLAlchemy database.

One adapter serves both profiles — a SQLite file (embedded) and MySQL/TiDB via pymysql (compose;
MariaDB in CI) — because SQLAlchemy Core already speaks both. Every write that other components must
hear about inserts its outbox row in the *same transaction*, which is what makes the write path
lossless: the relay (``labcore.write.outbox``) publishes committed rows, and only committed rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from labcore.adapters.sql.schema import follows, likes, metadata, outbox, posts, users
from labcore.domain import Post, User, to_epoch, utcnow
from labcore.errors import BackendUnavailable, Conflict, InvalidInput, NotFound


@dataclass(frozen=True)
class OutboxEntry:
    topic: str
    key: str
    payload: dict[str, Any]
    headers: dict[str, str]
    id: int | None = None


def make_engine(url: str) -> Engine:
    """An engine tuned per backend: WAL and a busy timeout for SQLite, pre-ping for MySQL."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=8
        )

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            # WAL lets the API read while the workers write; foreign keys are off by default.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_recycle=3600, pool_size=8)


def _aware(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts


def _naive(ts: datetime) -> datetime:
    """Store UTC without tzinfo: MySQL DATETIME has no zone, and SQLite must compare alike."""
    return ts.astimezone(UTC).replace(tzinfo=None)


def _user(row: Any) -> User:
    return User(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        created_at=_aware(row.created_at),
        follower_count=row.follower_count,
        following_count=row.following_count,
    )


def _post(row: Any) -> Post:
    return Post(
        id=row.id,
        author_id=row.user_id,
        content=row.content,
        created_at=_aware(row.created_at),
        delivery=row.delivery,
        media_key=row.media_key,
        media_type=row.media_type,
        like_count=row.like_count,
    )


class SqlStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def from_url(cls, url: str) -> SqlStore:
        return cls(make_engine(url))

    # --- plumbing --------------------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """A transaction with SQLAlchemy's connection errors translated at the boundary."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            raise BackendUnavailable("sql", str(exc.orig or exc)) from exc

    def create_schema(self) -> None:
        with self._tx() as conn:
            metadata.create_all(conn)

    def drop_schema(self) -> None:
        with self._tx() as conn:
            metadata.drop_all(conn)

    def health(self) -> None:
        with self._tx() as conn:
            conn.execute(sa.text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()

    # --- users and the follow graph -------------------------------------------------------------
    def create_user(self, user_id: str, username: str, display_name: str) -> User:
        now = utcnow()
        try:
            with self._tx() as conn:
                conn.execute(
                    users.insert().values(
                        id=user_id,
                        username=username,
                        display_name=display_name,
                        follower_count=0,
                        following_count=0,
                        created_at=_naive(now),
                    )
                )
        except sa.exc.IntegrityError as exc:
            raise Conflict(f"username {username!r} is already taken") from exc
        return User(user_id, username, display_name, now)

    def get_user(self, user_id: str) -> User:
        with self._tx() as conn:
            row = conn.execute(sa.select(users).where(users.c.id == user_id)).first()
        if row is None:
            raise NotFound(f"user {user_id} not found")
        return _user(row)

    def _require_users(self, conn: Connection, *user_ids: str) -> None:
        found = set(conn.scalars(sa.select(users.c.id).where(users.c.id.in_(user_ids))))
        for user_id in user_ids:
            if user_id not in found:
                raise NotFound(f"user {user_id} not found")

    def follow(self, follower_id: str, followee_id: str, events: Sequence[OutboxEntry] = ()) -> bool:
        """Create the edge and enqueue its events; False (and no events) when it already existed."""
        if follower_id == followee_id:
            raise InvalidInput("a user cannot follow themselves")
        try:
            with self._tx() as conn:
                self._require_users(conn, follower_id, followee_id)
                exists = conn.execute(
                    sa.select(follows.c.follower_id).where(
                        follows.c.follower_id == follower_id, follows.c.followee_id == followee_id
                    )
                ).first()
                if exists:
                    return False
                conn.execute(
                    follows.insert().values(
                        follower_id=follower_id, followee_id=followee_id, created_at=_naive(utcnow())
                    )
                )
                self._bump(conn, follower_id, followee_id, +1)
                self._enqueue(conn, events)
                return True
        except sa.exc.IntegrityError:
            return False  # a concurrent identical follow won the race: same outcome

    def unfollow(self, follower_id: str, followee_id: str, events: Sequence[OutboxEntry] = ()) -> bool:
        """Remove the edge and enqueue its events; False (and no events) when there was none."""
        with self._tx() as conn:
            self._require_users(conn, follower_id, followee_id)
            deleted = conn.execute(
                follows.delete().where(
                    follows.c.follower_id == follower_id, follows.c.followee_id == followee_id
                )
            ).rowcount
            if deleted:
                self._bump(conn, follower_id, followee_id, -1)
                self._enqueue(conn, events)
            return bool(deleted)

    @staticmethod
    def _bump(conn: Connection, follower_id: str, followee_id: str, delta: int) -> None:
        conn.execute(
            users.update()
            .where(users.c.id == followee_id)
            .values(follower_count=users.c.follower_count + delta)
        )
        conn.execute(
            users.update()
            .where(users.c.id == follower_id)
            .values(following_count=users.c.following_count + delta)
        )

    def follower_ids(self, author_id: str) -> list[str]:
        with self._tx() as conn:
            return list(
                conn.scalars(sa.select(follows.c.follower_id).where(follows.c.followee_id == author_id))
            )

    def followee_ids(self, user_id: str) -> list[str]:
        with self._tx() as conn:
            return list(
                conn.scalars(sa.select(follows.c.followee_id).where(follows.c.follower_id == user_id))
            )

    def connections(
        self, user_id: str, direction: Literal["followers", "following"], *, limit: int, offset: int = 0
    ) -> tuple[list[User], int]:
        """One page of ``user_id``'s followers (who follow them) or following (whom they follow),
        newest edge first (ties by user id, so pages are stable), and the total; ``NotFound`` for an
        unknown user."""
        if direction == "followers":
            mine, theirs = follows.c.followee_id, follows.c.follower_id
        else:
            mine, theirs = follows.c.follower_id, follows.c.followee_id
        with self._tx() as conn:
            self._require_users(conn, user_id)
            total = conn.scalar(sa.select(sa.func.count()).select_from(follows).where(mine == user_id)) or 0
            rows = conn.execute(
                sa.select(users)
                .join(follows, users.c.id == theirs)
                .where(mine == user_id)
                .order_by(follows.c.created_at.desc(), users.c.id)
                .limit(limit)
                .offset(offset)
            )
            return [_user(row) for row in rows], total

    # --- posts and likes -------------------------------------------------------------------------
    def add_post(self, post: Post, events: Sequence[OutboxEntry]) -> Post:
        """Insert the post and its outbox events atomically."""
        try:
            with self._tx() as conn:
                self._require_users(conn, post.author_id)
                conn.execute(
                    posts.insert().values(
                        id=post.id,
                        user_id=post.author_id,
                        content=post.content,
                        media_key=post.media_key,
                        media_type=post.media_type,
                        delivery=post.delivery,
                        like_count=0,
                        created_at=_naive(post.created_at),
                    )
                )
                self._enqueue(conn, events)
        except sa.exc.IntegrityError as exc:
            raise Conflict(f"post {post.id} already exists") from exc
        return post

    def like(self, user_id: str, post_id: str, events: Sequence[OutboxEntry]) -> bool:
        """Record a like and its events; False (and no events) when it already existed."""
        try:
            with self._tx() as conn:
                self._require_users(conn, user_id)
                if conn.execute(sa.select(posts.c.id).where(posts.c.id == post_id)).first() is None:
                    raise NotFound(f"post {post_id} not found")
                exists = conn.execute(
                    sa.select(likes.c.user_id).where(likes.c.user_id == user_id, likes.c.post_id == post_id)
                ).first()
                if exists:
                    return False
                conn.execute(
                    likes.insert().values(user_id=user_id, post_id=post_id, created_at=_naive(utcnow()))
                )
                conn.execute(
                    posts.update().where(posts.c.id == post_id).values(like_count=posts.c.like_count + 1)
                )
                self._enqueue(conn, events)
                return True
        except sa.exc.IntegrityError:
            return False  # a concurrent identical like won the race: same outcome

    def get_post(self, post_id: str) -> Post:
        with self._tx() as conn:
            row = conn.execute(sa.select(posts).where(posts.c.id == post_id)).first()
        if row is None:
            raise NotFound(f"post {post_id} not found")
        return _post(row)

    def get_posts(self, post_ids: Sequence[str]) -> dict[str, Post]:
        """Hydration: the posts that exist among ``post_ids``, by id (missing ids are absent)."""
        if not post_ids:
            return {}
        with self._tx() as conn:
            rows = conn.execute(sa.select(posts).where(posts.c.id.in_(list(post_ids))))
            return {row.id: _post(row) for row in rows}

    def get_users(self, user_ids: Sequence[str]) -> dict[str, User]:
        if not user_ids:
            return {}
        with self._tx() as conn:
            rows = conn.execute(sa.select(users).where(users.c.id.in_(list(set(user_ids)))))
            return {row.id: _user(row) for row in rows}

    def followed_posts(self, user_id: str, delivery: str, limit: int) -> list[tuple[str, float]]:
        """Newest ``(post_id, epoch)`` by authors ``user_id`` follows, of one delivery kind.

        ``push`` rebuilds an expired mailbox; ``pull`` is the celebrity merge at read time.
        """
        query = (
            sa.select(posts.c.id, posts.c.created_at)
            .join(follows, follows.c.followee_id == posts.c.user_id)
            .where(follows.c.follower_id == user_id, posts.c.delivery == delivery)
            .order_by(posts.c.created_at.desc())
            .limit(limit)
        )
        with self._tx() as conn:
            return [(row.id, to_epoch(_aware(row.created_at))) for row in conn.execute(query)]

    def counts(self) -> dict[str, int]:
        with self._tx() as conn:
            return {
                table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                for table in (users, follows, posts, likes)
            }

    # --- the outbox ------------------------------------------------------------------------------
    @staticmethod
    def _enqueue(conn: Connection, events: Sequence[OutboxEntry]) -> None:
        if not events:
            return
        now = _naive(utcnow())
        conn.execute(
            outbox.insert(),
            [
                {
                    "topic": e.topic,
                    "event_key": e.key,
                    "payload": json.dumps(e.payload),
                    "headers": json.dumps(e.headers),
                    "created_at": now,
                }
                for e in events
            ],
        )

    def outbox_pending(self, limit: int = 500) -> list[OutboxEntry]:
        """Unpublished events, oldest first."""
        query = (
            sa.select(outbox)
            .where(outbox.c.published_at.is_(None))
            .order_by(outbox.c.id)
            .limit(limit)
        )
        with self._tx() as conn:
            return [
                OutboxEntry(
                    id=row.id,
                    topic=row.topic,
                    key=row.event_key,
                    payload=json.loads(row.payload),
                    headers=json.loads(row.headers),
                )
                for row in conn.execute(query)
            ]

    def outbox_mark_published(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        with self._tx() as conn:
            conn.execute(
                outbox.update().where(outbox.c.id.in_(list(ids))).values(published_at=_naive(utcnow()))
            )

    def outbox_recent(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest outbox rows, published or not (for looking inside the write path)."""
        query = sa.select(outbox).order_by(outbox.c.id.desc()).limit(limit)
        with self._tx() as conn:
            return [
                {
                    "id": row.id,
                    "topic": row.topic,
                    "key": row.event_key,
                    "payload": json.loads(row.payload),
                    "created_at": _aware(row.created_at).isoformat(),
                    "published_at": _aware(row.published_at).isoformat() if row.published_at else None,
                }
                for row in conn.execute(query)
            ]

    def outbox_backlog(self) -> int:
        with self._tx() as conn:
            return conn.execute(
                sa.select(sa.func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
            ).scalar_one()
