from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

import anyio
from fastapi import APIRouter, Query

from labcore.feed.pipeline import FeedPipeline, FeedResult
from services.api.deps import FeedSlotsDep, PipelineDep
from services.api.schemas import FeedExplain, FeedItemPublic, FeedPublic, JourneyPublic

router = APIRouter(prefix="/feed", tags=["feed"])
T = TypeVar("T")

UserId = Annotated[str, Query(min_length=1, max_length=64)]
Limit = Annotated[int | None, Query(ge=1, le=200)]


def feed_public(result: FeedResult) -> dict:
    return dict(
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
                score=item.score,
                explored=item.explored,
            )
            for item in result.items
        ],
        candidates_social=result.candidates_social,
        candidates_discovery=result.candidates_discovery,
        candidates_after_filter=result.candidates_after_filter,
        fallbacks=result.fallbacks,
        feature_source=result.feature_source,
        model_version=result.model_version,
        stage_latency_ms=result.stage_ms,
        latency_ms=result.latency_ms,
        trace_id=result.trace_id,
    )


async def admitted(slots: anyio.CapacityLimiter, build: Callable[[], T]) -> T:
    """Run ``build`` on a worker thread once one of the ``feed_concurrency`` slots is free.

    A feed request is CPU-bound Python: requests running side by side share the GIL and the cores and
    each takes longer than it would alone. Waiting for a slot costs nothing; the wait shows as client
    time minus the response's ``latency_ms``.
    """
    return await anyio.to_thread.run_sync(build, limiter=slots)


@router.get("/", response_model=FeedPublic)
async def feed(pipeline: PipelineDep, slots: FeedSlotsDep, user_id: UserId, limit: Limit = None) -> FeedPublic:
    """The ranked feed, with candidate counts, the fallbacks used and per-stage latency."""
    return await admitted(slots, lambda: FeedPublic(**feed_public(pipeline.run(user_id, limit))))


@router.get("/explain", response_model=FeedExplain)
async def explain(pipeline: PipelineDep, slots: FeedSlotsDep, user_id: UserId, limit: Limit = None) -> FeedExplain:
    """The same request, plus every candidate's journey: source, filter, features, score, rank."""
    return await admitted(slots, lambda: _explain(pipeline, user_id, limit))


def _explain(pipeline: FeedPipeline, user_id: str, limit: int | None) -> FeedExplain:
    result = pipeline.run(user_id, limit)
    journeys = [
        JourneyPublic(
            post_id=j.post_id,
            source=j.source,
            author_id=j.author_id,
            retrieval_score=j.retrieval_score,
            filtered=j.filtered,
            features={k: (float(v) if v is not None else None) for k, v in j.features.items()},
            score=j.score,
            rank=j.rank,
            dropped=j.dropped,
            demoted=j.demoted,
            explored=j.explored,
        )
        for j in result.journeys
    ]
    return FeedExplain(**feed_public(result), journeys=journeys)
