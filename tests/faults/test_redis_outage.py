"""Redis stopped under write and read load, then brought back, with the API left running.

Redis is the embedded profile's mailbox store *and* its event log, so while it is down the write
path still commits posts (the outbox holds their events), feeds come from SQL (``mailbox:sql``), and
when it is back the relay replays the outbox, the workers resume and feeds leave the fallback — all
without restarting the API.
"""

from __future__ import annotations

import itertools
import time

import pytest

from labcore.widgets.observability import metric_value, parse_metrics
from tests.conftest import RunningStack
from tests.faults.load_phases import Load
from tests.faults.stack import client, runtime_info
from tests.helpers import wait_for

OUTAGE_SECONDS = 4.0


@pytest.mark.slow
def test_redis_outage_loses_no_acknowledged_write_and_feeds_recover_by_themselves(fault_stack: RunningStack) -> None:
    lab = client(fault_stack)
    try:
        authors = [lab.create_user(f"ro_author{i}")["user_id"] for i in range(3)]
        readers = [lab.create_user(f"ro_reader{i}")["user_id"] for i in range(6)]
        for reader in readers:
            for author in authors:
                lab.follow(reader, author)
        for author in authors:
            lab.post(author, f"before the outage, by {author}")
        for reader in readers:  # build every mailbox now, so later reads test fan-out, not a rebuild
            lab.feed(reader)
        pid = runtime_info(fault_stack)["pid"]
        before = parse_metrics(lab.metrics())

        n = itertools.count()
        calls = {
            "post": lambda http: http.post(
                "/posts/", json={"user_id": authors[next(n) % 3], "content": f"written under load {next(n)}"}
            ),
            "feed": lambda http: http.get("/feed/", params={"user_id": readers[next(n) % len(readers)]}),
        }
        with Load(lab.info.api_url, calls, threads=4) as load:
            time.sleep(1.5)
            lab.stop("redis")
            down_at = time.monotonic()
            health_down = lab.health()
            time.sleep(OUTAGE_SECONDS)
            up_at = time.monotonic()
            lab.start("redis")
            recovered = wait_for(
                lambda: (f := lab.feed(readers[0]))["fallbacks"] == [] and f, "feeds leave the fallback", timeout=30
            )
            time.sleep(1.5)
        after = parse_metrics(lab.metrics())

        # no 5xx, no dropped connection, at any time
        bad = [(c.kind, c.status, str(c.body)[:200]) for c in load.all() if not 200 <= c.status < 300]
        assert bad == []
        # during the outage: writes acknowledged, every feed 200 with the fallback named
        outage_feeds = load.between(down_at, up_at, "feed")
        outage_posts = load.between(down_at, up_at, "post")
        assert outage_feeds and outage_posts, "the load kept running through the outage"
        assert all("mailbox:sql" in c.body["fallbacks"] for c in outage_feeds)
        assert health_down["status"] == "degraded" and health_down["components"]["redis"].startswith("down")
        grew = metric_value(after, "feed_fallbacks_total", fallback="mailbox:sql") - metric_value(
            before, "feed_fallbacks_total", fallback="mailbox:sql"
        )
        assert grew >= len(outage_feeds)
        # recovered by itself: same runtime process, primary path
        assert runtime_info(fault_stack)["pid"] == pid
        assert recovered["model_version"] == "formula-v1"

        # nothing acknowledged is lost: the outbox replays, every post reaches every reader's mailbox
        acked = {c.body["post_id"] for c in load.all("post")}
        wait_for(lambda: lab.inspect("outbox", limit=1)["backlog"] == 0, "the outbox drains", timeout=30)

        def missing() -> set[str]:
            return {p for r in readers for p in acked if lab.redis.zscore(f"feed:{r}", p) is None}

        wait_for(lambda: not missing(), "every acknowledged post is in every mailbox", timeout=30)
        assert lab.store.get_posts(list(acked)).keys() == acked
        assert lab.wait_until_ready(progress=False, stall_seconds=30)["status"] == "ok"
    finally:
        lab.close()
