from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from labcore.feed import FeedResult, get_feed
from services.api.deps import StackDep
from services.api.schemas import FeedItemPublic, FeedPublic

router = APIRouter(prefix="/feed", tags=["feed"])


def feed_public(result: FeedResult) -> FeedPublic:
    return FeedPublic(
        user_id=result.user_id,
        items=[
            FeedItemPublic(
                post_id=item.post.id,
                user_id=item.post.author_id,
                username=item.author.username,
                display_name=item.author.display_name,
                content=item.post.content,
                media_url=item.media_url,
                media_type=item.post.media_type,
                like_count=item.post.like_count,
                created_at=item.post.created_at,
                source=item.source,
            )
            for item in result.items
        ],
        candidates_social=result.candidates_social,
        candidates_discovery=result.candidates_discovery,
        candidates_after_filter=result.candidates_after_filter,
        fallbacks=result.fallbacks,
        stage_latency_ms=result.stage_ms,
        latency_ms=result.latency_ms,
    )


@router.get("/", response_model=FeedPublic)
def feed(
    stack: StackDep,
    user_id: Annotated[str, Query(min_length=1, max_length=64)],
    limit: Annotated[int | None, Query(ge=1, le=200)] = None,
) -> FeedPublic:
    """The user's feed with candidate counts, the fallbacks used and per-stage latency."""
    return feed_public(get_feed(stack, user_id, limit))
