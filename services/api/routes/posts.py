from __future__ import annotations

from fastapi import APIRouter, Response, status

from labcore.domain import Post, User
from labcore.errors import InvalidInput
from labcore.write.posts import WritePath
from services.api.deps import StackDep, WritesDep
from services.api.schemas import LikeRequest, LikeResult, PostCreate, PostPublic

router = APIRouter(prefix="/posts", tags=["posts"])


def post_public(post: Post, author: User, writes: WritePath) -> PostPublic:
    return PostPublic(
        post_id=post.id,
        user_id=post.author_id,
        username=author.username,
        display_name=author.display_name,
        content=post.content,
        media_url=writes.media_url(post),
        media_type=post.media_type,
        delivery=post.delivery,
        like_count=post.like_count,
        created_at=post.created_at,
    )


@router.post("/", status_code=status.HTTP_201_CREATED, response_model=PostPublic)
def create_post(body: PostCreate, stack: StackDep, writes: WritesDep) -> PostPublic:
    """Create a post (optionally with base64 media); fan-out and embedding follow asynchronously."""
    post = writes.create_post(body.user_id, body.content, body.media_base64, body.media_type)
    return post_public(post, stack.store.get_user(post.author_id), writes)


@router.get("/{post_id}", response_model=PostPublic)
def get_post(post_id: str, stack: StackDep, writes: WritesDep) -> PostPublic:
    post = stack.store.get_post(post_id)
    return post_public(post, stack.store.get_user(post.author_id), writes)


@router.post(
    "/{post_id}/like",
    response_model=LikeResult,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": LikeResult, "description": "already liked (idempotent)"}},
)
def like(post_id: str, body: LikeRequest, stack: StackDep, writes: WritesDep, response: Response) -> LikeResult:
    """Like: 201 when new, 200 when the user had already liked the post."""
    if body.post_id is not None and body.post_id != post_id:
        raise InvalidInput("post_id in the body does not match the path")
    created = writes.like(body.user_id, post_id)
    if not created:
        response.status_code = status.HTTP_200_OK
    return LikeResult(
        status="liked" if created else "already_liked",
        user_id=body.user_id,
        post_id=post_id,
        like_count=stack.store.get_post(post_id).like_count,
    )
