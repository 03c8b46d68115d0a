"""One contract for every MediaStore: the local folder, S3 (a moto S3 server in this process) and the
in-memory fake of ``labcore.testing``.

moto speaks the S3 HTTP API on a real socket, so S3Media runs its real minio client, presigned URLs
are fetched with httpx, and an unreachable endpoint fails the way a dead MinIO would.
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
from labcore.adapters.media.local import LocalMedia
from labcore.adapters.media.s3 import S3Media
from labcore.adapters.media.signing import UrlSigner
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


def make_s3(endpoint: str, bucket: str | None = None, **kwargs) -> S3Media:
    bucket = bucket or f"media-{uuid.uuid4().hex[:12]}"
    return S3Media(endpoint, "testing", "testing", bucket, **kwargs)


def local_backend(tmp_path: Path) -> Backend:
    store = LocalMedia(tmp_path / "media", UrlSigner("test-secret"), "http://api.test/")
    store.ensure_root()

    def fetch(url: str) -> bytes:
        # What the API's GET /media/{key} route does with the URL's parts.
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == "http://api.test"
        query = parse_qs(parts.query)
        key = parts.path.removeprefix("/media/")
        return store.open_signed(key, int(query["expires"][0]), query["signature"][0])[0]

    return Backend(store, fetch)


def s3_backend(endpoint: str) -> Backend:
    store = make_s3(endpoint)
    store.ensure_bucket()

    def fetch(url: str) -> bytes:
        response = httpx.get(url, timeout=5)
        response.raise_for_status()
        return response.content

    return Backend(store, fetch)


def memory_backend() -> Backend:
    store = MemoryMedia()
    return Backend(store, store.fetch)


@pytest.fixture(params=["local", "s3", "memory"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        return local_backend(tmp_path)
    if request.param == "memory":
        return memory_backend()
    return s3_backend(request.getfixturevalue("moto_endpoint"))


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


def test_local_files_are_plain_files_and_writes_leave_no_temp_files(tmp_path: Path) -> None:
    backend = local_backend(tmp_path)
    backend.store.put("posts/a.png", PNG, "image/png")
    assert (tmp_path / "media/posts/a.png").read_bytes() == PNG
    assert sorted(p.name for p in (tmp_path / "media/posts").iterdir()) == ["a.png", "a.png.type"]


@pytest.mark.parametrize(
    "tamper, message",
    [
        pytest.param(lambda key, exp, sig: (key, exp, "0" * 64), "bad signature", id="signature"),
        pytest.param(lambda key, exp, sig: (key, exp + 60, sig), "bad signature", id="expiry"),
        pytest.param(lambda key, exp, sig: ("posts/b.png", exp, sig), "bad signature", id="key"),
        pytest.param(lambda key, exp, sig: (key, int(time.time()) - 1, None), "expired", id="old"),
    ],
)
def test_local_open_signed_refuses_tampered_or_expired_urls(
    tmp_path: Path, tamper, message: str
) -> None:
    backend = local_backend(tmp_path)
    store = backend.store
    assert isinstance(store, LocalMedia)
    store.put("posts/a.png", PNG, "image/png")
    store.put("posts/b.png", PNG, "image/png")
    query = parse_qs(urlsplit(store.url("posts/a.png", 60)).query)
    key, expires, signature = tamper("posts/a.png", int(query["expires"][0]), query["signature"][0])
    if signature is None:  # a correctly signed URL whose time has passed
        signature = UrlSigner("test-secret").sign(key, expires)
    with pytest.raises(Forbidden, match=message):
        store.open_signed(key, expires, signature)


def test_local_open_signed_rejects_bad_keys_before_verifying(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        local_backend(tmp_path).store.open_signed("../secret.png", 2**40, "0" * 64)


def test_local_symlink_out_of_root_is_refused(tmp_path: Path) -> None:
    backend = local_backend(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.png").write_bytes(b"secret")
    (tmp_path / "media/evil").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidInput):
        backend.store.get("evil/x.png")
    with pytest.raises(InvalidInput):
        backend.store.put("evil/y.png", PNG, "image/png")
    assert not (outside / "y.png").exists()


def test_local_health_fails_without_a_writable_root(tmp_path: Path) -> None:
    store = LocalMedia(tmp_path / "missing", UrlSigner("k"), "http://api.test")
    with pytest.raises(BackendUnavailable):
        store.health()
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(BackendUnavailable):
        LocalMedia(tmp_path / "file", UrlSigner("k"), "http://api.test").health()


# --- S3 --------------------------------------------------------------------------------------


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
