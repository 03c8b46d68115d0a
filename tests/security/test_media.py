"""Media URLs and size limits: presigned by the S3 server's rules and checked by it (tampered or
expired → 403 from SeaweedFS, not from our code), bad keys refused, 413 for an oversized body
(declared or streamed) and for oversized decoded media."""

from __future__ import annotations

import base64
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from labcore.errors import InvalidInput
from tests.security.conftest import MEDIA_MAX_BYTES, Api

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture(scope="module")
def media(api: Api) -> dict[str, str]:
    author = api.writes.create_user("media_author", "Media Author")
    body = {"user_id": author.id, "content": "a picture", "media_base64": base64.b64encode(PNG).decode(), "media_type": "image"}
    response = api.client.post("/posts/", json=body)
    assert response.status_code == 201, response.text
    return {"user_id": author.id, "url": response.json()["media_url"]}


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query)) | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_the_presigned_url_serves_the_bytes_from_the_s3_server(api: Api, media: dict[str, str]) -> None:
    assert urlsplit(media["url"]).netloc == api.settings.s3_endpoint  # the S3 server, not our API
    response = httpx.get(media["url"], timeout=5)
    assert response.status_code == 200 and response.content == PNG
    assert response.headers["content-type"] == "image/png"


def test_a_tampered_url_is_refused_by_the_s3_server(api: Api, media: dict[str, str]) -> None:
    """SigV4 is checked by SeaweedFS itself: any changed part of the URL is a 403."""
    signature = dict(parse_qsl(urlsplit(media["url"]).query))["X-Amz-Signature"]
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    assert httpx.get(with_query(media["url"], **{"X-Amz-Signature": flipped}), timeout=5).status_code == 403
    assert httpx.get(with_query(media["url"], **{"X-Amz-Expires": "604800"}), timeout=5).status_code == 403  # extended
    other = media["url"].replace("/posts/", "/posts/x", 1)  # another key, the same signature
    assert httpx.get(other, timeout=5).status_code == 403


def test_an_expired_url_is_refused_by_the_s3_server(api: Api) -> None:
    key = "posts/expiring.png"
    api.stack.media.put(key, PNG, "image/png")
    url = api.stack.media.url(key, 1)
    time.sleep(2.5)
    assert httpx.get(url, timeout=5).status_code == 403


def test_the_api_serves_no_media_itself(api: Api, media: dict[str, str]) -> None:
    """The home-made signed-file route is gone: bytes come from the object store only."""
    path = urlsplit(media["url"]).path
    assert api.client.get(f"/media{path}").status_code == 404


def test_the_media_store_refuses_bad_keys(api: Api) -> None:
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
