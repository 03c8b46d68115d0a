"""The API computes at most ``feed_concurrency`` feeds at once; the others wait for a slot.

A real stack (SQLite, Redis, the S3 server) behind the real app, with a pipeline that records how many
of its runs overlap. Errors raised inside an admitted run still get their status.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from labcore.bootstrap import Stack, build_stack
from labcore.errors import NotFound
from labcore.feed.pipeline import FeedResult
from labcore.settings import Settings
from services.api.app import create_app


class OverlapRecorder:
    """Stands in for ``FeedPipeline``: each run takes 50 ms and counts the runs in flight."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.runs = 0

    def run(self, user_id: str, limit: int | None = None) -> FeedResult:
        if user_id == "nobody":
            raise NotFound(f"user {user_id} not found")
        with self.lock:
            self.running += 1
            self.runs += 1
            self.most = max(self.most, self.running)
        time.sleep(0.05)
        with self.lock:
            self.running -= 1
        return FeedResult(user_id=user_id, items=[], journeys=[])


def client_for(tmp_path: Path, embedded_redis, engines, slots: int) -> tuple[TestClient, OverlapRecorder, Stack]:  # noqa: ANN001
    s3 = engines.get("seaweedfs")
    settings = Settings(
        data_dir=tmp_path, redis_url=embedded_redis.url, feed_concurrency=slots,
        s3_endpoint=s3.endpoint, s3_access_key=s3.access_key, s3_secret_key=s3.secret_key,
    )  # fmt: skip
    stack = build_stack(settings)
    recorder = OverlapRecorder()
    return TestClient(create_app(stack, pipeline=recorder), raise_server_exceptions=False), recorder, stack


@pytest.fixture
def admission(tmp_path: Path, embedded_redis, engines) -> Iterator[tuple[TestClient, OverlapRecorder]]:  # noqa: ANN001
    client, recorder, stack = client_for(tmp_path, embedded_redis, engines, slots=2)
    with client:
        yield client, recorder
    stack.close()


def test_no_more_feeds_run_at_once_than_the_slots(admission: tuple[TestClient, OverlapRecorder]) -> None:
    client, recorder = admission
    paths = [f"/feed/?user_id=u{i}" if i % 2 else f"/feed/explain?user_id=u{i}" for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        statuses = [r.status_code for r in pool.map(client.get, paths)]
    assert statuses == [200] * 8
    assert recorder.runs == 8
    assert recorder.most == 2  # 8 clients at once, 2 slots: never 3 overlapping, and not serialized to 1


def test_an_error_inside_an_admitted_run_keeps_its_status(admission: tuple[TestClient, OverlapRecorder]) -> None:
    client, recorder = admission
    response = client.get("/feed/?user_id=nobody")
    assert response.status_code == 404 and "nobody" in response.json()["detail"]
    assert client.get("/feed/?user_id=somebody").status_code == 200  # the slot was given back


def test_the_slots_come_from_the_settings(tmp_path: Path, embedded_redis, engines) -> None:  # noqa: ANN001
    client, recorder, stack = client_for(tmp_path, embedded_redis, engines, slots=1)
    try:
        with client, ThreadPoolExecutor(4) as pool:
            assert [r.status_code for r in pool.map(client.get, [f"/feed/?user_id=u{i}" for i in range(4)])] == [200] * 4
    finally:
        stack.close()
    assert recorder.most == 1


@pytest.mark.parametrize(("profile", "slots"), [("embedded", 1), ("compose", 40)])
def test_one_feed_at_a_time_embedded_and_anyio_s_pool_in_compose(profile: str, slots: int) -> None:
    assert Settings(profile=profile).resolved_feed_concurrency() == slots
    assert Settings(profile=profile, feed_concurrency=3).resolved_feed_concurrency() == 3
