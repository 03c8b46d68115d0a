"""A worker process (compose's fan-out worker) serves /metrics on FEEDLAB_METRICS_PORT.

Prometheus scrapes the workers there (compose/monitoring/prometheus.yml); the exposition passes
promtool and counts the posts the worker handled, with their lag measured from the commit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from labcore.engines.redis import EmbeddedRedis
from labcore.engines.process import free_port
from labcore.bootstrap import build_stack
from labcore.settings import Settings
from labcore.widgets.observability import metric_value, parse_metrics
from labcore.write.outbox import OutboxRelay
from labcore.write.posts import WritePath


def scrape_until(url: str, ready, timeout: float = 30.0) -> str:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            last = httpx.get(url, timeout=2).text
            if ready(parse_metrics(last)):
                return last
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never showed the expected samples; last scrape:\n{last[-2000:]}")


def test_the_fanout_worker_serves_metrics_prometheus_accepts(tmp_path: Path, promtool) -> None:
    with EmbeddedRedis(tmp_path / "redis") as server:
        settings = Settings(data_dir=tmp_path, redis_url=server.url)
        stack = build_stack(settings)
        stack.store.create_schema()
        writes = WritePath(stack)
        author = writes.create_user("metric_author", "Author").id
        for i in range(3):
            writes.follow(writes.create_user(f"metric_reader{i}", "Reader").id, author)
        for i in range(5):
            writes.create_post(author, f"post {i}")
        OutboxRelay(stack.store, stack.events).publish_pending()
        port = free_port()
        env = os.environ | {
            "FEEDLAB_DATA_DIR": str(tmp_path),
            "FEEDLAB_REDIS_URL": server.url,
            "FEEDLAB_SQL_URL": settings.resolved_sql_url(),
            "FEEDLAB_METRICS_PORT": str(port),
        }
        with open(tmp_path / "worker.log", "wb") as log:
            worker = subprocess.Popen([sys.executable, "-m", "services.fanout_worker"], env=env, stdout=log, stderr=log)
        try:
            text = scrape_until(
                f"http://127.0.0.1:{port}/metrics",
                lambda samples: metric_value(samples, "fanout_posts_total") >= 5,
            )
        finally:
            worker.terminate()
            worker.wait(10)
            stack.close()
    promtool(text)
    samples = parse_metrics(text)
    assert metric_value(samples, "fanout_deliveries_total") == 15
    assert metric_value(samples, "fanout_lag_seconds_count") == 5
    assert metric_value(samples, "events_handled_total", group="fanout") == 5
