"""The composition root: the only place that turns settings into live clients.

Tests, notebooks, services and the runtime all call ``build_stack``; any adapter can be passed in as a
keyword override (a fake from ``labcore.testing``, a server started by a test fixture, ...). Backends
are chosen by short names from settings and imported lazily, so ``import labcore`` never needs kafka,
minio or pinot to be installed or reachable.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from labcore.adapters.events.base import EventLog
from labcore.adapters.media.base import MediaStore
from labcore.adapters.redis.mailboxes import RedisMailboxes
from labcore.adapters.sql.store import SqlStore
from labcore.errors import LabError
from labcore.media_signing import UrlSigner
from labcore.settings import Settings


@dataclass
class Stack:
    """Every backend client the lab uses, built once and shared."""

    settings: Settings
    store: SqlStore
    redis: redis.Redis
    mailboxes: RedisMailboxes
    events: EventLog
    media: MediaStore
    signer: UrlSigner

    def close(self) -> None:
        self.events.close()
        self.redis.close()
        self.store.dispose()


def redis_client(url: str) -> redis.Redis:
    """A client that fails fast: a down Redis must become a fallback within a request, not hang it.

    redis-py's default retries with exponential back-off (seconds per call); one immediate retry is
    enough to replace a stale pooled connection after a Redis restart.
    """
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        retry=Retry(NoBackoff(), 1),
    )


def build_event_log(settings: Settings, client: redis.Redis) -> EventLog:
    if settings.resolved_event_log() == "kafka":
        from labcore.adapters.events.kafka import KafkaEventLog

        return KafkaEventLog(
            settings.kafka_bootstrap, settings.event_partitions, settings.kafka_bootstrap_timeout_ms
        )
    from labcore.adapters.events.redis_streams import RedisStreamsEventLog

    return RedisStreamsEventLog(client, settings.event_partitions)


def build_media(settings: Settings, signer: UrlSigner) -> MediaStore:
    if settings.resolved_media() == "s3":
        from labcore.adapters.media.s3 import S3Media

        media = S3Media(
            settings.s3_endpoint,
            settings.s3_access_key,
            settings.s3_secret_key,
            settings.s3_bucket,
            secure=settings.s3_secure,
            public_endpoint=settings.s3_public_endpoint,
        )
        media.ensure_bucket()
        return media
    from labcore.adapters.media.local import LocalMedia

    media = LocalMedia(settings.data_dir / "media", signer, settings.resolved_api_url())
    media.ensure_root()
    return media


def build_stack(
    settings: Settings | None = None,
    *,
    store: SqlStore | None = None,
    redis: redis.Redis | None = None,
    events: EventLog | None = None,
    media: MediaStore | None = None,
) -> Stack:
    """Build the stack from ``settings``; keyword arguments replace single adapters."""
    settings = settings or Settings()
    if redis is None:
        if not settings.redis_url:
            raise LabError(
                "no Redis URL: set FEEDLAB_REDIS_URL, or let `feedlab up` start the embedded server"
            )
        redis = redis_client(settings.redis_url)
    signer = UrlSigner(settings.media_signing_key)
    store = store or SqlStore.from_url(settings.resolved_sql_url())
    return Stack(
        settings=settings,
        store=store,
        redis=redis,
        mailboxes=RedisMailboxes(
            redis,
            cap=settings.mailbox_cap,
            ttl_seconds=settings.mailbox_ttl_seconds,
            chunk_size=settings.fanout_chunk_size,
        ),
        events=events or build_event_log(settings, redis),
        media=media or build_media(settings, signer),
        signer=signer,
    )
