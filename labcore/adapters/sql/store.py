"""SqlStore: users, follows, posts, likes and the outbox on any SQLAlchemy database.

One adapter serves both profiles — a SQLite file (embedded) and MySQL/TiDB via pymysql (compose;
MariaDB in CI) — because SQLAlchemy Core already speaks both. Every write that other components must
hear about inserts its outbox row in the *same transaction*, which is what makes the write path
lossless: the relay (``labcore.write.outbox``) publishes committed rows, and only committed rows.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
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


# Ids per IN clause: far below SQLite's bound-parameter limit, and short statements for MySQL.
IN_CHUNK = 500


def _chunks(items: Sequence[str], size: int = IN_CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _no_events(*_ids: str) -> Sequence[OutboxEntry]:
    return ()


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


# A post row in ``Post``'s field order. The feed maps ~200 of them per request: unpacking a plain tuple
# costs a third of what eight named ``Row`` attribute reads did (get_posts of 180: 4.8 -> 3.1 ms).
POST_COLUMNS = (
    posts.c.id, posts.c.user_id, posts.c.content, posts.c.created_at, posts.c.delivery,
    posts.c.media_key, posts.c.media_type, posts.c.like_count,
)  # fmt: skip


def _post(row: Any) -> Post:
    """A row selected as ``POST_COLUMNS``."""
    post_id, author_id, content, created_at, delivery, media_key, media_type, like_count = row
    return Post(post_id, author_id, content, _aware(created_at), delivery, media_key, media_type, like_count)


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
        wanted = list(dict.fromkeys(user_ids))
        found: set[str] = set()
        for chunk in _chunks(wanted):
            found.update(conn.scalars(sa.select(users.c.id).where(users.c.id.in_(chunk))))
        for user_id in wanted:
            if user_id not in found:
                raise NotFound(f"user {user_id} not found")

    def follow(self, follower_id: str, followee_id: str, events: Sequence[OutboxEntry] = ()) -> bool:
        """Create the edge and enqueue its events; False (and no events) when it already existed."""
        return bool(self.follow_many([(follower_id, followee_id)], lambda _a, _b: events))

    def follow_many(
        self,
        pairs: Iterable[tuple[str, str]],
        events_for: Callable[[str, str], Sequence[OutboxEntry]] = _no_events,
    ) -> list[tuple[str, str]]:
        """Create the ``(follower_id, followee_id)`` edges in one transaction; returns the new ones.

        Edges that already exist (or repeat within ``pairs``) are skipped: not inserted, not counted,
        no events. Each new edge gets ``events_for(follower_id, followee_id)`` in its outbox, and the
        counters move by the number of new edges, all in the same transaction. A self-follow
        (``InvalidInput``) or an unknown user (``NotFound``) refuses the whole call. Set-based SQL: a
        few statements per call, not per edge (seeding a world writes hundreds of thousands).
        """
        pairs = list(dict.fromkeys(pairs))
        if any(follower == followee for follower, followee in pairs):
            raise InvalidInput("a user cannot follow themselves")
        if not pairs:
            return []
        for _attempt in range(3):
            try:
                with self._tx() as conn:
                    self._require_users(conn, *(user for pair in pairs for user in pair))
                    existing = self._existing(conn, follows.c.follower_id, follows.c.followee_id, pairs)
                    new = [pair for pair in pairs if pair not in existing]
                    if new:
                        now = _naive(utcnow())
                        conn.execute(
                            follows.insert(),
                            [{"follower_id": a, "followee_id": b, "created_at": now} for a, b in new],
                        )
                        self._add_to_counter(conn, users.c.following_count, Counter(a for a, _ in new))
                        self._add_to_counter(conn, users.c.follower_count, Counter(b for _, b in new))
                        self._enqueue(conn, [event for pair in new for event in events_for(*pair)])
                    return new
            except sa.exc.IntegrityError:
                continue  # a concurrent follow of one of these edges committed first: look again
        raise Conflict("concurrent follows of the same edges kept colliding; try again")

    @staticmethod
    def _existing(
        conn: Connection, left: sa.Column[str], right: sa.Column[str], pairs: Sequence[tuple[str, str]]
    ) -> set[tuple[str, str]]:
        """Which of ``pairs`` already are rows, keyed by the two primary-key columns ``left`` and
        ``right``: both filtered by IN lists (portable, and index-friendly on SQLite and MySQL alike),
        the cross product's extra rows dropped here."""
        lefts = list(dict.fromkeys(a for a, _ in pairs))
        rights = list(dict.fromkeys(b for _, b in pairs))
        wanted = set(pairs)
        found: set[tuple[str, str]] = set()
        for some_lefts in _chunks(lefts):
            for some_rights in _chunks(rights):
                rows = conn.execute(sa.select(left, right).where(left.in_(some_lefts), right.in_(some_rights)))
                found.update(pair for pair in map(tuple, rows) if pair in wanted)
        return found

    @staticmethod
    def _add_to_counter(conn: Connection, column: sa.Column[int], deltas: Counter[str]) -> None:
        """``column += delta`` per user id: one UPDATE per distinct delta (and IN chunk), not per user."""
        table = column.table
        by_delta: dict[int, list[str]] = defaultdict(list)
        for key, delta in deltas.items():
            if delta:
                by_delta[delta].append(key)
        for delta, keys in by_delta.items():
            for chunk in _chunks(keys):
                conn.execute(
                    table.update().where(table.c.id.in_(chunk)).values({column.name: column + delta})
                )

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
                self._add_to_counter(conn, users.c.follower_count, Counter({followee_id: -1}))
                self._add_to_counter(conn, users.c.following_count, Counter({follower_id: -1}))
                self._enqueue(conn, events)
            return bool(deleted)

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
        self.add_posts([post], events)
        return post

    def add_posts(self, new_posts: Sequence[Post], events: Sequence[OutboxEntry]) -> None:
        """Insert the posts and their outbox events in one transaction: ``NotFound`` for an unknown
        author and ``Conflict`` for an existing post id refuse them all."""
        if not new_posts:
            return
        try:
            with self._tx() as conn:
                self._require_users(conn, *(post.author_id for post in new_posts))
                conn.execute(
                    posts.insert(),
                    [
                        {
                            "id": post.id,
                            "user_id": post.author_id,
                            "content": post.content,
                            "media_key": post.media_key,
                            "media_type": post.media_type,
                            "delivery": post.delivery,
                            "like_count": 0,
                            "created_at": _naive(post.created_at),
                        }
                        for post in new_posts
                    ],
                )
                self._enqueue(conn, events)
        except sa.exc.IntegrityError as exc:
            what = f"post {new_posts[0].id}" if len(new_posts) == 1 else f"one of {len(new_posts)} posts"
            raise Conflict(f"{what} already exists") from exc

    def like(self, user_id: str, post_id: str, events: Sequence[OutboxEntry]) -> bool:
        """Record a like and its events; False (and no events) when it already existed."""
        return bool(self.like_many([(user_id, post_id)], lambda _u, _p, _a: events))

    def like_many(
        self,
        pairs: Iterable[tuple[str, str]],
        events_for: Callable[[str, str, str], Sequence[OutboxEntry]] = _no_events,
    ) -> list[tuple[str, str]]:
        """Record the ``(user_id, post_id)`` likes in one transaction; returns the new ones.

        Like ``follow_many``: existing likes (and repeats) are skipped and not counted, each new like
        gets ``events_for(user_id, post_id, author_id)`` in its outbox, ``like_count`` moves by the
        number of new likes, and an unknown user or post (``NotFound``) refuses the whole call.
        """
        pairs = list(dict.fromkeys(pairs))
        if not pairs:
            return []
        for _attempt in range(3):
            try:
                with self._tx() as conn:
                    self._require_users(conn, *(user_id for user_id, _ in pairs))
                    author_of = self._authors(conn, list(dict.fromkeys(post_id for _, post_id in pairs)))
                    existing = self._existing(conn, likes.c.user_id, likes.c.post_id, pairs)
                    new = [pair for pair in pairs if pair not in existing]
                    if new:
                        now = _naive(utcnow())
                        conn.execute(
                            likes.insert(), [{"user_id": u, "post_id": p, "created_at": now} for u, p in new]
                        )
                        self._add_to_counter(conn, posts.c.like_count, Counter(p for _, p in new))
                        self._enqueue(conn, [e for u, p in new for e in events_for(u, p, author_of[p])])
                    return new
            except sa.exc.IntegrityError:
                continue  # a concurrent identical like committed first: look again
        raise Conflict("concurrent likes of the same posts kept colliding; try again")

    @staticmethod
    def _existing_authors(conn: Connection, post_ids: Sequence[str]) -> dict[str, str]:
        """``{post_id: author_id}`` for the posts that exist, one query per chunk of ids."""
        author_of: dict[str, str] = {}
        for chunk in _chunks(post_ids):
            rows = conn.execute(sa.select(posts.c.id, posts.c.user_id).where(posts.c.id.in_(chunk)))
            author_of.update((row.id, row.user_id) for row in rows)
        return author_of

    @classmethod
    def _authors(cls, conn: Connection, post_ids: Sequence[str]) -> dict[str, str]:
        """``{post_id: author_id}``; ``NotFound`` for the first post that does not exist."""
        author_of = cls._existing_authors(conn, post_ids)
        for post_id in post_ids:
            if post_id not in author_of:
                raise NotFound(f"post {post_id} not found")
        return author_of

    def get_post(self, post_id: str) -> Post:
        with self._tx() as conn:
            row = conn.execute(sa.select(*POST_COLUMNS).where(posts.c.id == post_id)).first()
        if row is None:
            raise NotFound(f"post {post_id} not found")
        return _post(row)

    def get_posts(self, post_ids: Sequence[str]) -> dict[str, Post]:
        """Hydration: the posts that exist among ``post_ids``, by id (missing ids are absent)."""
        if not post_ids:
            return {}
        with self._tx() as conn:
            rows = conn.execute(sa.select(*POST_COLUMNS).where(posts.c.id.in_(list(post_ids)))).all()
            return {row[0]: _post(row) for row in rows}

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

    def likes_of(self, user_ids: Sequence[str] | None = None) -> list[tuple[str, str, datetime]]:
        """Every like as ``(user_id, post_id, created_at)``, or only ``user_ids``' likes (training labels)."""
        query = sa.select(likes.c.user_id, likes.c.post_id, likes.c.created_at)
        with self._tx() as conn:
            if user_ids is None:
                return [(row.user_id, row.post_id, row.created_at) for row in conn.execute(query)]
            return [
                (row.user_id, row.post_id, row.created_at)
                for chunk in _chunks(list(dict.fromkeys(user_ids)))
                for row in conn.execute(query.where(likes.c.user_id.in_(chunk)))
            ]

    def authors_of(self, post_ids: Sequence[str]) -> dict[str, str]:
        """``{post_id: author_id}`` for those of ``post_ids`` that exist (a deleted post is absent)."""
        with self._tx() as conn:
            return self._existing_authors(conn, list(dict.fromkeys(post_ids)))

    def most_liked_post_ids(self, limit: int) -> list[str]:
        """The most liked posts overall, newest first among equals."""
        query = sa.select(posts.c.id).order_by(posts.c.like_count.desc(), posts.c.created_at.desc()).limit(limit)
        with self._tx() as conn:
            return list(conn.scalars(query))

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
