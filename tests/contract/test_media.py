"""One contract for every MediaStore: S3 on moto, S3 on a real S3 server (SeaweedFS), and the
in-memory fake of ``labcore.testing``.

moto speaks the S3 HTTP API on a real socket in this process but accepts any signature. SeaweedFS
(the session's ``labcore.engines`` S3 server, standing in for MinIO) checks SigV4 for real: against it
a presigned URL works only as signed, and a tampered, expired or wrongly keyed one gets the server's
403. S3Media runs its real minio client against both; presigned URLs are fetched with httpx.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from moto.server import ThreadedMotoServer

from labcore.adapters.media.base import MediaStore
from labcore.adapters.media.s3 import S3Media
from labcore.errors import BackendUnavailable, Forbidden, InvalidInput, NotFound
from labcore.testing import MemoryMedia

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
BAD_KEYS = [
    "../etc/passwd", "/abs.png", "a/../../b.png", "", "posts/a.png/..", "posts//a.png", "a b.png"
]


@dataclass
class Backend:
    store: MediaStore
    fetch: Callable[[str], bytes]  # what a browser does with store.url(...)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def seaweedfs(engines):  # -> labcore.engines.seaweedfs.SeaweedFS, started for the session
    return engines.get("seaweedfs")


def make_s3(endpoint: str, bucket: str | None = None, *, keys: tuple[str, str] = ("testing", "testing"), **kwargs) -> S3Media:
    bucket = bucket or f"media-{uuid.uuid4().hex[:12]}"
    return S3Media(endpoint, *keys, bucket, **kwargs)


def seaweed_s3(server, bucket: str | None = None, **kwargs) -> S3Media:
    return make_s3(server.endpoint, bucket, keys=(server.access_key, server.secret_key), **kwargs)


def s3_backend(store: S3Media) -> Backend:
    store.ensure_bucket()

    def fetch(url: str) -> bytes:
        response = httpx.get(url, timeout=5)
        response.raise_for_status()
        return response.content

    return Backend(store, fetch)


def memory_backend() -> Backend:
    store = MemoryMedia()
    return Backend(store, store.fetch)


@pytest.fixture(params=["s3-moto", "s3-seaweedfs", "memory"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "memory":
        return memory_backend()
    if request.param == "s3-moto":
        return s3_backend(make_s3(request.getfixturevalue("moto_endpoint")))
    return s3_backend(seaweed_s3(request.getfixturevalue("seaweedfs")))


# --- The contract -----------------------------------------------------------------------------


def test_put_get_roundtrip_keeps_content_type(backend: Backend) -> None:
    backend.store.put("posts/a.png", PNG, "image/png")
    assert backend.store.get("posts/a.png") == (PNG, "image/png")


def test_put_overwrites(backend: Backend) -> None:
    backend.store.put("posts/a.webm", b"old", "video/webm")
    backend.store.put("posts/a.webm", b"new", "video/mp4")
    assert backend.store.get("posts/a.webm") == (b"new", "video/mp4")


def test_get_missing_key_is_not_found(backend: Backend) -> None:
    with pytest.raises(NotFound):
        backend.store.get("posts/missing.png")


def test_url_serves_the_bytes(backend: Backend) -> None:
    backend.store.put("posts/u.png", PNG, "image/png")
    assert backend.fetch(backend.store.url("posts/u.png", 60)) == PNG


@pytest.mark.parametrize("key", BAD_KEYS)
@pytest.mark.parametrize("operation", ["put", "get", "url"])
def test_bad_keys_are_invalid_input(backend: Backend, key: str, operation: str) -> None:
    call = {
        "put": lambda: backend.store.put(key, PNG, "image/png"),
        "get": lambda: backend.store.get(key),
        "url": lambda: backend.store.url(key, 60),
    }[operation]
    with pytest.raises(InvalidInput):
        call()


def test_health_passes(backend: Backend) -> None:
    backend.store.health()


def test_memory_urls_expire_and_a_down_store_is_unavailable() -> None:
    store = MemoryMedia()
    store.put("posts/a.png", PNG, "image/png")
    with pytest.raises(Forbidden, match="expired"):
        store.fetch(store.url("posts/a.png", -1))
    store.down = True
    for call in (store.health, lambda: store.get("posts/a.png"), lambda: store.put("posts/b.png", PNG, "image/png")):
        with pytest.raises(BackendUnavailable):
            call()


# --- Local folder ----------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    "operation",
    ["health", "ensure_bucket", "put", "get"],
)
def test_s3_unreachable_endpoint_is_backend_unavailable_quickly(operation: str) -> None:
    store = make_s3(f"127.0.0.1:{closed_port()}", timeout_seconds=1, retries=1)
    call = {
        "health": store.health,
        "ensure_bucket": store.ensure_bucket,
        "put": lambda: store.put("posts/a.png", PNG, "image/png"),
        "get": lambda: store.get("posts/a.png"),
    }[operation]
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as info:
        call()
    assert info.value.component == "media"
    assert time.monotonic() - started < 3


def test_s3_url_needs_no_network(moto_endpoint: str) -> None:
    # Presigning is local computation: it works even when the store is down.
    url = make_s3(f"127.0.0.1:{closed_port()}").url("posts/a.png", 60)
    assert "X-Amz-Signature=" in url


def test_s3_missing_bucket_is_unhealthy(moto_endpoint: str) -> None:
    with pytest.raises(BackendUnavailable, match="does not exist"):
        make_s3(moto_endpoint).health()


def test_s3_ensure_bucket_is_idempotent(moto_endpoint: str) -> None:
    store = make_s3(moto_endpoint)
    store.ensure_bucket()
    store.ensure_bucket()
    store.health()


@pytest.mark.parametrize("public", ["localhost:{port}", "http://localhost:{port}/"])
def test_s3_public_endpoint_signs_for_the_browser_host(moto_endpoint: str, public: str) -> None:
    # The service reaches the store as 127.0.0.1, the "browser" as localhost: the URL must name
    # the public host and its signature must hold for it.
    port = moto_endpoint.rsplit(":", 1)[1]
    bucket = f"media-{uuid.uuid4().hex[:12]}"
    inside = make_s3(moto_endpoint, bucket)
    inside.ensure_bucket()
    inside.put("posts/p.png", PNG, "image/png")
    browser = make_s3(moto_endpoint, bucket, public_endpoint=public.format(port=port))
    url = browser.url("posts/p.png", 60)
    assert urlsplit(url).netloc == f"localhost:{port}"
    assert sigv4_query_signature_ok(url, secret_key="testing")  # moto accepts any signature
    response = httpx.get(url, timeout=5)
    assert response.status_code == 200
    assert response.content == PNG
    assert response.headers["content-type"] == "image/png"


def sigv4_query_signature_ok(url: str, secret_key: str) -> bool:
    """Recompute a presigned GET's SigV4 signature for the URL's own host (AWS's recipe)."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    signature = query.pop("X-Amz-Signature")
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items())
    )
    canonical_request = "\n".join(
        ["GET", parts.path, canonical_query, f"host:{parts.netloc}", "", "host", "UNSIGNED-PAYLOAD"]
    )
    date, region, service, terminator = query["X-Amz-Credential"].split("/")[1:]
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            query["X-Amz-Date"],
            f"{date}/{region}/{service}/{terminator}",
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = f"AWS4{secret_key}".encode()
    for part in (date, region, service, terminator):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


# --- S3 signatures, checked by a real S3 server -------------------------------------------------


@pytest.fixture
def signed(seaweedfs) -> tuple[S3Media, str]:
    """A SeaweedFS bucket holding posts/p.png, and a presigned GET URL for it."""
    store = seaweed_s3(seaweedfs)
    store.ensure_bucket()
    store.put("posts/p.png", PNG, "image/png")
    return store, store.url("posts/p.png", 60)


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return parts._replace(query="&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())).geturl()


def test_seaweedfs_serves_a_presigned_url_as_signed(signed: tuple[S3Media, str]) -> None:
    response = httpx.get(signed[1], timeout=5)
    assert response.status_code == 200
    assert response.content == PNG
    assert response.headers["content-type"] == "image/png"


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda url: with_query(url, **{"X-Amz-Signature": "0" * 64}), id="signature"),
        pytest.param(lambda url: with_query(url, **{"X-Amz-Expires": "3600"}), id="expiry-extended"),
        pytest.param(lambda url: url.replace("/posts/p.png", "/posts/q.png"), id="other-key"),
    ],
)
def test_seaweedfs_refuses_a_tampered_presigned_url_with_403(signed: tuple[S3Media, str], tamper) -> None:
    store, url = signed
    store.put("posts/q.png", PNG, "image/png")  # the other key exists: only the signature can refuse it
    assert httpx.get(tamper(url), timeout=5).status_code == 403


def test_seaweedfs_refuses_an_expired_presigned_url(seaweedfs) -> None:
    store = seaweed_s3(seaweedfs)
    store.ensure_bucket()
    store.put("posts/e.png", PNG, "image/png")
    url = store.url("posts/e.png", 1)
    time.sleep(2.5)
    assert httpx.get(url, timeout=5).status_code == 403


def test_seaweedfs_refuses_a_url_signed_with_the_wrong_secret(seaweedfs) -> None:
    store = seaweed_s3(seaweedfs)
    store.ensure_bucket()
    store.put("posts/w.png", PNG, "image/png")
    forged = make_s3(seaweedfs.endpoint, store._bucket, keys=(seaweedfs.access_key, "not-the-secret"))
    assert httpx.get(forged.url("posts/w.png", 60), timeout=5).status_code == 403


def test_seaweedfs_wrong_credentials_are_backend_unavailable(seaweedfs) -> None:
    store = make_s3(seaweedfs.endpoint, keys=(seaweedfs.access_key, "not-the-secret"), retries=0)
    with pytest.raises(BackendUnavailable):
        store.ensure_bucket()


def test_seaweedfs_public_endpoint_signature_holds_for_the_browser_host(seaweedfs) -> None:
    # The service reaches the store as 127.0.0.1, the browser as localhost: the server itself checks
    # that the signature covers the host the browser sends.
    inside = seaweed_s3(seaweedfs)
    inside.ensure_bucket()
    inside.put("posts/b.png", PNG, "image/png")
    public = f"localhost:{seaweedfs.port}"
    browser = seaweed_s3(seaweedfs, inside._bucket, public_endpoint=public)
    url = browser.url("posts/b.png", 60)
    assert urlsplit(url).netloc == public
    assert httpx.get(url, timeout=5).content == PNG
    # The same signature presented for the other host is refused.
    assert httpx.get(url.replace(public, seaweedfs.endpoint), timeout=5).status_code == 403
