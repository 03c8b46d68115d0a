from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status

from labcore.bootstrap import Stack
from labcore.domain import User
from services.api.deps import StackDep, WritesDep
from services.api.schemas import (
    ErrorPublic,
    FollowRequest,
    FollowResult,
    UserCreate,
    UserPage,
    UserPublic,
)

router = APIRouter(prefix="/users", tags=["users"])


def user_public(user: User) -> UserPublic:
    return UserPublic(
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        follower_count=user.follower_count,
        following_count=user.following_count,
        created_at=user.created_at,
    )


@router.post("/", status_code=status.HTTP_201_CREATED, response_model=UserPublic)
def create_user(body: UserCreate, writes: WritesDep) -> UserPublic:
    """Create a user. 409 when the username is taken."""
    return user_public(writes.create_user(body.username, body.display_name))


@router.get("/{user_id}", response_model=UserPublic)
def get_user(user_id: str, stack: StackDep) -> UserPublic:
    return user_public(stack.store.get_user(user_id))


PageLimit = Annotated[int, Query(ge=1, le=200, description="users per page")]
PageOffset = Annotated[int, Query(ge=0, le=1_000_000, description="users to skip (the previous page's next_offset)")]
NOT_FOUND = {404: {"model": ErrorPublic, "description": "unknown user"}}


def _page(stack: Stack, user_id: str, direction: Literal["followers", "following"], limit: int, offset: int) -> UserPage:
    found, total = stack.store.connections(user_id, direction, limit=limit, offset=offset)
    return UserPage(
        user_id=user_id,
        items=[user_public(user) for user in found],
        total=total,
        limit=limit,
        offset=offset,
        next_offset=offset + len(found) if offset + len(found) < total else None,
    )


@router.get("/{user_id}/followers", response_model=UserPage, responses=NOT_FOUND)
def followers(user_id: str, stack: StackDep, limit: PageLimit = 50, offset: PageOffset = 0) -> UserPage:
    """Who follows ``user_id``, newest first; ``limit``/``offset`` pages (``next_offset`` is the next)."""
    return _page(stack, user_id, "followers", limit, offset)


@router.get("/{user_id}/following", response_model=UserPage, responses=NOT_FOUND)
def following(user_id: str, stack: StackDep, limit: PageLimit = 50, offset: PageOffset = 0) -> UserPage:
    """Whom ``user_id`` follows, newest first; ``limit``/``offset`` pages (``next_offset`` is the next)."""
    return _page(stack, user_id, "following", limit, offset)


@router.post(
    "/follow",
    response_model=FollowResult,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": FollowResult, "description": "already following (idempotent)"}},
)
def follow(body: FollowRequest, writes: WritesDep, response: Response) -> FollowResult:
    """Follow: 201 when the edge is new, 200 when it already existed."""
    created = writes.follow(body.follower_id, body.followee_id)
    if not created:
        response.status_code = status.HTTP_200_OK
    return FollowResult(
        status="following" if created else "already_following",
        follower_id=body.follower_id,
        followee_id=body.followee_id,
    )


@router.post("/unfollow", response_model=FollowResult)
def unfollow(body: FollowRequest, writes: WritesDep) -> FollowResult:
    """Unfollow: 200 either way; ``status`` says whether an edge was removed."""
    removed = writes.unfollow(body.follower_id, body.followee_id)
    return FollowResult(
        status="unfollowed" if removed else "not_following",
        follower_id=body.follower_id,
        followee_id=body.followee_id,
    )
