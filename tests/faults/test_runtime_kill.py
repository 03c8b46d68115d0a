"""SIGKILL the whole embedded runtime with posts in flight, then ``feedlab up`` on the same folder.

What was acknowledged is on disk — SQL committed it, Redis keeps an append-only file, unacked events
are replayed — so after the restart every post is back, reaches every follower's mailbox and gets
its vector, and the stack serves feeds on the primary path.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx
import psutil
import pytest

from tests.faults.stack import client, feedlab_up, runtime_info, stack_env
from tests.helpers import wait_for

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))  # a valid PNG header: media validation sniffs it
SETTLED, IN_FLIGHT = 60, 120


def gone_or_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def post_all(api_url: str, bodies: list[dict]) -> list[dict]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        responses = await asyncio.gather(*(http.post("/posts/", json=body) for body in bodies))
    assert [r.status_code for r in responses] == [201] * len(bodies)
    return [r.json() for r in responses]


@pytest.mark.slow
def test_sigkilled_runtime_comes_back_with_its_data(tmp_path: Path) -> None:
    env = stack_env(tmp_path)
    stack = feedlab_up(tmp_path, env)
    try:
        with client(stack) as lab:
            authors = [lab.create_user(f"rk_author{i}")["user_id"] for i in range(4)]
            readers = [lab.create_user(f"rk_reader{i}")["user_id"] for i in range(10)]
            for i, reader in enumerate(readers):
                for author in authors[: 1 + i % 4]:
                    lab.follow(reader, author)
            bodies = [{"user_id": authors[i % 4], "content": f"settled post {i} on woodworking"} for i in range(SETTLED)]
            posts = asyncio.run(post_all(lab.info.api_url, bodies))
            wait_for(lambda: lab.inspect("vectors", limit=1)["count"] >= SETTLED, "the first posts are embedded")
            # a picture in the bucket: acknowledged, so it must survive the kill (SeaweedFS's own files)
            picture = lab.post(authors[0], "a picture before the kill", media=PNG)
            posts.append({"user_id": authors[0], "post_id": picture["post_id"]})
            counts_before = lab.store.counts()
            # a second burst, and the kill right behind it: some events are still in the outbox or
            # polled but unacked when the process dies
            bodies = [{"user_id": authors[i % 4], "content": f"in-flight post {i} on pottery"} for i in range(IN_FLIGHT)]
            posts += asyncio.run(post_all(lab.info.api_url, bodies))
            info = runtime_info(stack)
            os.kill(info["pid"], signal.SIGKILL)
            wait_for(lambda: gone_or_zombie(info["pid"]), "the runtime is gone", timeout=10)
        stack = feedlab_up(tmp_path, env)
        # a new runtime (the dead one's zombie does not pass for "already running"), and the killed
        # runtime's redis-server child did not outlive it next to the new one on the same files
        assert runtime_info(stack)["pid"] != info["pid"]
        assert gone_or_zombie(info["redis_pid"]), "the killed runtime's redis-server is still running"
        assert gone_or_zombie(info["s3_pid"]), "the killed runtime's S3 server is still running"
        with client(stack) as lab:
            counts = lab.store.counts()
            assert counts["users"] == counts_before["users"]
            assert counts["posts"] == len(posts) == SETTLED + IN_FLIGHT + 1
            url = lab.api.get(f"/posts/{picture['post_id']}").json()["media_url"]
            assert httpx.get(url, timeout=5).content == PNG  # from the restarted S3 server, same bucket
            follows = {r: set(lab.store.followee_ids(r)) for r in readers}
            assert all(follows[r] == set(authors[: 1 + i % 4]) for i, r in enumerate(readers))

            def missing() -> list[tuple[str, str]]:
                return [
                    (r, p["post_id"]) for p in posts for r in readers
                    if p["user_id"] in follows[r] and lab.redis.zscore(f"feed:{r}", p["post_id"]) is None
                ]  # fmt: skip

            wait_for(lambda: not missing(), "every post is in every follower's mailbox", timeout=60)
            wait_for(lambda: lab.inspect("vectors", limit=1)["count"] >= len(posts), "every post has a vector", timeout=90)
            vectors = lab.inspect("vectors", limit=1000)
            ids = [p["post_id"] for p in vectors["points"]]
            assert len(ids) == len(set(ids)) == len(posts) and set(ids) == {p["post_id"] for p in posts}
            for reader in readers:
                mailbox = [p for p, _ in lab.mailbox(reader)]
                assert len(mailbox) == len(set(mailbox)) == sum(p["user_id"] in follows[reader] for p in posts)
            assert lab.inspect("outbox", limit=1)["backlog"] == 0
            feed = lab.feed(readers[-1])
            assert feed["items"] and feed["fallbacks"] == [] and feed["model_version"] == "formula-v1"
            assert lab.wait_until_ready(progress=False, stall_seconds=30)["status"] == "ok"
    finally:
        down = stack.feedlab("down")
        assert down.returncode == 0, down.stderr
