"""Media in an S3 bucket through the ``minio`` client (MinIO in the compose profile).

Browsers fetch media straight from the object store with presigned GET URLs, so the API never
streams bytes. Inside compose the API reaches MinIO as ``minio:9000`` but a browser cannot, and a
presigned URL's signature covers its host: with ``public_endpoint`` set, URLs are signed by a
second client aimed at that host. Presigning is pure computation (the region is fixed): no request.

minio's default HTTP client waits 5 minutes and retries 5 times; the feed would rather fall back
quickly, so this adapter passes its own pool with short timeouts and few retries.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

from labcore.adapters.media.base import MediaStore, check_key
from labcore.errors import BackendUnavailable, NotFound


class S3Media(MediaStore):
    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        public_endpoint: str | None = None,
        region: str = "us-east-1",
        *,
        timeout_seconds: float = 5.0,
        retries: int = 2,
    ) -> None:
        self._bucket = bucket
        self._region = region
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout_seconds, read=timeout_seconds),
            maxsize=10,
            retries=urllib3.Retry(
                total=retries, backoff_factor=0.1, status_forcelist=[500, 502, 503, 504]
            ),
        )
        self._client = self._make_client(endpoint, secure, access_key, secret_key, http)
        # Presigning never touches the network, so the public client needs no pool of its own.
        self._signer = (
            self._make_client(public_endpoint, secure, access_key, secret_key, http)
            if public_endpoint
            else self._client
        )

    def ensure_bucket(self) -> None:
        """Create the bucket if it is missing (idempotent; safe when two services race)."""
        with _translate("ensure bucket"):
            if self._client.bucket_exists(self._bucket):
                return
            try:
                self._client.make_bucket(self._bucket)
            except S3Error as exc:
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    def put(self, key: str, data: bytes, content_type: str) -> None:
        check_key(key)
        with _translate(f"put {key}"):
            self._client.put_object(
                self._bucket, key, io.BytesIO(data), len(data), content_type=content_type
            )

    def get(self, key: str) -> tuple[bytes, str]:
        check_key(key)
        with _translate(f"get {key}"):
            response = self._client.get_object(self._bucket, key)
            try:
                data = response.read()
                content_type = response.headers.get("Content-Type", "application/octet-stream")
            finally:
                response.close()
                response.release_conn()
        return data, content_type

    def url(self, key: str, expires_seconds: int) -> str:
        check_key(key)
        with _translate(f"presign {key}"):
            return self._signer.presigned_get_object(
                self._bucket, key, expires=timedelta(seconds=expires_seconds)
            )

    def health(self) -> None:
        with _translate("health check"):
            exists = self._client.bucket_exists(self._bucket)
        if not exists:
            raise BackendUnavailable("media", f"bucket {self._bucket!r} does not exist")

    def _make_client(
        self,
        endpoint: str,
        secure: bool,
        access_key: str,
        secret_key: str,
        http: urllib3.PoolManager,
    ) -> Minio:
        # Accept "host:port" (what minio wants) or a full "http(s)://host:port" URL.
        for scheme, is_secure in (("https://", True), ("http://", False)):
            if endpoint.startswith(scheme):
                endpoint, secure = endpoint.removeprefix(scheme).rstrip("/"), is_secure
        return Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=self._region,
            http_client=http,
        )


@contextmanager
def _translate(action: str) -> Iterator[None]:
    """minio and urllib3 errors → ``NotFound`` or ``BackendUnavailable``, raised ``from`` them."""
    try:
        yield
    except S3Error as exc:
        if exc.code == "NoSuchKey":
            raise NotFound(f"{action}: no such media object") from exc
        # NoSuchBucket, AccessDenied, bad credentials...: the store is unusable as configured.
        raise BackendUnavailable("media", f"{action}: {exc.code}: {exc.message}") from exc
    except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
        # MinioException covers non-S3 replies (a proxy's HTML page) and 5xx ServerError;
        # urllib3 errors cover refused connections, timeouts and exhausted retries.
        raise BackendUnavailable("media", f"{action}: {exc}") from exc
