"""No loss: 2,000 posts by 50 authors while the fan-out worker is SIGKILLed and restarted midway.

The worker runs as a real process (``python -m services.fanout_worker``) against a real SQLite file
and a real redis-server. Afterwards every post by a non-celebrity author is in every follower's
mailbox exactly once, with its creation time as score; celebrity posts are in none.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

from labcore.engines.redis import EmbeddedRedis
from labcore.bootstrap import build_stack
from labcore.domain import to_epoch
from labcore.settings import Settings
from labcore.write.outbox import OutboxRelay
from labcore.write.posts import WritePath

AUTHORS, READERS, POSTS, THRESHOLD = 50, 150, 2000, 40


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "services.fanout_worker"], env=env, stdout=out, stderr=out)


def delivered(stack, readers: list[str]) -> int:  # noqa: ANN001
    pipe = stack.redis.pipeline(transaction=False)
    for reader in readers:
        pipe.zcard(f"feed:{reader}")
    return sum(pipe.execute())


@pytest.mark.slow
def test_no_post_lost_or_duplicated_when_the_worker_is_killed(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "redis") as server:
        settings = Settings(
            data_dir=tmp_path,
            redis_url=server.url,
            celebrity_threshold=THRESHOLD,
            mailbox_cap=10_000,
            api_port=8000,
        )
        stack = build_stack(settings)
        stack.store.create_schema()
        writes = WritePath(stack)
        rng = random.Random(7)
        authors = [writes.create_user(f"author{i}", f"Author {i}").id for i in range(AUTHORS)]
        readers = [writes.create_user(f"reader{i}", f"Reader {i}").id for i in range(READERS)]
        followers: dict[str, list[str]] = defaultdict(list)
        for reader in readers:
            # authors 0 and 1 are followed by (almost) everyone: celebrities, pulled at read time
            for author in {authors[0], authors[1], *rng.sample(authors, rng.randint(5, 15))}:
                writes.follow(reader, author)
                followers[author].append(reader)
        celebrities = {a for a in authors if len(followers[a]) > THRESHOLD}
        assert celebrities and len(celebrities) < AUTHORS

        env = os.environ | {
            "FEEDLAB_DATA_DIR": str(tmp_path),
            "FEEDLAB_REDIS_URL": server.url,
            "FEEDLAB_SQL_URL": settings.resolved_sql_url(),
            "FEEDLAB_MAILBOX_CAP": "10000",
            "FEEDLAB_WORKER_ID": "0",
        }
        stop = threading.Event()
        relay = OutboxRelay(stack.store, stack.events)
        relay_thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
        relay_thread.start()
        worker = start_worker(env, tmp_path / "worker.log")
        posts = []
        try:
            for i in range(POSTS):
                posts.append(writes.create_post(rng.choice(authors), f"post number {i}"))
                relay.notify()
                if i == POSTS // 2:
                    # wait until the worker is visibly mid-stream, then crash it hard
                    deadline = time.monotonic() + 30
                    while delivered(stack, readers) == 0 and time.monotonic() < deadline:
                        time.sleep(0.01)
                    worker.send_signal(signal.SIGKILL)
                    worker.wait()
                    at_kill = delivered(stack, readers)
            worker = start_worker(env, tmp_path / "worker.log")

            expected: dict[str, dict[str, float]] = defaultdict(dict)
            for post in posts:
                if post.author_id not in celebrities:
                    for reader in followers[post.author_id]:
                        expected[reader][post.id] = to_epoch(post.created_at)
            total = sum(len(v) for v in expected.values())
            assert 0 < at_kill < total, "the kill must land while deliveries are in flight"

            deadline = time.monotonic() + 120
            while delivered(stack, readers) < total and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(0.5)  # anything extra would show up now
        finally:
            worker.terminate()
            worker.wait(10)
            stop.set()
            relay_thread.join(10)

        for reader in readers:
            mailbox = stack.mailboxes.entries(reader)
            assert len(mailbox) == len(expected[reader]), f"{reader}: duplicates or losses"
            assert dict(mailbox) == pytest.approx(expected[reader])
        assert stack.store.outbox_backlog() == 0
        stack.close()
