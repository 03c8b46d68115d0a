"""FastAPI dependency aliases: routes ask for the stack or the write path, never build clients."""

from __future__ import annotations

from typing import Annotated

from anyio import CapacityLimiter
from fastapi import Depends, Request

from labcore.bootstrap import Stack
from labcore.feed.pipeline import FeedPipeline
from labcore.write.posts import WritePath


def get_stack(request: Request) -> Stack:
    return request.app.state.stack


def get_writes(request: Request) -> WritePath:
    return request.app.state.writes


def get_pipeline(request: Request) -> FeedPipeline:
    return request.app.state.pipeline


async def get_feed_slots(request: Request) -> CapacityLimiter:  # async: no thread hop to read it
    return request.app.state.feed_slots


StackDep = Annotated[Stack, Depends(get_stack)]
WritesDep = Annotated[WritePath, Depends(get_writes)]
PipelineDep = Annotated[FeedPipeline, Depends(get_pipeline)]
FeedSlotsDep = Annotated[CapacityLimiter, Depends(get_feed_slots)]
