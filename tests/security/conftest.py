"""The API built in-process (``services.api.app.create_app``) over an embedded stack of its own.

A real redis-server, SQLite, Qdrant local mode, DuckDB and a media folder in a temp dir; Feast's
server and the ranking service are not started, so feeds take their named fallbacks (a 200 all the
same). No admin routes: nothing here can stop a service. Limits are set small so the size checks
need small bodies.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from labcore.engines.redis import EmbeddedRedis
from labcore.engines.process import free_port
from labcore.bootstrap import Stack, build_stack
from labcore.observability.tracing import setup_tracing
from labcore.settings import Settings
from labcore.write.posts import WritePath
from services.api.app import create_app

MEDIA_MAX_BYTES = 16 * 1024
CONTENT_MAX_CHARS = 500


@dataclass(frozen=True)
class Api:
    app: FastAPI
    stack: Stack
    writes: WritePath
    client: TestClient
    settings: Settings


@pytest.fixture(scope="package")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    data_dir: Path = tmp_path_factory.mktemp("security")
    with EmbeddedRedis(data_dir / "redis", appendonly=False) as server:
        settings = Settings(
            data_dir=data_dir,
            redis_url=server.url,
            media_max_bytes=MEDIA_MAX_BYTES,
            content_max_chars=CONTENT_MAX_CHARS,
            # nothing listens on these: features and ranking take their fallbacks, fast
            feature_port=free_port(),
            ranking_port=free_port(),
            public_api_url="http://testserver",
        )
        stack = build_stack(settings)
        stack.store.create_schema()
        writes = WritePath(stack)
        # as services/api/__main__ does: a deployed API always has its span buffer (/traces)
        setup_tracing(settings, "api")
        app = create_app(stack, writes)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield Api(app, stack, writes, client, settings)
        stack.close()
