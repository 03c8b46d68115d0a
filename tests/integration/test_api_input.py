"""Bad input gets a 4xx with a reason, never a 500; duplicates are idempotent. Real SQLite + Redis."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from labcore.bootstrap import build_stack
from labcore.settings import Settings
from services.api.app import create_app

PNG = (Path(__file__).resolve().parents[2] / "docs" / "assets" / "sample.png").read_bytes()


@pytest.fixture
def api(tmp_path: Path, embedded_redis, engines) -> Iterator[TestClient]:  # noqa: ANN001
    s3 = engines.get("seaweedfs")  # the session's real S3 server
    settings = Settings(
        data_dir=tmp_path, redis_url=embedded_redis.url, media_max_bytes=20_000, api_port=8000,
        s3_endpoint=s3.endpoint, s3_access_key=s3.access_key, s3_secret_key=s3.secret_key,
    )  # fmt: skip
    stack = build_stack(settings)
    stack.store.create_schema()
    with TestClient(create_app(stack), raise_server_exceptions=False) as client:
        yield client
    stack.close()


def user(api: TestClient, name: str) -> str:
    response = api.post("/users/", json={"username": name, "display_name": name.title()})
    assert response.status_code == 201, response.text
    return response.json()["user_id"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_duplicate_follow_and_like_are_idempotent(api: TestClient) -> None:
    alice, bob = user(api, "alice"), user(api, "bob")
    follow = {"follower_id": bob, "followee_id": alice}
    assert api.post("/users/follow", json=follow).status_code == 201
    again = api.post("/users/follow", json=follow)
    assert again.status_code == 200 and again.json()["status"] == "already_following"
    assert api.get(f"/users/{alice}").json()["follower_count"] == 1
    post_id = api.post("/posts/", json={"user_id": alice, "content": "hi"}).json()["post_id"]
    like = {"user_id": bob, "post_id": post_id}
    assert api.post(f"/posts/{post_id}/like", json=like).status_code == 201
    again = api.post(f"/posts/{post_id}/like", json=like)
    assert again.status_code == 200 and again.json() == {
        "status": "already_liked", "user_id": bob, "post_id": post_id, "like_count": 1,
    }  # fmt: skip
    unfollow = api.post("/users/unfollow", json=follow)
    assert unfollow.status_code == 200 and unfollow.json()["status"] == "unfollowed"
    assert api.post("/users/unfollow", json=follow).json()["status"] == "not_following"


@pytest.mark.parametrize(
    ("make_body", "status", "reason"),
    [
        (lambda a: {"user_id": "nobody", "content": "x"}, 404, "not found"),
        (lambda a: {"user_id": a, "content": ""}, 422, "at least 1 character"),
        (lambda a: {"user_id": a, "content": "   "}, 422, "must not be empty"),
        (lambda a: {"user_id": a, "content": "x" * 2001}, 422, "longer than 2000"),
        (lambda a: {"user_id": a, "content": "x", "media_base64": "!!not base64!!", "media_type": "image"}, 422, "not valid base64"),
        (lambda a: {"user_id": a, "content": "x", "media_base64": b64(PNG), "media_type": "pdf"}, 422, "media_type"),
        (lambda a: {"user_id": a, "content": "x", "media_base64": b64(b"plain text"), "media_type": "image"}, 422, "not a supported image"),
        (lambda a: {"user_id": a, "content": "x", "media_base64": b64(PNG + b"\0" * 20_000), "media_type": "image"}, 413, ""),
        (lambda a: {"user_id": a, "content": "x", "media_base64": b64(PNG)}, 422, "go together"),
        (lambda a: {"user_id": a, "content": "x", "extra": 1}, 422, "extra"),
    ],
)
def test_bad_posts_get_a_4xx_with_a_reason(api: TestClient, make_body, status: int, reason: str) -> None:  # noqa: ANN001
    alice = user(api, "alice")
    response = api.post("/posts/", json=make_body(alice))
    assert response.status_code == status, response.text
    assert reason in response.text


@pytest.mark.parametrize(
    ("path", "body", "status", "reason"),
    [
        ("/users/", {"username": "alice", "display_name": "Again"}, 409, "already taken"),
        ("/users/", {"username": "has space", "display_name": "X"}, 422, "username"),
        ("/users/", {"username": "x" * 65, "display_name": "X"}, 422, "at most 64"),
        ("/users/follow", {"follower_id": "ALICE", "followee_id": "ALICE"}, 422, "themselves"),
        ("/users/follow", {"follower_id": "ALICE", "followee_id": "ghost"}, 404, "ghost"),
        ("/posts/ghost/like", {"user_id": "ALICE", "post_id": "ghost"}, 404, "ghost"),
        ("/posts/ghost/like", {"user_id": "ALICE", "post_id": "other"}, 422, "does not match"),
        ("/impressions", {"user_id": "ALICE", "post_ids": []}, 422, "at least 1"),
        ("/impressions", {"user_id": "ghost", "post_ids": ["p"]}, 404, "ghost"),
    ],
)
def test_bad_requests_get_a_4xx_with_a_reason(api: TestClient, path: str, body: dict, status: int, reason: str) -> None:
    alice = user(api, "alice")
    body = {k: (alice if v == "ALICE" else v) for k, v in body.items()}
    response = api.post(path, json=body)
    assert response.status_code == status, response.text
    assert reason in response.text


def test_unknown_ids_are_404(api: TestClient) -> None:
    assert api.get("/users/nobody").status_code == 404
    assert api.get("/posts/nothing").status_code == 404
    assert api.get("/feed/", params={"user_id": "nobody"}).status_code == 404


def test_oversized_body_is_refused_before_parsing(api: TestClient) -> None:
    response = api.post("/posts/", content=b"{" + b" " * 200_000 + b"}", headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_media_urls_are_presigned_by_the_s3_server_and_refuse_tampering(api: TestClient) -> None:
    alice = user(api, "alice")
    post = api.post("/posts/", json={"user_id": alice, "content": "photo", "media_base64": b64(PNG), "media_type": "image"})
    assert post.status_code == 201 and post.json()["media_type"] == "image/png"
    url = post.json()["media_url"]
    ok = httpx.get(url, timeout=5)
    assert ok.status_code == 200 and ok.content == PNG and ok.headers["content-type"] == "image/png"
    tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0", 1)
    assert httpx.get(tampered, timeout=5).status_code == 403  # refused by the S3 server itself
