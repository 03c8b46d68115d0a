"""Request and response models of the public API (separate, as in the FastAPI template)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Generous outer bounds so absurd bodies are refused before any work; labcore enforces the
# configured limits (content length, media size) and says which one was hit.
_ID = Field(min_length=1, max_length=64)


class RequestBody(BaseModel):
    """Every request body: no unknown fields, and text that is real Unicode.

    JSON may carry a lone surrogate (``"\\ud800"``); no UTF-8 store (SQL, Redis, DuckDB) can hold one,
    so it is refused here with a 422 instead of failing deep inside a write.
    """

    model_config = ConfigDict(extra="forbid")

    @field_validator("*")
    @classmethod
    def _encodable(cls, value: object) -> object:
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str):
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    raise ValueError("text must be valid Unicode (no lone surrogates)") from None
        return value


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorPublic(BaseModel):
    """A 4xx body: the lab's own checks give one sentence; FastAPI's request validation a list."""

    detail: str | list[FieldError] = Field(description="why the request was refused")


class UserCreate(RequestBody):
    username: str = Field(min_length=1, max_length=64, examples=["alice"])
    display_name: str = Field(min_length=1, max_length=128, examples=["Alice"])


class UserPublic(BaseModel):
    user_id: str
    username: str
    display_name: str
    follower_count: int
    following_count: int
    created_at: datetime


class UserPage(BaseModel):
    """One page of a user's followers or following: ``limit``/``offset`` pagination, newest follow first."""

    user_id: str
    items: list[UserPublic]
    total: int = Field(description="how many in all")
    limit: int
    offset: int
    next_offset: int | None = Field(description="the offset of the next page; null on the last page")


class FollowRequest(RequestBody):
    follower_id: str = _ID
    followee_id: str = _ID


class FollowResult(BaseModel):
    status: str = Field(examples=["following", "already_following", "unfollowed", "not_following"])
    follower_id: str
    followee_id: str


class PostCreate(RequestBody):
    user_id: str = _ID
    content: str = Field(min_length=1, max_length=100_000)
    media_base64: str | None = None
    media_type: str | None = Field(default=None, examples=["image", "video"])


class PostPublic(BaseModel):
    post_id: str
    user_id: str
    username: str = Field(description="the author's")
    display_name: str = Field(description="the author's")
    content: str
    media_url: str | None
    media_type: str | None
    delivery: str = Field(description="push: fanned out to mailboxes; pull: merged at read time")
    like_count: int
    created_at: datetime


class LikeRequest(RequestBody):
    user_id: str = _ID
    post_id: str | None = Field(default=None, description="optional; must match the path if given")


class LikeResult(BaseModel):
    status: str = Field(examples=["liked", "already_liked"])
    user_id: str
    post_id: str
    like_count: int


class FeedItemPublic(BaseModel):
    post_id: str
    user_id: str
    username: str
    display_name: str
    content: str
    media_url: str | None
    media_type: str | None
    like_count: int
    created_at: datetime
    source: str = Field(description="social (mailbox), celebrity (pulled at read time) or discovery (ANN)")
    score: float | None = Field(description="the ranking model's pClick (or recency in the fallback)")
    explored: bool = Field(default=False, description="placed by exploration (a random candidate), not by the ranker")


class FeedPublic(BaseModel):
    user_id: str
    items: list[FeedItemPublic]
    candidates_social: int
    candidates_discovery: int
    candidates_after_filter: int
    fallbacks: list[str] = Field(description="the named fallbacks this request used, if any")
    feature_source: str = Field(description="feast, redis-cache or sql")
    model_version: str = Field(description="the ranking model that scored this feed")
    stage_latency_ms: dict[str, float]
    latency_ms: float
    trace_id: str | None = Field(default=None, description="GET /traces/{trace_id} shows this request's spans")


class JourneyPublic(BaseModel):
    post_id: str
    source: str
    author_id: str | None
    retrieval_score: float = Field(description="creation time (social) or ANN cosine (discovery)")
    filtered: str | None = Field(description="why stage 2 removed it, e.g. seen_in_24h")
    features: dict[str, float | None]
    score: float | None
    rank: int | None = Field(description="final position, 1-based, if it made the feed")
    dropped: str | None = Field(
        description="why stage 4 left it out: below_cutoff (the page is full) or exploration (an explored "
        "candidate took its slot)"
    )
    demoted: str | None = Field(
        default=None,
        description="why stage 4 moved it below the posts that passed the diversity rules: author_cap or "
        "out_of_network_cap. A demoted post still has a rank when the page had room for it",
    )
    explored: bool = Field(default=False, description="placed by exploration, not by the ranker")


class FeedExplain(FeedPublic):
    journeys: list[JourneyPublic]


class ImpressionsCreate(RequestBody):
    user_id: str = _ID
    post_ids: list[str] = Field(min_length=1, max_length=500)


class ImpressionsRecorded(BaseModel):
    user_id: str
    recorded: int


class GroupBacklogPublic(BaseModel):
    topic: str
    backlog: int | None = Field(description="events of the topic this group has not handled yet (null: log unreachable)")
    rate_per_second: float | None = Field(description="events handled per second recently (null: not measured yet)")
    eta_seconds: float | None = Field(description="backlog / rate: when it should have caught up (null: unknown)")


class Health(BaseModel):
    status: str = Field(
        examples=["ok", "catching_up", "degraded"],
        description="degraded: a component is down; catching_up: all up, but events are still waiting to be "
        "published (outbox) or handled (backlog) — e.g. discovery lacks embeddings right after a seed; ok: neither",
    )
    ready: bool = Field(default=False, description="no outbox backlog and no consumer group backlog")
    profile: str
    engines: dict[str, str] = Field(default_factory=dict, description="Which engine serves vectors and media.")
    components: dict[str, str]
    workers: dict[str, dict[str, object]] = {}
    outbox_backlog: int | None = None
    backlog: dict[str, GroupBacklogPublic] = Field(default={}, description="per consumer group")
