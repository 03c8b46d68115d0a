"""The embedding worker as its own process (compose's ``embedding-worker``) keeps features fresh.

Before, only the embedded runtime pushed a new post's features and a like's counters between
feature batches; in compose they waited for the next batch. Now the worker process does both, with
the same code (``labcore.workers.features``): a post embedded a moment ago has its ``post_stats``
(real ``created_at``) in the feature cache, and a like moves ``like_count`` and the pair's affinity.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labcore.engines.redis import EmbeddedRedis
from labcore.bootstrap import build_stack
from labcore.settings import Settings
from labcore.write.outbox import OutboxRelay
from labcore.write.posts import WritePath


def wait_for(check, what: str, log: Path, timeout: float = 90.0):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} never happened; worker log:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
def test_the_worker_process_writes_fresh_features_after_a_post_and_a_like(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "redis") as server:
        settings = Settings(data_dir=tmp_path, redis_url=server.url)
        stack = build_stack(settings)
        stack.store.create_schema()
        writes = WritePath(stack)
        relay = OutboxRelay(stack.store, stack.events)
        author = writes.create_user("fresh_author", "Author").id
        reader = writes.create_user("fresh_reader", "Reader").id
        post = writes.create_post(author, "Fresh features: a post about proofing bread overnight.")
        relay.publish_pending()
        log = tmp_path / "worker.log"
        env = os.environ | {
            "FEEDLAB_DATA_DIR": str(tmp_path),
            "FEEDLAB_REDIS_URL": server.url,
            "FEEDLAB_SQL_URL": settings.resolved_sql_url(),
        }
        with open(log, "wb") as out:
            worker = subprocess.Popen([sys.executable, "-m", "services.embedding_worker"], env=env, stdout=out, stderr=out)
        try:
            features = lambda: stack.feature_cache.ranking_features(reader, [(post.id, author)]).get(post.id)  # noqa: E731
            row = wait_for(lambda: (r := features()) and r.post is not None and r, "post_stats of the new post", log)
            assert row.post.created_at == pytest.approx(post.created_at.timestamp(), abs=0.01)
            assert row.post.like_count == 0

            writes.like(reader, post.id)
            relay.publish_pending()
            # The post's counters and the pair's affinity are two writes: wait for both.
            row = wait_for(
                lambda: (r := features()) and r.post.like_count == 1 and r.affinity is not None and r,
                "like_count and affinity after the like",
                log,
            )
            assert row.affinity.affinity_score > 0
        finally:
            worker.terminate()
            worker.wait(30)
            stack.close()
