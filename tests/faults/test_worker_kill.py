"""Every worker stopped and restarted in the middle of a burst of 2,000 posts and 5,000 impressions.

Against a ``feedlab up`` stack: the fan-out worker, the embedding worker, the impressions loader and
the outbox relay are each stopped mid-burst and started again (the embedded runtime's equivalent of
a worker crash: the thread goes away with whatever it had polled but not acked). Afterwards every
post is in every eligible mailbox exactly once, has exactly one vector, and every impression is in
the OLAP store exactly once. ``test_embedding_worker_process_sigkill`` crashes a real worker process.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
import redis

from labcore.engines.redis import EmbeddedRedis
from labcore.engines.process import free_port
from labcore.bootstrap import build_stack
from labcore.domain import to_epoch
from labcore.settings import Settings
from labcore.widgets.observability import metric_value, parse_metrics
from labcore.write.outbox import OutboxRelay
from labcore.write.posts import WritePath
from tests.conftest import RunningStack
from tests.faults.stack import client, runtime_info, wait_for

AUTHORS, READERS, POSTS, IMPRESSION_REQUESTS, PER_REQUEST, THRESHOLD = 50, 150, 2000, 500, 10, 40
WORKERS = ("fanout-worker", "embedding-worker", "impressions-loader", "outbox-relay")
CONCURRENCY = 8


def build_world(stack: RunningStack, prefix: str) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """Authors, readers and follows, written straight through the write path (no events involved)."""
    info = runtime_info(stack)
    settings = Settings(data_dir=stack.data_dir, redis_url=info["redis_url"], sql_url=info["sql_url"])
    direct = build_stack(settings)
    try:
        writes = WritePath(direct)
        rng = random.Random(9)
        authors = [writes.create_user(f"{prefix}a{i}", f"Author {i}").id for i in range(AUTHORS)]
        readers = [writes.create_user(f"{prefix}r{i}", f"Reader {i}").id for i in range(READERS)]
        followers: dict[str, list[str]] = defaultdict(list)
        for reader in readers:
            # authors 0 and 1 are followed by everyone: celebrities, pulled at read time
            for author in {authors[0], authors[1], *rng.sample(authors, rng.randint(5, 15))}:
                writes.follow(reader, author)
                followers[author].append(reader)
    finally:
        direct.close()
    return authors, readers, followers


async def burst(api_url: str, authors: list[str], readers: list[str]) -> dict:
    """2,000 posts and 5,000 impressions over HTTP while each worker is stopped and restarted."""
    rng = random.Random(11)
    acked: list[dict] = []
    reported: dict[str, set[str]] = defaultdict(set)
    recorded = 0
    errors: list[str] = []
    at_stop: dict[str, dict] = {}
    sem = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(base_url=api_url, timeout=60) as http:

        async def post(i: int) -> None:
            async with sem:
                body = {"user_id": rng.choice(authors), "content": f"burst post {i}: notes on bread, hiking and jazz"}
                response = await http.post("/posts/", json=body)
            if response.status_code == 201:
                acked.append(response.json())
            else:
                errors.append(f"POST /posts/ {response.status_code} {response.text[:200]}")

        async def impressions(i: int) -> None:
            nonlocal recorded
            while len(acked) < 200:  # report posts that exist, as a client would
                await asyncio.sleep(0.05)
            user = readers[i % len(readers)]
            # (user, post) pairs never repeat, so the expected row count is exact
            choices = [p["post_id"] for p in rng.sample(acked, 40) if p["post_id"] not in reported[user]]
            post_ids = choices[:PER_REQUEST]
            assert len(post_ids) == PER_REQUEST
            reported[user].update(post_ids)
            async with sem:
                response = await http.post("/impressions", json={"user_id": user, "post_ids": post_ids})
            if response.status_code == 202:
                recorded += response.json()["recorded"]
            else:
                errors.append(f"POST /impressions {response.status_code} {response.text[:200]}")

        async def chaos() -> None:
            for n, worker in enumerate(WORKERS):
                while len(acked) < (n + 1) * POSTS // (len(WORKERS) + 1):
                    await asyncio.sleep(0.02)
                health = (await http.get("/health")).json()
                at_stop[worker] = health["workers"].get(worker, {})
                response = await http.post(f"/admin/services/{worker}/stop")
                assert response.json()["state"] == "stopped", response.text
                await asyncio.sleep(1.0)  # the burst goes on without it
                response = await http.post(f"/admin/services/{worker}/start")
                assert response.json()["state"] == "running", response.text

        work = [post(i) for i in range(POSTS)] + [impressions(i) for i in range(IMPRESSION_REQUESTS)]
        rng_order = random.Random(5)
        rng_order.shuffle(work)
        await asyncio.gather(chaos(), *work)
    return {"acked": acked, "recorded": recorded, "errors": errors, "at_stop": at_stop}


@pytest.mark.slow
def test_every_worker_restarted_mid_burst_loses_and_duplicates_nothing(fault_stack: RunningStack) -> None:
    lab = client(fault_stack)
    try:
        authors, readers, followers = build_world(fault_stack, "wk_")
        celebrities = {a for a in authors if len(followers[a]) > THRESHOLD}
        assert celebrities and len(celebrities) < AUTHORS
        impressions_before = lab.inspect("impressions", limit=1)["count"]

        started = time.monotonic()
        result = asyncio.run(burst(lab.info.api_url, authors, readers))
        burst_seconds = time.monotonic() - started
        assert result["errors"] == []
        posts = result["acked"]
        assert len(posts) == POSTS and result["recorded"] == IMPRESSION_REQUESTS * PER_REQUEST
        # each stop landed mid-stream: at 1/5, 2/5, ... of the acknowledged posts, with the worker
        # already at work on the burst
        assert set(result["at_stop"]) == set(WORKERS)
        for worker, report in result["at_stop"].items():
            assert report.get("handled", report.get("published", 0)) > 0, (worker, report)

        expected: dict[str, dict[str, float]] = defaultdict(dict)
        for post in posts:
            assert (post["delivery"] == "pull") == (post["user_id"] in celebrities)
            if post["delivery"] == "push":
                for reader in followers[post["user_id"]]:
                    expected[reader][post["post_id"]] = post["created_at"]
        total = sum(len(v) for v in expected.values())

        def delivered() -> int:
            pipe = lab.redis.pipeline(transaction=False)
            for reader in readers:
                pipe.zcard(f"feed:{reader}")
            return sum(pipe.execute())

        sql_posts = lab.store.counts()["posts"]
        wait_for(lambda: delivered() >= total, "every mailbox has its posts", timeout=90)
        wait_for(lambda: lab.inspect("vectors", limit=1)["count"] >= sql_posts, "every post is embedded", timeout=150)
        wait_for(
            lambda: lab.inspect("impressions", limit=1)["count"] - impressions_before >= result["recorded"],
            "every impression is loaded", timeout=60,
        )  # fmt: skip
        time.sleep(1.0)  # anything extra (a duplicate, a late replay) would show up now
        print(f"burst of {POSTS} posts + {result['recorded']} impressions in {burst_seconds:.1f}s; "
              f"drained {time.monotonic() - started:.1f}s after the start")  # fmt: skip

        # every eligible mailbox holds each post exactly once (a ZSET cannot hold two copies, so
        # exactness is the count), scored by its creation time; celebrity posts are in none
        for reader in readers:
            mailbox = dict(lab.mailbox(reader))
            want = expected[reader]
            assert set(mailbox) == set(want), f"{reader}: lost {set(want) - set(mailbox)}, extra {set(mailbox) - set(want)}"
            for post_id, score in want.items():
                assert mailbox[post_id] == pytest.approx(to_epoch_iso(score))
        # exactly one vector per post, and every burst post has one
        vectors = lab.inspect("vectors", limit=5000)
        assert vectors["count"] == lab.store.counts()["posts"]
        assert vectors["count"] <= 5000, "the suite wrote more posts than one page of vectors shows"
        ids = [p["post_id"] for p in vectors["points"]]
        assert len(ids) == len(set(ids))
        assert {p["post_id"] for p in posts} <= set(ids)
        # every impression counted once: new rows == impressions acknowledged
        assert lab.inspect("impressions", limit=1)["count"] - impressions_before == result["recorded"]
        assert lab.inspect("outbox", limit=1)["backlog"] == 0
        services = lab.services()
        assert all(services[w] == "running" for w in WORKERS)
    finally:
        lab.close()


def to_epoch_iso(created_at: str) -> float:
    from datetime import datetime

    return to_epoch(datetime.fromisoformat(created_at.replace("Z", "+00:00")))


# --- a real process, SIGKILLed ---------------------------------------------------------------------

EMBED_POSTS = 600


def start_embedding_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "services.embedding_worker"], env=env, stdout=out, stderr=out)


@pytest.mark.slow
def test_embedding_worker_process_sigkill_leaves_exactly_one_vector_per_post(tmp_path: Path) -> None:
    """``python -m services.embedding_worker`` against its own redis-server, SQLite and Qdrant folder,
    SIGKILLed mid-stream and started again: every post ends with exactly one vector."""
    with EmbeddedRedis(tmp_path / "redis") as server:
        settings = Settings(data_dir=tmp_path, redis_url=server.url, api_port=8000)
        stack = build_stack(settings)
        stack.store.create_schema()
        writes = WritePath(stack)
        authors = [writes.create_user(f"emb{i}", f"Embedder {i}").id for i in range(10)]
        env = os.environ | {
            "FEEDLAB_DATA_DIR": str(tmp_path),
            "FEEDLAB_REDIS_URL": server.url,
            "FEEDLAB_SQL_URL": settings.resolved_sql_url(),
            "FEEDLAB_WORKER_ID": "0",
            "FEEDLAB_EMBEDDING_BATCH_SIZE": "32",  # small batches: the kill lands between acks
            "OPENBLAS_NUM_THREADS": "1",
            "FEEDLAB_METRICS_PORT": str(metrics_port := free_port()),
        }
        stop = threading.Event()
        relay = OutboxRelay(stack.store, stack.events)
        relay_thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
        relay_thread.start()
        log = tmp_path / "worker.log"
        worker = start_embedding_worker(env, log)
        rng = random.Random(3)
        topics = ("sourdough starter", "alpine hiking", "modal jazz", "street photography", "tomato gardening")
        post_ids = []
        try:
            for i in range(EMBED_POSTS):
                post = writes.create_post(rng.choice(authors), f"post {i} about {rng.choice(topics)}")
                post_ids.append(post.id)
            relay.notify()

            def embedded() -> float:
                """The worker's own count of posts embedded (its /metrics; restarts at 0 with it)."""
                try:
                    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).text
                except httpx.HTTPError:
                    return 0.0
                return metric_value(parse_metrics(text), "embeddings_total")

            def caught_up() -> bool:
                """The group has read every entry of every partition and has nothing pending."""
                for key in stack.events.streams("new-posts"):
                    try:
                        last = stack.redis.xinfo_stream(key)["last-generated-id"]
                        groups = {g["name"]: g for g in stack.redis.xinfo_groups(key)}
                    except redis.ResponseError:  # the stream does not exist yet
                        return False
                    group = groups.get("embedding")
                    if group is None or group["pending"] or group["last-delivered-id"] != last:
                        return False
                return True

            wait_for(lambda: embedded() >= 64, "the worker is mid-stream", timeout=90, every=0.05)
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            assert not caught_up(), "the kill must land while posts are in flight"
            worker = start_embedding_worker(env, log)
            wait_for(caught_up, "the restarted worker catches up", timeout=150)
        finally:
            worker.terminate()
            worker.wait(30)
            stop.set()
            relay_thread.join(10)
        # the worker has exited: its Qdrant folder is free to open here
        assert stack.vectors.count() == EMBED_POSTS
        found = stack.vectors.vectors(post_ids)
        assert set(found) == set(post_ids)
        assert stack.store.outbox_backlog() == 0
        stack.close()
