"""The relational schema: users, follows, posts, likes and the transactional outbox.

SQLAlchemy Core tables, so the same definitions create SQLite (embedded) and MySQL/TiDB (compose)
schemas. Counters (``follower_count``, ``like_count``) are maintained in the same transaction as the
row they count, so reading a profile or hydrating a feed never runs ``COUNT(*)``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

metadata = sa.MetaData()

# Microsecond timestamps on MySQL/TiDB (plain DATETIME drops them); SQLite keeps them anyway.
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")
Id = sa.String(36)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("display_name", sa.String(128), nullable=False),
    sa.Column("follower_count", sa.Integer, nullable=False, default=0),
    sa.Column("following_count", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", Timestamp, nullable=False),
)

follows = sa.Table(
    "follows",
    metadata,
    sa.Column("follower_id", Id, sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("followee_id", Id, sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("created_at", Timestamp, nullable=False),
    # Fan-out reads "who follows this author": index the reverse direction too.
    sa.Index("ix_follows_followee", "followee_id", "follower_id"),
)

posts = sa.Table(
    "posts",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("user_id", Id, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("media_key", sa.String(255)),
    sa.Column("media_type", sa.String(64)),
    # "push" (fanned out) or "pull" (celebrity author: merged in at read time).
    sa.Column("delivery", sa.String(8), nullable=False, default="push"),
    sa.Column("like_count", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", Timestamp, nullable=False),
    # An author's recent posts: mailbox regeneration and the celebrity pull.
    sa.Index("ix_posts_author_time", "user_id", "created_at"),
)

likes = sa.Table(
    "likes",
    metadata,
    sa.Column("user_id", Id, sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("post_id", Id, sa.ForeignKey("posts.id"), primary_key=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Index("ix_likes_post", "post_id"),
)

# The transactional outbox: written in the same transaction as the row it announces, published to
# the event log by the relay after commit. No event without a row, no row without an event.
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("topic", sa.String(64), nullable=False),
    sa.Column("event_key", sa.String(64), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # JSON
    sa.Column("headers", sa.Text, nullable=False, default="{}"),  # JSON (trace context lives here)
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("published_at", Timestamp),
    sa.Index("ix_outbox_unpublished", "published_at", "id"),
)
