from __future__ import annotations

from fastapi import APIRouter, Response, status

from labcore.domain import User
from services.api.deps import StackDep, WritesDep
from services.api.schemas import FollowRequest, FollowResult, UserCreate, UserPublic

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
