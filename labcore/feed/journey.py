"""What flows through the feed: each candidate's ``Journey``, and the hydrated ``FeedItem`` a reader gets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labcore.domain import Post, User


@dataclass
class Journey:
    """One candidate's path through the pipeline: what ``GET /feed/explain`` shows."""

    post_id: str
    source: str  # social | celebrity | discovery
    retrieval_score: float  # creation time (social) or ANN similarity (discovery)
    author_id: str | None = None
    filtered: str | None = None  # why stage 2 removed it
    features: dict[str, Any] = field(default_factory=dict)
    score: float | None = None
    rank: int | None = None
    dropped: str | None = None  # why stage 4 did not keep it: below_cutoff (page full) or exploration
    demoted: str | None = None  # why stage 4 moved it below the others: author_cap or out_of_network_cap
    explored: bool = False  # placed by exploration, not by the ranker (stage4_rerank.explore)

    @property
    def in_network(self) -> bool:
        return self.source != "discovery"


@dataclass(frozen=True)
class FeedItem:
    post: Post
    author: User
    source: str
    score: float | None
    media_url: str | None
    explored: bool = False
