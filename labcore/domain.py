"""Domain types: plain dataclasses, no vendor types.

Entities (``User``, ``Post``) are what SQL stores; events (``PostCreated``, ``PostLiked``) are what
travels on the event log. Times are timezone-aware UTC datetimes in Python and epoch seconds on the
wire and in Redis scores, so every backend sorts them the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from numbers import Real
from typing import Any, ClassVar, Literal, Self

# How a post reaches followers: "push" = fanned out into mailboxes at write time,
# "pull" = its author is a celebrity, followers merge it in at read time.
Delivery = Literal["push", "pull"]

TOPIC_NEW_POSTS = "new-posts"
TOPIC_ENGAGEMENTS = "engagements"
TOPIC_IMPRESSIONS = "impressions"

# Record header with the time the write path committed the event (epoch seconds). Workers measure
# their lag from it rather than from ``created_at``, which a seeded world sets in the past.
WRITTEN_AT = "written_at"


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_epoch(ts: datetime) -> float:
    """Epoch seconds with millisecond precision (the mailbox score)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return round(ts.timestamp(), 3)


def from_epoch(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


@dataclass(frozen=True)
class User:
    id: str
    username: str
    display_name: str
    created_at: datetime
    follower_count: int = 0
    following_count: int = 0


@dataclass(frozen=True)
class Post:
    id: str
    author_id: str
    content: str
    created_at: datetime
    delivery: Delivery = "push"
    media_key: str | None = None
    media_type: str | None = None
    like_count: int = 0


@dataclass(frozen=True)
class NewMedia:
    """Decoded, validated media on its way to the object store."""

    data: bytes
    content_type: str  # e.g. image/png
    extension: str  # e.g. png


# --- Events -----------------------------------------------------------------------------------


class Event:
    """What every event on the log shares: a topic, a partition key and a JSON body.

    Subclasses are frozen dataclasses that set ``topic`` and define ``key``.
    """

    topic: ClassVar[str]

    @property
    def key(self) -> str:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        # Unknown fields are ignored: a newer producer may add some.
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})  # type: ignore[attr-defined]


@dataclass(frozen=True)
class PostCreated(Event):
    post_id: str
    author_id: str
    content: str
    created_at: float  # epoch seconds
    delivery: Delivery
    has_media: bool = False

    topic: ClassVar[str] = TOPIC_NEW_POSTS

    @property
    def key(self) -> str:
        # Keyed by author: one author's posts stay ordered within a partition.
        return self.author_id



@dataclass(frozen=True)
class PostLiked(Event):
    user_id: str
    post_id: str
    author_id: str
    liked_at: float  # epoch seconds

    topic: ClassVar[str] = TOPIC_ENGAGEMENTS

    @property
    def key(self) -> str:
        return self.user_id


@dataclass(frozen=True)
class UserFollowed(Event):
    """A follow (``following``) or an unfollow (not ``following``), on the ``engagements`` topic.

    Keyed by the follower, like their likes: one user's engagements stay in order in one partition.
    """

    follower_id: str
    followee_id: str
    followed_at: float  # epoch seconds
    following: bool = True

    topic: ClassVar[str] = TOPIC_ENGAGEMENTS

    @property
    def key(self) -> str:
        return self.follower_id


def engagement_from_dict(data: dict[str, Any]) -> PostLiked | UserFollowed:
    """The ``engagements`` topic carries likes and follows; a follow is the one with a followee."""
    return UserFollowed.from_dict(data) if "followee_id" in data else PostLiked.from_dict(data)



@dataclass(frozen=True)
class ImpressionLogged(Event):
    """One post shown to one user at ``seen_at`` (epoch seconds)."""

    user_id: str
    post_id: str
    seen_at: float

    topic: ClassVar[str] = TOPIC_IMPRESSIONS

    def __post_init__(self) -> None:
        # Checked here so a malformed event from the log fails in from_dict, not in a backend.
        for name in ("user_id", "post_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        if isinstance(self.seen_at, bool) or not isinstance(self.seen_at, Real):
            raise ValueError(f"seen_at must be epoch seconds, got {self.seen_at!r}")

    @property
    def key(self) -> str:
        # Keyed by user: one user's impressions share a partition and stay in order.
        return self.user_id


@dataclass(frozen=True)
class Record:
    """One event as read from the log, with where it came from (for acks)."""

    topic: str
    partition: int
    offset: str  # Kafka offsets and Redis stream ids both fit in a string
    key: str
    value: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def written_at(self) -> float | None:
        """When the write path committed this event (None for events written without the header)."""
        raw = self.headers.get(WRITTEN_AT)
        try:
            return float(raw) if raw is not None else None
        except ValueError:
            return None
