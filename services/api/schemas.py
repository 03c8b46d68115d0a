"""Request and response models of the public API (separate, as in the FastAPI template)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

# Generous outer bounds so absurd bodies are refused before any work; labcore enforces the
# configured limits (content length, media size) and says which one was hit.
_ID = Field(min_length=1, max_length=64)


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64, examples=["alice"])
    display_name: str = Field(min_length=1, max_length=128, examples=["Alice"])


class UserPublic(BaseModel):
    user_id: str
    username: str
    display_name: str
    follower_count: int
    following_count: int
    created_at: datetime


class FollowRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    follower_id: str = _ID
    followee_id: str = _ID


class FollowResult(BaseModel):
    status: str = Field(examples=["following", "already_following", "unfollowed", "not_following"])
    follower_id: str
    followee_id: str


class PostCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = _ID
    content: str = Field(min_length=1, max_length=100_000)
    media_base64: str | None = None
    media_type: str | None = Field(default=None, examples=["image", "video"])


class PostPublic(BaseModel):
    post_id: str
    user_id: str
    content: str
    media_url: str | None
    media_type: str | None
    delivery: str = Field(description="push: fanned out to mailboxes; pull: merged at read time")
    like_count: int
    created_at: datetime


class LikeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
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
    dropped: str | None = Field(description="why stage 4 left it out: author_cap, out_of_network_cap, below_cutoff")


class FeedExplain(FeedPublic):
    journeys: list[JourneyPublic]


class ImpressionsCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = _ID
    post_ids: list[str] = Field(min_length=1, max_length=500)


class ImpressionsRecorded(BaseModel):
    user_id: str
    recorded: int


class Health(BaseModel):
    status: str = Field(examples=["ok", "degraded"])
    profile: str
    components: dict[str, str]
    workers: dict[str, dict[str, object]] = {}
    outbox_backlog: int | None = None
