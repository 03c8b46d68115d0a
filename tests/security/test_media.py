"""Signed media URLs and size limits: tampered or expired → 403, no way out of the media folder,
413 for an oversized body (declared or streamed) and for oversized decoded media."""

from __future__ import annotations

import base64
import time
from urllib.parse import parse_qs, urlparse

import pytest

from labcore.adapters.media.signing import UrlSigner
from labcore.errors import InvalidInput
from tests.security.conftest import MEDIA_MAX_BYTES, Api

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture(scope="module")
def media(api: Api) -> dict[str, str]:
    author = api.writes.create_user("media_author", "Media Author")
    body = {"user_id": author.id, "content": "a picture", "media_base64": base64.b64encode(PNG).decode(), "media_type": "image"}
    response = api.client.post("/posts/", json=body)
    assert response.status_code == 201, response.text
    url = urlparse(response.json()["media_url"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    return {"user_id": author.id, "path": url.path, "key": url.path.removeprefix("/media/"), **query}


def fetch(api: Api, path: str, expires: str | int, signature: str):  # noqa: ANN201
    return api.client.get(path, params={"expires": str(expires), "signature": signature})


def test_the_signed_url_serves_the_bytes(api: Api, media: dict[str, str]) -> None:
    response = fetch(api, media["path"], media["expires"], media["signature"])
    assert response.status_code == 200 and response.content == PNG
    assert response.headers["content-type"] == "image/png"


def test_a_tampered_url_is_forbidden(api: Api, media: dict[str, str]) -> None:
    flipped = media["signature"][:-1] + ("0" if media["signature"][-1] != "0" else "1")
    assert fetch(api, media["path"], media["expires"], flipped).status_code == 403
    assert fetch(api, media["path"], int(media["expires"]) + 3600, media["signature"]).status_code == 403  # extended
    assert fetch(api, media["path"], media["expires"], "").status_code in (403, 422)
    assert fetch(api, media["path"], media["expires"], media["signature"].upper()).status_code == 403
    other = "posts/" + "f" * 32 + ".png"  # another key, same signature
    assert fetch(api, f"/media/{other}", media["expires"], media["signature"]).status_code == 403


def test_an_expired_url_is_forbidden_even_with_a_valid_signature(api: Api, media: dict[str, str]) -> None:
    past = int(time.time()) - 5
    signature = UrlSigner(api.settings.media_signing_key).sign(media["key"], past)
    response = fetch(api, media["path"], past, signature)
    assert response.status_code == 403 and "expired" in response.json()["detail"]


@pytest.mark.parametrize(
    "key",
    ["../feed.db", "posts/../../feed.db", "..%2Ffeed.db", "%2e%2e/%2e%2e/etc/passwd", "/etc/passwd", "posts/..\\..\\feed.db"],
)
def test_a_validly_signed_key_still_cannot_leave_the_media_folder(api: Api, key: str) -> None:
    """Even the server's own signature (a leaked key, a signing bug) opens nothing outside the folder."""
    signer = UrlSigner(api.settings.media_signing_key)
    expires = int(time.time()) + 60
    for signed in {key, key.replace("%2F", "/").replace("%2e", ".")}:
        response = fetch(api, f"/media/{key}", expires, signer.sign(signed, expires))
        assert 400 <= response.status_code < 500, (signed, response.status_code)
        assert b"SQLite" not in response.content and b"root:" not in response.content


def test_a_symlink_inside_the_media_folder_does_not_lead_out(api: Api, media: dict[str, str]) -> None:
    root = api.settings.data_dir / "media"
    link = root / "posts" / "escape.png"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(api.settings.data_dir / "feed.db")
    try:
        expires = int(time.time()) + 60
        signature = UrlSigner(api.settings.media_signing_key).sign("posts/escape.png", expires)
        response = fetch(api, "/media/posts/escape.png", expires, signature)
        assert 400 <= response.status_code < 500 and b"SQLite" not in response.content
    finally:
        link.unlink()


def test_the_media_store_refuses_keys_outside_its_folder(api: Api) -> None:
    for key in ("../x.png", "posts/../../x.png", "/abs.png"):
        with pytest.raises(InvalidInput):
            api.stack.media.put(key, PNG, "image/png")


def test_oversized_media_is_413_whether_declared_or_decoded(api: Api, media: dict[str, str]) -> None:
    too_big = b"\x89PNG\r\n\x1a\n" + b"\0" * MEDIA_MAX_BYTES
    body = {"user_id": media["user_id"], "content": "big", "media_base64": base64.b64encode(too_big).decode(), "media_type": "image"}
    assert api.client.post("/posts/", json=body).status_code == 413
    # base64 wrapped with whitespace (as `base64 < file` writes it) is measured after decoding too
    wrapped = "\n".join(body["media_base64"][i : i + 76] for i in range(0, len(body["media_base64"]), 76))
    assert api.client.post("/posts/", json=body | {"media_base64": wrapped}).status_code == 413
    just_fits = b"\x89PNG\r\n\x1a\n" + b"\0" * (MEDIA_MAX_BYTES - 8)
    body["media_base64"] = base64.b64encode(just_fits).decode()
    assert api.client.post("/posts/", json=body).status_code == 201


def max_body(api: Api) -> int:
    settings = api.settings
    return settings.media_max_bytes * 4 // 3 + settings.content_max_chars * 4 + 64 * 1024


def test_a_body_over_the_limit_is_413_by_its_declared_length(api: Api, media: dict[str, str]) -> None:
    payload = b'{"user_id": "x", "content": "' + b"a" * max_body(api) + b'"}'
    response = api.client.post("/posts/", content=payload, headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_a_streamed_body_over_the_limit_is_413_too(api: Api, media: dict[str, str]) -> None:
    """No Content-Length (chunked): the limit is counted as the bytes arrive."""
    chunk = b"a" * 65536
    chunks = max_body(api) // len(chunk) + 2

    def stream():  # noqa: ANN202
        yield b'{"user_id": "x", "content": "'
        for _ in range(chunks):
            yield chunk
        yield b'"}'

    response = api.client.post("/posts/", content=stream(), headers={"content-type": "application/json"})
    assert response.status_code == 413
